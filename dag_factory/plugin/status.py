"""Every product's SLO status for one user: specs + metadata DB + SLI engine.

Only products whose DAG the auth manager lets the user read are returned.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import operator
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dag_factory.slo import metadata
from dag_factory.slo.jsonable import to_jsonable  # noqa: F401 - part of this module's API
from dag_factory.slo.engine import SloStatus, SloTargets, compute


@dataclass
class ProductStatus:
    """One product as the plugin shows it.

    Attributes:
        name, title, version, owner_team, owner_email, runbook, schedule: from the spec;
        slo: the engine's :class:`SloStatus`; runs: the records in the window, newest first;
        dag_url: the product's DAG page.
    """

    name: str
    title: str
    version: str
    owner_team: str
    owner_email: str
    runbook: str | None
    schedule: str
    slo: SloStatus
    runs: list = field(default_factory=list)
    dag_url: str = ""


@dataclass
class InvalidSpec:
    """An invalid product file: its file name, the dag_id of its placeholder, the errors."""

    file: str
    dag_id: str
    errors: list[str]


def _schedule_text(schedule) -> str:
    if isinstance(schedule, list):
        return "on " + ", ".join(schedule)
    return str(schedule)


def base_url() -> str:
    """Airflow's ``[api] base_url`` without the trailing slash."""
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")


#: products folder (absolute) -> (its state, (transform files, their existence, FolderResult))
_SPECS: dict[Path, tuple[tuple, tuple]] = {}
_SPECS_KEPT = 4
_SPECS_LOCK = threading.Lock()  # the API server calls collect() from a thread pool
#: A file changed less than this before a load is not trusted to compare by its stat data
#: (file times tick coarsely, so a same-size rewrite in the same tick keeps them): such a load
#: is not kept, and the next call loads again.
_RACY_NS = 2_000_000_000


def _folder_state(folder: Path) -> tuple | None:
    """The stat data of everything ``load_products(folder)`` reads from the folder itself: the
    folder and every candidate spec file (``*.yaml``/``*.yml``, not hidden; followed symlinks);
    None when one of them changed too recently to be compared by its stat data."""
    entries = [os.stat(folder)]
    names = []
    with os.scandir(folder) as listing:
        for entry in listing:
            if entry.name.endswith((".yaml", ".yml")) and not entry.name.startswith("."):
                try:
                    entries.append(os.stat(entry.path))
                except OSError:  # e.g. a dangling symlink: load_products skips it
                    entries.append(None)
                names.append(entry.name)
    recent = time.time_ns() - _RACY_NS
    if any(st is not None and max(st.st_mtime_ns, st.st_ctime_ns) > recent for st in entries):
        return None
    return tuple(names), tuple(None if st is None else (
        st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        for st in entries)


def _transform_files(loaded) -> tuple[str, ...]:
    """The ``transform.file`` of every file of a load, valid or not: whether it exists is the
    one input of ``load_products`` outside the spec files (an invalid file's is read again)."""
    from dag_factory.spec.yaml_marks import load_marked

    refs = [p.spec.transform.file for p in loaded.products.values()]
    for path in loaded.errors:
        try:
            data = load_marked(path.read_text(encoding="utf-8")).data
        except Exception:  # noqa: BLE001 - unreadable: load_products never got to its transform
            continue
        transform = data.get("transform") if isinstance(data, dict) else None
        refs.append(transform.get("file") if isinstance(transform, dict) else None)
    return tuple(sorted({r for r in refs if isinstance(r, str) and r}))


def _existing(folder: Path, files: tuple[str, ...]) -> tuple[bool, ...]:
    return tuple((folder / f).resolve().is_file() for f in files)


def load_specs(folder: Path):
    """``load_products(folder)`` without the YAML marks (``document`` is None), reused while
    the folder is unchanged (a :class:`FolderResult` shared between callers: do not modify it).

    Reading and validating every spec costs milliseconds per product (seconds for 1,000), so
    the status views would spend most of their time on it. The result is kept per folder and
    reused while the folder and its spec files keep the same stat data (inode, size, mtime,
    ctime) and the ``transform.file`` they name still exist or not; a folder with a file
    changed in the last two seconds is read again on each call.
    """
    from dag_factory.spec.loading import FolderResult, load_products

    key = Path(folder).absolute()
    try:
        state = _folder_state(key)
        cached = _SPECS.get(key)
        if state is not None and cached is not None and cached[0] == state:
            files, exist, loaded = cached[1]
            if _existing(key, files) == exist:
                return loaded
    except (OSError, ValueError):  # let load_products report what it makes of the folder
        state = None
    loaded = load_products(folder)
    # the YAML marks locate errors in files; kept, they would double the memory (~45 MiB for
    # 1,000 products): the views only read the specs
    loaded = FolderResult(products={n: dataclasses.replace(p, document=None)
                                    for n, p in loaded.products.items()},
                          errors=loaded.errors, claimed_names=loaded.claimed_names)
    if state is not None:
        try:
            files = _transform_files(loaded)
            kept = (state, (files, _existing(key, files), loaded))
        except (OSError, ValueError):
            return loaded
        with _SPECS_LOCK:
            _SPECS.pop(key, None)
            while len(_SPECS) >= _SPECS_KEPT:
                _SPECS.pop(next(iter(_SPECS)))
            _SPECS[key] = kept
    return loaded


_GC_LOCK = threading.Lock()
_gc_pauses = 0  # collect() calls under way (threads of the API server)
_gc_was_enabled = False


@contextlib.contextmanager
def _gc_paused():
    """Pause Python's cyclic garbage collector; concurrent and nested pauses share one.

    :func:`collect` allocates several container objects per run it reads (rows, JSON dicts,
    records), all referenced until it returns, so a collection meanwhile frees nothing, yet
    the full ones walk the whole heap of the API server (with the kept specs): at 1,000
    products that was over a third of the time. Reference counting still frees the rest.
    """
    global _gc_pauses, _gc_was_enabled
    with _GC_LOCK:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def gc_paused():
    """A context manager that pauses Python's cyclic garbage collector, shared by concurrent
    and nested users (collect() and the routes that render its result): for code that
    allocates many containers, all referenced until it ends (a collection meanwhile frees
    nothing and walks the whole heap)."""
    return _gc_paused()


def collect(session, readable: set[str], now: dt.datetime,
            only: str | None = None) -> tuple[list[ProductStatus], list[InvalidSpec]]:
    """Statuses of the readable products (one product with ``only``) and the invalid files
    whose placeholder DAG the user can read.

    The run history comes from the per-process history cache (:mod:`dag_factory.slo.
    history_cache`), which keeps every product of the folder whoever asks and is brought up to
    date with the metadata DB on each call; the readable products are picked from it.

    Args:
        session: metadata DB session; readable: dag_ids the user may read;
        now: evaluation time (aware); only: a single product name, or None for all.

    Returns:
        (statuses in the products folder's order, invalid spec files).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: a failed read of the metadata DB.
    """
    with _gc_paused():
        return _collect(session, readable, now, only)


_PARTITION_START = operator.attrgetter("partition_start")
#: (the FolderResult, the SloTargets of each of its products) of the last call
_TARGETS: tuple[Any, dict[str, SloTargets]] | None = None
_DEFAULT_WINDOW = dt.timedelta(days=30)


def _targets_of(loaded) -> dict[str, SloTargets]:
    """Every product's :class:`SloTargets`, kept with the FolderResult they come from."""
    global _TARGETS
    kept = _TARGETS
    if kept is not None and kept[0] is loaded:
        return kept[1]
    targets = {n: SloTargets.from_spec(p.spec.slo) for n, p in loaded.products.items()}
    _TARGETS = (loaded, targets)
    return targets


def _collect(session, readable: set[str], now: dt.datetime,
             only: str | None) -> tuple[list[ProductStatus], list[InvalidSpec]]:
    from dag_factory.build.invalid import placeholder_dag_id
    from dag_factory.config import products_folder

    loaded = load_specs(products_folder())
    all_targets = _targets_of(loaded)
    products = {n: p for n, p in loaded.products.items() if n in readable and (only in (None, n))}
    targets = {n: all_targets[n] for n in products}
    since = now - max((t.window for t in targets.values()), default=_DEFAULT_WINDOW)
    # One history cache serves every user and page: it keeps every product of the folder over
    # the longest window of all; what this user may read is picked from it.
    records, latest = metadata.load_history(
        session, products, since, keep_dag_ids=loaded.products,
        keep_since=now - max((t.window for t in all_targets.values()), default=_DEFAULT_WINDOW))
    statuses = []
    url = base_url()
    for name, product in products.items():
        spec = product.spec
        slo = compute(targets[name], records[name], now, last_published_at=latest.get(name))
        statuses.append(ProductStatus(
            name=name, title=spec.title, version=spec.version, owner_team=spec.owner.team,
            owner_email=spec.owner.email, runbook=spec.owner.runbook,
            schedule=_schedule_text(spec.schedule), slo=slo,
            runs=sorted(records[name], key=_PARTITION_START, reverse=True),
            dag_url=f"{url}/dags/{name}"))
    invalid = []
    taken = set(loaded.products)
    for path, error in sorted(loaded.errors.items()):
        dag_id = placeholder_dag_id(path, loaded.claimed_names.get(path), taken)
        if dag_id in readable and only in (None, dag_id):
            located = [f"{path.name}:{i.line}:{i.column}: {i.field + ': ' if i.field else ''}"
                       f"{i.message}" for i in error.issues]  # file name only: no server paths
            invalid.append(InvalidSpec(file=path.name, dag_id=dag_id, errors=located))
    return statuses, invalid


#: what ``GET /products/{name}/contract`` can return
CONTRACT_FORMATS = ("view", "odcs", "odps")


def contract_of(name: str, readable: set[str], fmt: str = "view") -> Any:
    """Product ``name``'s contract for a user who may read the DAGs ``readable``: the page's
    :class:`~dag_factory.contract.view.ContractView` (``fmt="view"``), or the ODCS v3.1 /
    ODPS v1 export as JSON-ready data (``"odcs"``/``"odps"``, as ``dataproducts export``).

    Returns:
        The view or document; None when ``name`` is not a valid product of the products
        folder or the user may not read its DAG.

    Raises:
        ValueError: ``fmt`` is not one of :data:`CONTRACT_FORMATS`.
    """
    from dag_factory.config import products_folder
    from dag_factory.contract.odcs import configured_data_folder, odcs_contract
    from dag_factory.contract.odps import odps_product
    from dag_factory.contract.view import contract_view

    if fmt not in CONTRACT_FORMATS:
        raise ValueError(f"expected a format among {', '.join(CONTRACT_FORMATS)}, got {fmt!r}")
    loaded = load_specs(products_folder())
    product = loaded.products.get(name)
    if product is None or name not in readable:
        return None
    specs = {n: p.spec for n, p in loaded.products.items()}
    if fmt == "odps":
        return odps_product(product.spec, specs)
    contract = odcs_contract(product.spec, configured_data_folder())
    if fmt == "odcs":
        return contract
    return contract_view(product.spec, specs, readable, contract)
