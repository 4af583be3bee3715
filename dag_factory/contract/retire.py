"""Retire an old major version of a product: delete ``products/<name>/v<major>/`` once no
product in the folder reads it any more (the last step of the deprecation flow in
docs/compatibility.md), in a local or an ``s3://`` data folder."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

from dag_factory.datastore import Location, S3Path, store_for
from dag_factory.storage import MANIFEST, product_root


class RetireRefused(Exception):
    """The version cannot be retired: it is the product's current major, a product still
    reads it, or nothing is published under it."""


@dataclass(frozen=True)
class RetirePlan:
    """What retiring would remove: the tree (a local path or an ``s3://`` prefix), its
    partition count (partitions with a manifest) and its size in bytes (every file below it)."""

    product: str
    major: int
    root: Location
    partitions: int
    bytes: int


def plan_retirement(product: str, major: int, specs: dict,
                    data: Location | None = None) -> RetirePlan:
    """Check that ``product``'s ``v<major>`` may go, and measure it.

    Args:
        product / major: the version to retire.
        specs: every product in the folder that loads on its own (name -> ProductSpec),
            including ones whose cross-file references are broken: they still read it.
        data: the data folder, local or S3 (default: the configured one).

    Raises:
        RetireRefused: ``major`` is what the product's spec publishes now; a product reads
            ``v<major>`` (an input pinning it, or following the product's current major);
            or nothing exists under ``products/<product>/v<major>/``.
        StorageError: S3 cannot be listed (missing bucket, access).
    """
    current = specs.get(product)
    if current is not None and current.major_version == major:
        raise RetireRefused(f"{product} is at version {current.version}: v{major} is the version "
                            "it publishes now; bump its major (or remove the product) first")
    readers = []
    for name, spec in sorted(specs.items()):
        for inp in spec.inputs:
            if inp.type != "product" or inp.product != product:
                continue
            read = inp.major if inp.major is not None else \
                (current.major_version if current is not None else None)
            if read == major or read is None:
                readers.append(f"{name} (input {inp.name}"
                               + (f", pins major {inp.major})" if inp.major is not None
                                  else ", no pin)"))
    if readers:
        raise RetireRefused(f"{product} v{major} is still read by {', '.join(readers)}: "
                            f"move them to another major (`major:` on the input) first")
    root = product_root(product, major, data)
    files = store_for(root).list_files(root)  # [] when absent
    if not files:
        raise RetireRefused(f"nothing published at {root}")
    partitions = sum(1 for f in files if _is_manifest(f.relative))  # 0: an interrupted retire
    return RetirePlan(product, major, root, partitions, sum(f.size for f in files))


def _is_manifest(relative: str) -> bool:
    parts = relative.split("/")
    return len(parts) == 2 and parts[1] == MANIFEST


def retire(plan: RetirePlan, data: Location | None = None) -> Location:
    """Remove the planned tree.

    Local data folder: the tree is first renamed out of ``products/`` in one step (readers
    see the whole version or none of it), then deleted. S3 has no rename: every partition's
    manifest is deleted first, so each partition disappears for readers (who follow
    manifests) before any of its data files go, then everything below the prefix.

    Returns:
        where the tree was before deletion: the local path it was moved to (under
        ``_staging/_retired``), or the S3 prefix itself.

    Raises:
        OSError / StorageError: the tree is not (wholly) removed; re-running retires the rest.
    """
    if isinstance(plan.root, S3Path):
        store = store_for(plan.root)
        listed = store.list_files(plan.root)
        store.delete([f.location for f in listed if _is_manifest(f.relative)])
        store.delete_tree(plan.root)
        return plan.root
    return _retire_local(plan, data)


def _retire_local(plan: RetirePlan, data: Path | None) -> Path:
    from dag_factory.config import data_folder

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    retired = (data or data_folder()) / "_staging" / "_retired"
    target = retired / f"{plan.product}-v{plan.major}-{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    plan.root.rename(target)
    shutil.rmtree(target)
    return target

