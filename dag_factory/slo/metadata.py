"""Read products' run history from the Airflow metadata DB into SLI engine records.

Runs on the API-server side (the plugin, ``dataproducts status``), never in a task: Airflow 3
forbids ORM access from tasks. A handful of bulk queries serve every product at once:

* ``dag_run``: state, run conf and data interval of every run in the window;
* ``task_instance``: the failed task of failed runs (stage, task, log URL);
* ``asset_event``: what publish recorded per run (partition interval, gate outcome,
  published_at), and the newest publish of each product whatever its age (freshness);
* ``xcom`` (``quality`` key): the failing checks, for the latest failure only.

:func:`load_history` reads the records and the newest publishes together (what the status
views use). It answers from a per-process copy of the history that each call brings up to date
by reading only the rows changed since the previous call (:mod:`dag_factory.slo.history_cache`;
the first call, and one every ``[dataproducts] slo_full_refresh_seconds``, reads the window
whole). A whole read of 1,000 products with 30 daily runs in the window handles 30,000 rows of
``dag_run`` and of ``asset_event``, and none of Airflow's indexes serves its filters
(``source_dag_id``, ``timestamp``, ``run_after OR data_interval_end``), so the database reads
every row of both tables for those products. Figures: docs/benchmarks.md, "SLO API".

A run is *due* when Airflow made it due (``run_after``): the interval end for scheduled runs,
the trigger time for manual runs and backfills, so re-processing old partitions counts in the
window in which it happens.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable

from dag_factory.interval import parse_moment
from dag_factory.slo.history import RunRecord

GATE_TASK = "quality_gate.verify_contract"
_STATES = {"success", "failed", "running", "queued"}


def _as_dict(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, (str, bytes)):
        try:
            loaded = json.loads(value)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _partition(conf: dict, start, end, event_extra: dict | None):
    """A run's partition interval: run conf, Airflow's interval, or what publish recorded."""
    if conf.get("data_interval_start") and conf.get("data_interval_end"):
        interval = parse_moment(conf["data_interval_start"]), parse_moment(conf["data_interval_end"])
        if None not in interval and interval[1] > interval[0]:
            return interval
    if start is not None and end is not None and end > start:
        return _utc(start), _utc(end)
    if event_extra:
        interval = (parse_moment(event_extra.get("data_interval_start")),
                    parse_moment(event_extra.get("data_interval_end")))
        if None not in interval:
            return interval
    return None


def load_records(session, dag_ids: Iterable[str], since: dt.datetime, *,
                 cache: bool = True) -> dict[str, list[RunRecord]]:
    """Run records per product for runs started (or due) since ``since``.

    Args:
        session: a SQLAlchemy session on the metadata DB.
        dag_ids: the products to read.
        since: the earliest run to read (aware UTC), e.g. now - the largest SLO window.
        cache: answer from the per-process copy brought up to date (default), or read the
            window whole without touching the copy.

    Returns:
        dag_id -> list of :class:`RunRecord` in ``dag_run.id`` order (runs whose partition
        cannot be placed are left out).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: a failed query.
    """
    return load_history(session, dag_ids, since, cache=cache)[0]


def load_history(session, dag_ids: Iterable[str], since: dt.datetime, *, cache: bool = True,
                 keep_dag_ids: Iterable[str] = (), keep_since: dt.datetime | None = None,
                 ) -> tuple[dict[str, list[RunRecord]], dict[str, dt.datetime]]:
    """:func:`load_records` and :func:`latest_publish` of the same products, sharing one read
    of ``asset_event``.

    A product with a publish since ``since`` has its newest publish among the events read for
    its records; the whole-history ``max(timestamp)`` (a scan of ``asset_event``: no index
    serves ``source_dag_id``) runs only for the products without one, if any, on a whole read.

    Args:
        session: a SQLAlchemy session on the metadata DB.
        dag_ids: the products to read; since: the window start (aware UTC), as
            :func:`load_records`.
        cache: use the per-process copy (:func:`dag_factory.slo.history_cache.history`,
            default) or read the window whole without touching it.
        keep_dag_ids, keep_since: with ``cache``, also keep these products and the history
            from this earlier time in the copy, so that calls for other products or a longer
            window (up to ``keep_since``) are answered from it without a whole read.

    Returns:
        (dag_id -> records, as :func:`load_records`; dag_id -> newest publish (aware UTC), as
        :func:`latest_publish`, for the products with one).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: a failed query.
    """
    from dag_factory.slo import history_cache

    if not cache:
        wanted = list(dict.fromkeys(dag_ids))
        return history_cache.answer(history_cache.read_full(session, frozenset(wanted), since),
                                    wanted, since)
    return history_cache.history(session, dag_ids, since, keep_dag_ids=keep_dag_ids,
                                 keep_since=keep_since)


_EARLIEST = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _record(run, event, failed_tis) -> RunRecord | None:
    """The record of one run: ``run`` = the row (dag_id, run_id, state, conf,
    data_interval_start, data_interval_end, start_date, queued_at, run_after, ...),
    ``event`` = (published_at, extra dict) or None, ``failed_tis``: objects with ``task_id``,
    ``end_date`` and ``log_url`` (the first of the earliest end date is the failure)."""
    run_id, state, conf, start, end, started, queued, run_after = run[1:9]
    state = str(state.value if hasattr(state, "value") else state)
    if state not in _STATES:
        return None
    published_at, extra = event if event else (None, {})
    interval = _partition(_as_dict(conf), start, end, extra)
    if interval is None:
        return None
    # the first failure (stable: the first of equal end dates), as sorting would give
    first_failed = min(failed_tis, key=lambda ti: ti.end_date or _EARLIEST) if failed_tis else None
    quality = extra.get("quality")
    gate = quality if quality in ("pass", "warn") else None
    if first_failed is not None and first_failed.task_id == GATE_TASK:
        gate = "fail"
    return RunRecord(
        run_id=run_id, partition_start=interval[0], partition_end=interval[1],
        due_at=_utc(run_after) or interval[1], state=state, gate=gate, published_at=published_at,
        started_at=_utc(started or queued or run_after),
        failed_stage=first_failed.task_id.split(".", 1)[0] if first_failed else None,
        failed_task=first_failed.task_id if first_failed else None,
        log_url=first_failed.log_url if first_failed else None)


def latest_publish(session, dag_ids: Iterable[str]) -> dict[str, dt.datetime]:
    """The newest publish time of each product, however old (for freshness).

    Args:
        session: a SQLAlchemy session on the metadata DB; dag_ids: the products.

    Returns:
        dag_id -> the newest ``asset_event.timestamp`` of its runs (aware UTC), for the
        products with at least one event.
    """
    from sqlalchemy import func, select

    from airflow.models.asset import AssetEvent

    rows = session.execute(select(AssetEvent.source_dag_id, func.max(AssetEvent.timestamp))
                           .where(AssetEvent.source_dag_id.in_(list(dag_ids)))
                           .group_by(AssetEvent.source_dag_id)).all()
    return {dag_id: _utc(stamp) for dag_id, stamp in rows}


def failing_checks(session, dag_id: str, run_id: str) -> list[dict]:
    """The failing checks the gate recorded in XCom (key ``quality``) for one run."""
    from sqlalchemy import select

    from airflow.models.xcom import XComModel

    value = session.execute(select(XComModel.value).where(
        XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "quality",
        XComModel.task_id == GATE_TASK)).scalar()
    record = _as_dict(value)
    return [c for c in record.get("checks", []) if c.get("outcome") == "failed"]
