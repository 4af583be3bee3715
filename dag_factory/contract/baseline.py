"""Where the old contract of each product comes from: a git ref of the products folder, or
the newest manifest of the product's published tree in the data folder (for a product on a
warehouse engine, its publish record beside the table)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dag_factory.contract.compat import (
    OutputContract, ProductReport, consumers_of, contract_of_manifest, contract_of_spec, judge,
)
from dag_factory.datastore import Location
from dag_factory.storage import MANIFEST

PUBLISHED = "published"


class BaselineError(Exception):
    """The baseline cannot be read (not a git repository, unknown ref, bad manifest)."""


@dataclass
class Baseline:
    """The contracts to compare against.

    Attributes:
        label: how the baseline is named in messages; contracts: product name -> contract;
        sources: product name -> where its contract was read (file at ref, manifest path);
        notes: files that could not be read at the baseline, and why.
    """

    label: str
    contracts: dict[str, OutputContract] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _git(cwd: Path, *args: str, binary: bool = False):
    done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=not binary)
    return done.returncode, done.stdout, done.stderr if not binary else done.stderr.decode()


def git_baseline(folder: Path, ref: str) -> Baseline:
    """The products folder as it was at git ``ref``, loaded and validated like the live one.

    The folder's files at ``ref`` (``git archive``, so ``transform.file`` references resolve
    too) are extracted to a temporary directory and loaded with ``load_products``.

    Raises:
        BaselineError: ``folder`` is not in a git work tree, or ``ref`` names no commit.
    """
    from dag_factory.spec.loading import load_products

    if ref.startswith("-"):
        raise BaselineError(f"{ref!r} is not a git ref")
    code, top, err = _git(folder, "rev-parse", "--show-toplevel")
    if code != 0:
        raise BaselineError(f"{folder} is not inside a git work tree ({err.strip()}); "
                            "--against needs a git ref of it, or 'published'")
    root = Path(top.strip())
    relative = folder.resolve().relative_to(root.resolve()).as_posix() or "."
    code, commit, _ = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if code != 0:
        raise BaselineError(f"git ref {ref!r} names no commit in {root}")
    baseline = Baseline(f"git ref {ref} ({commit.strip()[:12]})")
    code, archive, err = _git(root, "archive", "--format=tar", commit.strip(), "--", relative,
                              binary=True)
    if code != 0:  # the folder did not exist at ref: every product is new
        baseline.notes.append(f"{relative}/ does not exist at {ref}")
        return baseline
    with tempfile.TemporaryDirectory(prefix="dataproducts-baseline-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        old_folder = Path(tmp) / relative
        result = load_products(old_folder)
        for name, product in result.products.items():
            baseline.contracts[name] = contract_of_spec(product.spec)
            baseline.sources[name] = f"{ref}:{relative}/{product.path.name}"
        for path, error in sorted(result.errors.items()):
            baseline.notes.append(f"{ref}:{relative}/{path.name} was invalid there "
                                  f"({len(error.issues)} error(s)); not compared")
    return baseline


def newest_manifest(product_dir: Location) -> tuple[Location, dict] | None:
    """The newest partition manifest (by ``published_at``) of a product's highest published
    major: ``<data>/products/<name>/v<N>/*/_manifest.json``, local or in an S3 data folder,
    with its content; None when nothing is published.

    Raises:
        BaselineError: a manifest is not JSON.
    """
    from dag_factory.datastore import NotFound, store_for

    store = store_for(product_dir)
    by_major: dict[int, list] = {}
    for stored in store.list_files(product_dir):
        parts = stored.relative.split("/")
        if len(parts) == 3 and parts[2] == MANIFEST and re.fullmatch(r"v\d+", parts[0]):
            by_major.setdefault(int(parts[0][1:]), []).append(stored)
    if not by_major:
        return None
    newest = None
    for stored in by_major[max(by_major)]:
        try:
            manifest = json.loads(store.read_bytes(stored.location))
        except NotFound:  # removed since listed
            continue
        except ValueError as exc:
            raise BaselineError(f"{stored.location}: not a partition manifest ({exc!r})") from exc
        key = (str(manifest.get("published_at") or ""), stored.modified)
        if newest is None or key > newest[0]:
            newest = (key, stored.location, manifest)
    return None if newest is None else (newest[1], newest[2])


def published_baseline(data: Location) -> Baseline:
    """The contract of every product published under ``<data>/products/`` (a local or an
    ``s3://`` data folder), from its newest manifest.

    Raises:
        BaselineError: a manifest is not JSON or lacks product, version or partition.
    """
    from dag_factory.datastore import store_for

    baseline = Baseline(f"the published manifests in {data / 'products'}")
    root = data / "products"
    names = sorted({f.relative.split("/")[0] for f in store_for(root).list_files(root)
                    if f.relative.count("/") == 3})
    for name in names:
        found = newest_manifest(root / name)
        if found is None:
            continue
        path, manifest = found
        try:
            contract = contract_of_manifest(manifest)
        except (ValueError, KeyError, TypeError) as exc:
            raise BaselineError(f"{path}: not a partition manifest ({exc!r})") from exc
        baseline.contracts[contract.product] = contract
        baseline.sources[contract.product] = str(path)
    return baseline


def add_warehouse_records(baseline: Baseline, specs: dict) -> None:
    """Add the publish record of every product in ``specs`` (name -> ProductSpec) that runs
    on a warehouse engine: its published contract lives beside its table, not in manifests.

    Raises:
        BaselineError: the warehouse cannot be read (naming the product and connection id).
    """
    from dag_factory.engines import engine_config, warehouse_engine

    for name, spec in sorted(specs.items()):
        engine = warehouse_engine(engine_config(spec))
        if engine is None:
            continue
        try:
            record = engine.published_record(name)
        except Exception as exc:  # the driver's errors name host and database, not the password
            raise BaselineError(f"{name}: cannot read its publish record on engine "
                                f"{engine.type} (connection {engine.conn_id!r}): {exc}") from exc
        if record is None:
            continue
        try:
            baseline.contracts[name] = contract_of_manifest(record)
        except (ValueError, KeyError, TypeError) as exc:
            raise BaselineError(f"{name}: not a publish record on engine {engine.type} "
                                f"({exc!r})") from exc
        table = record.get("table", name)
        baseline.sources[name] = f"the publish record of {table}"
        baseline.notes.append(f"{name}: compared with the publish record of {table} "
                              f"(engine {engine.type}, published {record.get('published_at')})")


def check_folder(folder: Path, against: str,
                 data: Location | None = None) -> tuple[Baseline, list[ProductReport]]:
    """Compare every product of ``folder`` with ``against`` and judge each change.

    Args:
        folder: the products folder; against: a git ref, or ``"published"`` (the manifests
        under ``data``, default the configured data folder).

    Returns:
        the baseline and one :class:`ProductReport` per product present on either side, by
        name. Products only published (no file) are reported as removed.

    Raises:
        BaselineError: the baseline cannot be read.
    """
    from dag_factory.config import data_folder
    from dag_factory.spec.loading import load_products, standalone_specs

    if against == PUBLISHED:
        baseline = published_baseline(data or data_folder())
    else:
        baseline = git_baseline(folder, against)
    loaded = load_products(folder)
    current = {name: contract_of_spec(p.spec) for name, p in loaded.products.items()}
    if against == PUBLISHED:
        add_warehouse_records(baseline, {n: p.spec for n, p in loaded.products.items()})
    for path, name in sorted(loaded.claimed_names.items()):
        if name not in loaded.products and baseline.contracts.pop(name, None) is not None:
            baseline.notes.append(f"{name}: {path.name} is invalid now; not compared")
    readers = standalone_specs(folder)  # consumers count even if a reference broke
    reports = []
    for name in sorted(set(current) | set(baseline.contracts)):
        reports.append(judge(baseline.contracts.get(name), current.get(name),
                             consumers_of(name, readers), baseline.label))
    return baseline, reports
