"""A per-process, incremental cache of products' run history, behind :mod:`metadata`.

The status views ask for the same products' history on every page load; reading it whole
(30,000 runs and events for 1,000 daily products) costs 1.5-2.5 s. This cache keeps the run
history of the windows in memory and, on each later call, reads from the metadata DB only what
changed since the previous read, merges it in, then answers from the merged copy:

* ``dag_run`` rows with ``updated_at`` >= the previous read's start minus a safety margin
  (Airflow stamps ``updated_at`` on every ORM or Core update of a run). No index serves
  ``updated_at``; the scan is limited to the ids from the oldest kept run on (a run older than
  that is in no window served), a range of the primary key: the runs of the windows, where
  runs are created in time order;
* ``asset_event`` rows with ``id`` above the last id known to be final (the primary key);
* failed ``task_instance`` rows with ``updated_at`` since the same time (the ``ti_state``
  index), and every failed task instance of the runs that changed (so a cleared task leaves);

so every call still reflects the database as it is (no time-to-live). Runs leave by date:
each call takes the runs of its own window. What a change log cannot show, deletions
(``airflow db clean``, deleting a DAG, deleting runs), is caught by a whole re-read when the
copy is older than ``[dataproducts] slo_full_refresh_seconds`` (default 300; 0 disables the
cache: every call reads the window whole), so a deleted run can show for up to that long
(deleting the newest run of the table is noticed at once: its highest id goes down).

The safety margin (``[dataproducts] slo_change_margin_seconds``, default 120) covers the
clock difference between the processes that write ``updated_at`` (scheduler, API server,
``dag.test()``) and this API server, and the time between a row's stamp and its commit: a
change stamped more than that before the previous read and committed after it is only seen at
the next whole read. A task instance that stops being ``failed`` while its run does not change
(marked ``success`` without clearing) is also only seen then.

One cache serves every user: it is keyed by the database (the session's engine URL) and holds
the union of the products asked for (the caller filters by what the user may read afterwards)
from the earliest window start asked for. Calls are serialised by one lock (the API server
calls from a thread pool). About 37 MiB for 1,000 daily products with 30-day windows.

The answer equals a whole read at the same moment (what :func:`read_full` and :func:`answer`
give on an empty cache); tests/test_slo_cache.py and ``bench/slo.py`` check it.
"""

from __future__ import annotations

import datetime as dt
import gc
import threading
import time
from collections import namedtuple
from typing import Iterable

from dag_factory.slo.history import RunRecord
from dag_factory.slo.metadata import _as_dict, _record, _utc

SECTION = "dataproducts"
#: defaults of ``[dataproducts] slo_full_refresh_seconds`` and ``slo_change_margin_seconds``
FULL_REFRESH_SECONDS = 300.0
CHANGE_MARGIN_SECONDS = 120.0
#: the window start of a call may move this far past the copy's before the copy is cut
_PRUNE_STEP = dt.timedelta(minutes=10)
#: run keys per ``IN`` list when re-reading the failed tasks of changed runs
_KEYS_PER_QUERY = 500
_KEPT_DATABASES = 4
_FAILED_TI_LOOKBACK = dt.timedelta(days=1)  # as the full read: tasks started since - 1 day
_EVENT_KEYS = ("data_interval_start", "data_interval_end", "quality")  # what _record reads
_FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
_ABSENT = object()

#: a failed task instance: what :func:`metadata._record` reads, plus its start for the window
FailedTI = namedtuple("FailedTI", "task_id map_index start_date end_date log_url")


class _Run:
    """One kept run: its row, its record (built with all kept inputs) and the latest window
    start (``since``) for which that record is what a full read with ``since`` would build."""

    __slots__ = ("id", "row", "last_since", "record", "exact_until")

    def __init__(self, run_id: int, row: tuple, record: RunRecord | None,
                 exact_until: dt.datetime) -> None:
        self.id = run_id
        self.row = row
        # the full read's filter is ``run_after >= since OR data_interval_end >= since``: the
        # run is in the window of every ``since`` up to the later of the two
        ends = [_utc(v) for v in (row[8], row[5]) if v is not None]
        self.last_since = max(ends) if ends else None
        self.record = record
        self.exact_until = exact_until

    def in_window(self, since: dt.datetime) -> bool:
        """Whether a full read with window start ``since`` reads this run."""
        return self.last_since is not None and since <= self.last_since


class Snapshot:
    """The kept history of one database (internal; guarded by :data:`_LOCK`)."""

    def __init__(self, dag_ids: frozenset[str], floor: dt.datetime) -> None:
        self.dag_ids = dag_ids
        self.floor = floor  # runs due, events stamped (tasks started - 1 day) since then
        self.runs: dict[str, dict[str, _Run]] = {d: {} for d in dag_ids}
        self.events: dict[tuple[str, str], tuple[int, dt.datetime, dict]] = {}
        self.failed: dict[tuple[str, str], dict[tuple[str, int], FailedTI]] = {}
        self.newest: dict[str, dt.datetime] = {}  # newest publish per product, any age
        self.full_at = 0.0  # time.monotonic() when the last full read started
        self.read_at = 0.0  # time.time() when the last read started
        self.event_base = 0  # asset_event ids up to this are all known
        self.event_marks: list[tuple[float, int]] = []  # (time.time() of a read, max id then)
        self.max_run_id = 0
        self.min_run_id = 0  # the oldest kept run: older runs are out of every window served
        #: dag_id -> (since, the last since with the same answer, the records): the answer of
        #: a product that did not change, while the window start moves by less than a run
        self.answers: dict[str, tuple[dt.datetime, dt.datetime, list]] = {}
        self.reads = {"full": 0, "incremental": 0}


_LOCK = threading.RLock()
_SNAPSHOTS: dict[str, Snapshot] = {}


def clear() -> None:
    """Forget every kept history (the next call of each database reads its windows whole)."""
    with _LOCK:
        _SNAPSHOTS.clear()


def stats() -> dict[str, dict[str, int]]:
    """Per database (engine URL, password hidden): ``{"full": n, "incremental": n, "runs": n}``,
    the reads made since the copy was created and the runs kept (for tests and benchmarks)."""
    with _LOCK:
        return {key: {**snap.reads, "runs": sum(len(r) for r in snap.runs.values())}
                for key, snap in _SNAPSHOTS.items()}


def _setting(key: str, default: float) -> float:
    try:
        from airflow.configuration import conf

        return conf.getfloat(SECTION, key, fallback=default)
    except Exception:  # noqa: BLE001 - a malformed value: the default, as for a missing one
        return default


def full_refresh_seconds() -> float:
    """``[dataproducts] slo_full_refresh_seconds``: the longest a copy is updated incrementally
    before it is read whole again (seconds, default 300; 0 or less: no cache)."""
    return _setting("slo_full_refresh_seconds", FULL_REFRESH_SECONDS)


def change_margin_seconds() -> float:
    """``[dataproducts] slo_change_margin_seconds``: how far before the previous read an
    incremental read looks for changed rows (seconds, default 120, at least 0)."""
    return max(0.0, _setting("slo_change_margin_seconds", CHANGE_MARGIN_SECONDS))


def _database_key(session) -> str:
    bind = session.get_bind()
    url = getattr(bind, "url", None)
    return url.render_as_string(hide_password=True) if url is not None else f"bind:{id(bind)}"


def history(session, dag_ids: Iterable[str], since: dt.datetime, *,
            keep_dag_ids: Iterable[str] = (), keep_since: dt.datetime | None = None,
            ) -> tuple[dict[str, list[RunRecord]], dict[str, dt.datetime]]:
    """The run records and newest publishes of products, from the per-process copy brought
    up to date with the metadata DB (see the module docstring).

    Args:
        session: a SQLAlchemy session on the metadata DB (only read).
        dag_ids: the products to return.
        since: the window start (aware UTC): runs due (``run_after``) or with a data interval
            ending since then, as :func:`metadata.load_history`.
        keep_dag_ids: more products to keep in the copy (e.g. every product of the folder,
            while ``dag_ids`` are those one user may read), so that later calls for other
            subsets are answered from the same copy.
        keep_since: keep the history from this earlier time (e.g. now - the longest window
            of all products), so that calls with a longer window need no full read.

    Returns:
        (dag_id -> list of :class:`RunRecord` in ``dag_run.id`` order, one per run that has a
        record; dag_id -> newest publish time whatever its age, for the products with one),
        equal to what a full read of the metadata DB with the same arguments returns.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: a failed query (the copy is then dropped).
    """
    wanted = list(dict.fromkeys(dag_ids))
    floor = since if keep_since is None else min(since, keep_since)
    refresh = full_refresh_seconds()
    if refresh <= 0:  # no cache: a private copy, read whole
        return answer(read_full(session, frozenset(wanted), since), wanted, since)
    key = _database_key(session)
    with _LOCK:
        snap = old = _SNAPSHOTS.get(key)
        all_ids = frozenset(wanted).union(keep_dag_ids)
        try:
            if snap is None or time.monotonic() - snap.full_at >= refresh:
                snap = read_full(session, all_ids, floor)
            elif not all_ids <= snap.dag_ids or floor < snap.floor or not update(session, snap):
                # more products or a longer window than kept, or a database that went back
                snap = read_full(session, all_ids | snap.dag_ids, min(floor, snap.floor))
            elif floor - snap.floor >= _PRUNE_STEP:
                prune(snap, floor)
        except BaseException:
            _SNAPSHOTS.pop(key, None)
            raise
        if snap is not old:
            if old is not None:  # the counts are per database, not per copy
                snap.reads = {k: n + (snap.reads[k]) for k, n in old.reads.items()}
            old = None
            # The new copy (~65,000 containers for 1,000 products) would be walked by the
            # collector's young, middle and old passes during the next requests (0.2-0.9 s
            # each on a busy 2-vCPU machine); one full pass now, in the request that read the
            # history whole anyway, makes it old at once.
            gc.collect()
        _SNAPSHOTS[key] = snap
        while len(_SNAPSHOTS) > _KEPT_DATABASES:
            _SNAPSHOTS.pop(next(iter(_SNAPSHOTS)))
        return answer(snap, wanted, since)


# --- reading ----------------------------------------------------------------------------------

def _run_columns():
    from airflow.models.dagrun import DagRun

    return (DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.conf, DagRun.data_interval_start,
            DagRun.data_interval_end, DagRun.start_date, DagRun.queued_at, DagRun.run_after,
            DagRun.id)


_SAME = {v: v for v in ("success", "failed", "running", "queued", "pass", "warn", "fail")}


def _slim(extra) -> tuple:
    """What :func:`metadata._record` reads of an event's extra, kept small (30,000 events)."""
    extra = _as_dict(extra)
    return tuple(_SAME.get(v, v) if isinstance(v, str) else v
                 for v in (extra.get(k, _ABSENT) for k in _EVENT_KEYS))


def _extra(slim: tuple) -> dict:
    return {k: v for k, v in zip(_EVENT_KEYS, slim) if v is not _ABSENT}


def _row(row, dag_id: str) -> tuple:
    """A ``dag_run`` row as kept: the product's own dag_id string, shared state strings and no
    empty conf (one less object per run; :func:`metadata._record` reads None as ``{}``)."""
    state = row[2]
    return (dag_id, row[1], _SAME.get(state, state) if isinstance(state, str) else state,
            row[3] or None, *row[4:])


def _failed_tis(session, *conditions) -> list:
    """Failed task instances matching ``conditions``: only the columns the record and
    ``log_url`` use, and not the DagRun that TaskInstance joins in by default."""
    from sqlalchemy import select
    from sqlalchemy.orm import lazyload, load_only

    from airflow.models.taskinstance import TaskInstance

    return list(session.scalars(
        select(TaskInstance)
        .options(load_only(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id,
                           TaskInstance.map_index, TaskInstance.try_number, TaskInstance.state,
                           TaskInstance.start_date, TaskInstance.end_date), lazyload("*"))
        .where(TaskInstance.state == "failed", *conditions)))


def _failed_ti(ti) -> FailedTI:
    return FailedTI(ti.task_id, ti.map_index, _utc(ti.start_date), ti.end_date, ti.log_url)


def _max_id(session, column) -> int:
    from sqlalchemy import func, select

    return session.execute(select(func.max(column))).scalar() or 0


def _event_cursor(snap: Snapshot, margin: float) -> int:
    """The ``asset_event`` id up to which every event is known.

    An event whose id was handed out before a read at time T is committed by T + margin (the
    margin's assumption); once a read started after T + margin has been made, every event with
    an id up to the newest id at T has been read."""
    cursor = snap.event_base
    keep_from = 0
    for i, (at, newest) in enumerate(snap.event_marks):
        if at <= snap.read_at - margin:
            cursor = max(cursor, newest)
            keep_from = i
    snap.event_base = cursor
    del snap.event_marks[:keep_from]
    return cursor


def read_full(session, dag_ids: frozenset[str], floor: dt.datetime) -> Snapshot:
    """Read the history of ``dag_ids`` since ``floor`` whole: a new copy.

    Args:
        session: a SQLAlchemy session on the metadata DB (only read); dag_ids: the products;
        floor: the earliest window start the copy serves (aware UTC).

    Returns:
        the :class:`Snapshot` (not registered: :func:`history` keeps the copies).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: a failed query.
    """
    from sqlalchemy import or_, select

    from airflow.models.asset import AssetEvent
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    snap = Snapshot(dag_ids, floor)
    snap.full_at, snap.read_at = time.monotonic(), time.time()
    if not dag_ids:
        return snap
    ids = sorted(dag_ids)
    margin = change_margin_seconds()
    snap.event_marks.append((snap.read_at, _max_id(session, AssetEvent.id)))
    # Events stamped before the margin: the ids up to the newest of them are final (a later
    # event with a lower id would be a transaction open longer than the margin).
    stamp_limit = dt.datetime.fromtimestamp(snap.read_at - margin, dt.timezone.utc)
    snap.event_base = session.execute(
        select(AssetEvent.id).where(AssetEvent.timestamp < stamp_limit)
        .order_by(AssetEvent.id.desc()).limit(1)).scalar() or 0
    rows = session.execute(
        select(*_run_columns())
        .where(DagRun.dag_id.in_(ids),
               or_(DagRun.run_after >= floor, DagRun.data_interval_end >= floor))).all()
    events = snap.events
    newest = snap.newest
    canon = {d: d for d in ids}
    for event_id, dag_id, run_id, stamp, extra in session.execute(
            select(AssetEvent.id, AssetEvent.source_dag_id, AssetEvent.source_run_id,
                   AssetEvent.timestamp, AssetEvent.extra)
            .where(AssetEvent.source_dag_id.in_(ids), AssetEvent.timestamp >= floor)):
        stamp = _utc(stamp)
        dag_id = canon[dag_id]
        key = (dag_id, run_id)
        kept = events.get(key)
        if kept is None or kept[0] < event_id:  # the newest event of a run wins
            events[key] = (event_id, stamp, extra)
        if dag_id not in newest or stamp > newest[dag_id]:
            newest[dag_id] = stamp
    keys = {(r[0], r[1]) for r in rows}
    failed = snap.failed
    for ti in _failed_tis(session, TaskInstance.dag_id.in_(ids),
                          TaskInstance.start_date >= floor - _FAILED_TI_LOOKBACK):
        key = (canon[ti.dag_id], ti.run_id)
        if key in keys:
            failed.setdefault(key, {})[(ti.task_id, ti.map_index)] = _failed_ti(ti)
    for key, (event_id, stamp, extra) in events.items():
        events[key] = (event_id, stamp, _slim(extra))
    older = [d for d in ids if d not in newest]
    if older:
        from dag_factory.slo.metadata import latest_publish

        newest.update(latest_publish(session, older))
    runs = snap.runs
    rows.sort(key=lambda r: r[9])
    for row in rows:
        dag_id = canon[row[0]]
        runs[dag_id][row[1]] = _entry(snap, _row(row, dag_id))
    snap.max_run_id = max((r[9] for r in rows), default=0)
    snap.min_run_id = rows[0][9] if rows else 0
    snap.reads["full"] += 1
    return snap


def _entry(snap: Snapshot, row: tuple) -> _Run:
    """A run's entry from its row and the kept event and failed tasks of its key."""
    key = (row[0], row[1])
    event = snap.events.get(key)
    tis = snap.failed.get(key)
    until = _FAR_FUTURE
    if event is not None:
        until = event[1]
    failures: list = []
    if tis:
        failures = sorted(tis.values(), key=lambda t: (t.task_id, t.map_index))
        until = min(until, min(t.start_date for t in failures) + _FAILED_TI_LOOKBACK)
    record = _record(row, None if event is None else (event[1], _extra(event[2])), failures)
    return _Run(row[9], row, record, until)


def _rebuilt(snap: Snapshot, entry: _Run, since: dt.datetime) -> RunRecord | None:
    """The record a full read with window start ``since`` builds: without an event stamped
    before ``since`` and failed tasks started before ``since`` - 1 day."""
    key = (entry.row[0], entry.row[1])
    event = snap.events.get(key)
    if event is not None and event[1] < since:
        event = None
    cut = since - _FAILED_TI_LOOKBACK
    failures = sorted((t for t in snap.failed.get(key, {}).values() if t.start_date >= cut),
                      key=lambda t: (t.task_id, t.map_index))
    return _record(entry.row, None if event is None else (event[1], _extra(event[2])), failures)


def update(session, snap: Snapshot) -> bool:
    """Bring ``snap`` up to date with the rows changed since its last read (see the module
    docstring for what is read).

    Args:
        session: a SQLAlchemy session on the metadata DB (only read); snap: the copy, changed
            in place (under the caller's lock).

    Returns:
        True; False when the database looks reset or its newest run was deleted (the highest
        ``dag_run`` or ``asset_event`` id went down): the caller reads it whole instead.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: a failed query (``snap`` is then half updated: drop it).
    """
    from sqlalchemy import select

    from airflow.models.asset import AssetEvent
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    margin = change_margin_seconds()
    started = time.time()
    if not snap.dag_ids:
        snap.read_at = started
        return True
    changed_since = dt.datetime.fromtimestamp(snap.read_at - margin, dt.timezone.utc)
    max_run_id = _max_id(session, DagRun.id)
    max_event_id = _max_id(session, AssetEvent.id)
    if max_run_id < snap.max_run_id or (
            snap.event_marks and max_event_id < snap.event_marks[-1][1]):
        return False
    cursor = _event_cursor(snap, margin)
    snap.event_marks.append((started, max_event_id))
    dag_ids, floor = snap.dag_ids, snap.floor
    dirty: set[tuple[str, str]] = set()
    changed_rows = {}
    # A run older (by id) than the oldest kept one was not in the window at the whole read and
    # never enters it (its run_after and data interval do not change): the scan is a range of
    # the primary key, about the runs of the window where runs are created in time order.
    for row in session.execute(select(*_run_columns()).where(
            DagRun.id >= snap.min_run_id, DagRun.updated_at >= changed_since)):
        if row[0] in dag_ids:
            changed_rows[(row[0], row[1])] = _row(row, row[0])
    for event_id, dag_id, run_id, stamp, extra in session.execute(
            select(AssetEvent.id, AssetEvent.source_dag_id, AssetEvent.source_run_id,
                   AssetEvent.timestamp, AssetEvent.extra).where(AssetEvent.id > cursor)):
        if dag_id not in dag_ids:
            continue
        stamp = _utc(stamp)
        if dag_id not in snap.newest or stamp > snap.newest[dag_id]:
            snap.newest[dag_id] = stamp
        key = (dag_id, run_id)
        kept = snap.events.get(key)
        if stamp >= floor and (kept is None or kept[0] < event_id):
            snap.events[key] = (event_id, stamp, _slim(extra))
            dirty.add(key)
    cut = floor - _FAILED_TI_LOOKBACK
    # every failed task of a changed run (a cleared task is no longer failed), then the
    # failed tasks changed since (a task fails before its run does)
    keys = list(changed_rows)
    for first in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[first:first + _KEYS_PER_QUERY]
        found: dict[tuple[str, str], dict] = {k: {} for k in chunk}
        for ti in _failed_tis(session, TaskInstance.dag_id.in_({k[0] for k in chunk}),
                              TaskInstance.run_id.in_({k[1] for k in chunk})):
            key = (ti.dag_id, ti.run_id)
            if key in found and ti.start_date is not None and _utc(ti.start_date) >= cut:
                found[key][(ti.task_id, ti.map_index)] = _failed_ti(ti)
        for key, tis in found.items():
            if tis:
                snap.failed[key] = tis
            else:
                snap.failed.pop(key, None)
    for ti in _failed_tis(session, TaskInstance.updated_at >= changed_since):
        if ti.dag_id not in dag_ids or ti.start_date is None or _utc(ti.start_date) < cut:
            continue
        key = (ti.dag_id, ti.run_id)
        snap.failed.setdefault(key, {})[(ti.task_id, ti.map_index)] = _failed_ti(ti)
        dirty.add(key)
    answers = snap.answers
    for key in dirty:
        answers.pop(key[0], None)
    unordered = set()
    for key, row in changed_rows.items():
        answers.pop(key[0], None)
        runs = snap.runs[key[0]]
        entry = _entry(snap, row)
        old = runs.get(key[1])
        dirty.discard(key)
        if not entry.in_window(floor):
            runs.pop(key[1], None)
        elif old is not None and old.id == entry.id:
            runs[key[1]] = entry
        else:  # a new run, or one deleted and created again (a new id): keep dag_run.id order
            if old is not None:
                del runs[key[1]]
            if runs and entry.id < next(reversed(runs.values())).id:
                unordered.add(key[0])
            runs[key[1]] = entry
    for dag_id in unordered:
        snap.runs[dag_id] = dict(sorted(snap.runs[dag_id].items(), key=lambda item: item[1].id))
    for key in dirty:
        entry = snap.runs.get(key[0], {}).get(key[1])
        if entry is not None:
            snap.runs[key[0]][key[1]] = _entry(snap, entry.row)
    snap.max_run_id = max(snap.max_run_id, max_run_id)
    snap.read_at = started
    snap.reads["incremental"] += 1
    return True


def prune(snap: Snapshot, floor: dt.datetime) -> None:
    """Drop from ``snap`` (in place) what no call with a window start at or after ``floor``
    (aware UTC) uses, and make ``floor`` its earliest window start."""
    oldest = None
    for runs in snap.runs.values():
        gone = [run_id for run_id, entry in runs.items() if not entry.in_window(floor)]
        for run_id in gone:
            del runs[run_id]
        for entry in runs.values():  # in id order: the first is the product's oldest
            oldest = entry.id if oldest is None else min(oldest, entry.id)
            break
    snap.min_run_id = oldest or 0
    snap.answers.clear()
    snap.events = {k: v for k, v in snap.events.items() if v[1] >= floor}
    cut = floor - _FAILED_TI_LOOKBACK
    kept = {}
    for key, tis in snap.failed.items():
        tis = {k: t for k, t in tis.items() if t.start_date >= cut}
        if tis:
            kept[key] = tis
    snap.failed = kept
    snap.floor = floor


def answer(snap: Snapshot, dag_ids: list[str], since: dt.datetime
           ) -> tuple[dict[str, list[RunRecord]], dict[str, dt.datetime]]:
    """The records of ``dag_ids`` with window start ``since`` and their newest publishes, from
    ``snap`` (see :func:`history`).

    Args:
        snap: the copy; dag_ids: the products; since: the window start (aware UTC), not
            before ``snap.floor``.

    Returns:
        (dag_id -> new list of :class:`RunRecord` in ``dag_run.id`` order, the records shared
        between calls (frozen); dag_id -> newest publish, for the products with one).
    """
    records: dict[str, list[RunRecord]] = {}
    latest = {}
    newest = snap.newest
    answers = snap.answers
    for dag_id in dag_ids:
        kept = answers.get(dag_id)
        if kept is not None and kept[0] <= since <= kept[1]:
            records[dag_id] = kept[2][:]
        else:
            out, through = _answer(snap, snap.runs.get(dag_id, {}), since)
            answers[dag_id] = (since, through, out)
            records[dag_id] = out[:]
        if dag_id in newest:
            latest[dag_id] = newest[dag_id]
    return records, latest


def _answer(snap: Snapshot, runs: dict[str, _Run], since: dt.datetime):
    """One product's records for ``since``, and the latest window start with the same answer
    (the next run to leave the window, or record to change; ``since`` itself after a rebuild)."""
    out = []
    through = _FAR_FUTURE
    for entry in runs.values():
        last = entry.last_since
        if last is None or since > last:
            continue
        if last < through:
            through = last
        if since <= entry.exact_until:
            record = entry.record
            if entry.exact_until < through:
                through = entry.exact_until
        else:
            record = _rebuilt(snap, entry, since)
            through = since
        if record is not None:
            out.append(record)
    return out, through
