"""Retire an old major version of a product: delete ``products/<name>/v<major>/`` once no
product in the folder reads it any more (the last step of the deprecation flow in
docs/compatibility.md)."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

from dag_factory.storage import MANIFEST, product_root


class RetireRefused(Exception):
    """The version cannot be retired: it is the product's current major, a product still
    reads it, or nothing is published under it."""


@dataclass(frozen=True)
class RetirePlan:
    """What retiring would remove: the tree, its partition count and bytes."""

    product: str
    major: int
    root: Path
    partitions: int
    bytes: int


def plan_retirement(product: str, major: int, specs: dict, data: Path | None = None) -> RetirePlan:
    """Check that ``product``'s ``v<major>`` may go, and measure it.

    Args:
        product / major: the version to retire.
        specs: every product in the folder that loads on its own (name -> ProductSpec),
            including ones whose cross-file references are broken: they still read it.
        data: the data folder (default: the configured one).

    Raises:
        RetireRefused: ``major`` is what the product's spec publishes now; a product reads
            ``v<major>`` (an input pinning it, or following the product's current major);
            or no ``products/<product>/v<major>/`` exists.
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
    if not root.is_dir():
        raise RetireRefused(f"nothing published at {root}")
    parts = [p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file()]
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    return RetirePlan(product, major, root, len(parts), size)


def retire(plan: RetirePlan, data: Path | None = None) -> Path:
    """Remove the planned tree: first renamed out of ``products/`` in one step (readers see
    the whole version or none of it), then deleted.

    Returns:
        the path the tree was moved to before deletion (under ``_staging/_retired``).
    """
    from dag_factory.config import data_folder

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    retired = (data or data_folder()) / "_staging" / "_retired"
    target = retired / f"{plan.product}-v{plan.major}-{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    plan.root.rename(target)
    shutil.rmtree(target)
    return target

