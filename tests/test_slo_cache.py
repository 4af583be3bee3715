"""The per-process history cache (dag_factory/slo/history_cache.py) on a real SQLite metadata
DB: after each kind of change (a run changes state, a new run, a task fails or is cleared, a
publish, runs deleted, the window moves), what the cache answers equals a fresh whole read,
and it got there by reading only the changes (no whole read) except where the docs say."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from dag_factory.slo import history_cache, metadata

pytestmark = pytest.mark.usefixtures("airflow_db")

UTC = dt.timezone.utc
PRODUCTS = ("cache_alpha", "cache_beta", "cache_gamma")
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
DAYS = 40
LAST_END = dt.datetime(2031, 3, 1, tzinfo=UTC)  # the newest partition ends here
NOW = LAST_END + 3 * HOUR
SINCE = NOW - 30 * DAY
GATE = "quality_gate.verify_contract"


def _wall() -> dt.datetime:
    return dt.datetime.now(UTC)


def _session():
    from airflow import settings

    return settings.Session.session_factory()


def _run_row(dag_id: str, start: dt.datetime, state: str, *, manual: bool = False,
             updated_at: dt.datetime | None = None) -> dict:
    end = start + DAY
    run_after = end + 6 * HOUR if manual else end
    stamp = updated_at or _wall()
    kind = "manual" if manual else "scheduled"
    return {"dag_id": dag_id, "run_id": f"{kind}__{start.isoformat()}",
            "run_type": kind, "triggered_by": None,
            "logical_date": None if manual else start,
            "data_interval_start": None if manual else start,
            "data_interval_end": None if manual else end, "run_after": run_after,
            "queued_at": run_after, "start_date": None if state == "queued" else run_after + HOUR,
            "end_date": run_after + 2 * HOUR if state in ("success", "failed") else None,
            "state": state, "clear_number": 0, "created_at": stamp, "updated_at": stamp,
            "conf": {"data_interval_start": start.isoformat(), "data_interval_end": end.isoformat()}
            if manual else {}}


def _ti_row(dag_id: str, run_id: str, task_id: str, state: str | None, start: dt.datetime) -> dict:
    return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": -1,
            "state": state, "start_date": start, "end_date": start + HOUR, "try_number": 1,
            "max_tries": 0, "pool": "default_pool", "pool_slots": 1, "queue": "default",
            "priority_weight": 1, "operator": "QualityGateOperator", "updated_at": _wall()}


def _event_row(dag_id: str, run_id: str, start: dt.datetime, stamp: dt.datetime,
               quality: str = "pass") -> dict:
    return {"source_dag_id": dag_id, "source_run_id": run_id, "asset_id": 1,
            "source_task_id": "publish.swap_partitions", "source_map_index": -1,
            "timestamp": stamp, "extra": {"data_interval_start": start.isoformat(),
                                          "data_interval_end": (start + DAY).isoformat(),
                                          "quality": quality, "rows": 15}}


class History:
    """Writes runs, task instances and asset events of PRODUCTS as Airflow would."""

    def insert(self, model_name: str, rows: list[dict]) -> None:
        from sqlalchemy import insert

        model = self._model(model_name)
        with _session() as session, session.begin():
            session.execute(insert(model.__table__), rows)

    @staticmethod
    def _model(name: str):
        from airflow.models.asset import AssetEvent
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance

        return {"dag_run": DagRun, "task_instance": TaskInstance, "asset_event": AssetEvent}[name]

    def run(self, dag_id: str, start: dt.datetime, state: str, **kwargs) -> str:
        row = _run_row(dag_id, start, state, **kwargs)
        self.insert("dag_run", [row])
        return row["run_id"]

    def publish(self, dag_id: str, run_id: str, start: dt.datetime,
                stamp: dt.datetime | None = None, quality: str = "pass") -> None:
        self.insert("asset_event", [_event_row(dag_id, run_id, start,
                                               stamp or start + DAY + 2 * HOUR, quality)])

    def set_run(self, dag_id: str, run_id: str, **values) -> None:
        """An ORM update, as the scheduler makes (``updated_at`` set by its ``onupdate``)."""
        from sqlalchemy import update

        from airflow.models.dagrun import DagRun

        with _session() as session, session.begin():
            session.execute(update(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
                            .values(**values).execution_options(synchronize_session=False))

    def set_task(self, dag_id: str, run_id: str, task_id: str, state: str | None) -> None:
        from sqlalchemy import update

        from airflow.models.taskinstance import TaskInstance

        with _session() as session, session.begin():
            session.execute(update(TaskInstance).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id).values(state=state)
                .execution_options(synchronize_session=False))

    def delete_run(self, dag_id: str, run_id: str) -> None:
        from sqlalchemy import delete

        from airflow.models.dagrun import DagRun

        with _session() as session, session.begin():
            session.execute(delete(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))

    def clear(self) -> None:
        from sqlalchemy import delete

        from airflow.models.asset import AssetEvent
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance

        with _session() as session, session.begin():
            session.execute(delete(TaskInstance).where(TaskInstance.dag_id.in_(PRODUCTS)))
            session.execute(delete(DagRun).where(DagRun.dag_id.in_(PRODUCTS)))
            session.execute(delete(AssetEvent).where(AssetEvent.source_dag_id.in_(PRODUCTS)))


def start_of(day_index: int) -> dt.datetime:
    """The partition start of day ``day_index`` (0 = the oldest of the DAYS days)."""
    return LAST_END - DAY * (DAYS - day_index)


@pytest.fixture
def history(airflow_db, monkeypatch):
    """DAYS daily runs of each product (published, one failed at the gate per product, the
    newest one of cache_gamma running), an empty cache; cleared again afterwards."""
    monkeypatch.delenv("AIRFLOW__DATAPRODUCTS__SLO_FULL_REFRESH_SECONDS", raising=False)
    # no margin: a change must be found by its own updated_at stamp (or event id)
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__SLO_CHANGE_MARGIN_SECONDS", "0")
    h = History()
    h.clear()
    history_cache.clear()
    runs, events, tis = [], [], []
    for n, dag_id in enumerate(PRODUCTS):
        for k in range(DAYS):
            start = start_of(k)
            state = "failed" if k == 20 + n else "success"
            if dag_id == "cache_gamma" and k == DAYS - 1:
                state = "running"
            row = _run_row(dag_id, start, state)
            runs.append(row)
            if state == "success":
                events.append(_event_row(dag_id, row["run_id"], start, start + DAY + 2 * HOUR,
                                         "warn" if k % 7 == 0 else "pass"))
            if state == "failed":
                tis.append(_ti_row(dag_id, row["run_id"], GATE, "failed", start + DAY + HOUR))
    h.insert("dag_run", runs)
    h.insert("asset_event", events)
    h.insert("task_instance", tis)
    yield h
    history_cache.clear()
    h.clear()


def fresh(dag_ids=PRODUCTS, since=SINCE):
    """A whole read of the DB, not touching the cache."""
    with _session() as session:
        return metadata.load_history(session, dag_ids, since, cache=False)


def cached(dag_ids=PRODUCTS, since=SINCE, **keep):
    with _session() as session:
        return metadata.load_history(session, dag_ids, since, **keep)


def reads() -> dict[str, int]:
    (counts,) = history_cache.stats().values()
    return counts


def records_of(result, dag_id: str) -> dict[str, object]:
    return {r.run_id: r for r in result[0][dag_id]}


def test_the_first_call_reads_whole_and_later_calls_only_the_changes(history):
    first = cached()
    assert first == fresh()
    assert len(first[0]["cache_alpha"]) == 30 and set(first[1]) == set(PRODUCTS)
    assert reads() == {"full": 1, "incremental": 0, "runs": 3 * 30}
    assert cached() == first
    assert reads()["full"] == 1 and reads()["incremental"] == 1
    assert metadata.load_records(_session(), PRODUCTS, SINCE) == first[0]  # the old entry point


def test_a_run_finishing_and_publishing_shows_at_once(history):
    cached()
    run_id = f"scheduled__{start_of(DAYS - 1).isoformat()}"
    assert records_of(cached(), "cache_gamma")[run_id].state == "running"
    history.publish("cache_gamma", run_id, start_of(DAYS - 1), quality="warn")
    history.set_run("cache_gamma", run_id, state="success")
    now = cached()
    assert now == fresh()
    record = records_of(now, "cache_gamma")[run_id]
    assert (record.state, record.gate) == ("success", "warn") and record.published_at is not None
    assert now[1]["cache_gamma"] == record.published_at
    assert reads()["full"] == 1


def test_new_runs_show_at_once_in_dag_run_id_order(history):
    cached()
    new_day = LAST_END
    history.run("cache_alpha", new_day, "queued")
    rerun = history.run("cache_beta", start_of(21), "running", manual=True)  # re-run of its failure
    now = cached()
    assert now == fresh()
    assert [r.run_id for r in now[0]["cache_beta"]][-1] == rerun
    assert records_of(now, "cache_alpha")[f"scheduled__{new_day.isoformat()}"].state == "queued"
    history.set_run("cache_beta", rerun, state="success")
    history.publish("cache_beta", rerun, start_of(21))
    assert cached() == fresh()
    assert reads()["full"] == 1


def test_a_failed_task_shows_and_leaves_when_cleared(history):
    cached()
    run_id = f"scheduled__{start_of(DAYS - 1).isoformat()}"
    history.insert("task_instance",
                   [_ti_row("cache_gamma", run_id, GATE, "failed", start_of(DAYS))])
    failing = cached()
    assert failing == fresh()  # the task failed, the run is still running
    assert records_of(failing, "cache_gamma")[run_id].gate == "fail"
    history.set_run("cache_gamma", run_id, state="failed")
    assert cached() == fresh()
    # cleared: the task has no state, the run is queued again
    history.set_task("cache_gamma", run_id, GATE, None)
    history.set_run("cache_gamma", run_id, state="queued")
    cleared = cached()
    assert cleared == fresh()
    record = records_of(cleared, "cache_gamma")[run_id]
    assert (record.state, record.gate, record.failed_task) == ("queued", None, None)
    assert reads()["full"] == 1


def test_deleted_runs_show_after_the_full_refresh(history, monkeypatch):
    cached()
    gone = f"scheduled__{start_of(25).isoformat()}"
    history.delete_run("cache_alpha", gone)
    assert gone in records_of(cached(), "cache_alpha")  # not seen by an incremental read
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__SLO_FULL_REFRESH_SECONDS", "0.001")
    now = cached()
    assert now == fresh() and gone not in records_of(now, "cache_alpha")
    assert reads()["full"] == 2


def test_a_run_deleted_and_created_again_keeps_dag_run_id_order(history):
    cached()
    start = start_of(25)
    history.delete_run("cache_alpha", f"scheduled__{start.isoformat()}")
    again = history.run("cache_alpha", start, "failed")  # same run_id, a new dag_run.id
    now = cached()
    assert now == fresh()
    assert [r.run_id for r in now[0]["cache_alpha"]][-1] == again
    assert reads()["full"] == 1


def test_deleting_the_newest_run_is_seen_at_once(history):
    cached()
    newest = f"scheduled__{start_of(DAYS - 1).isoformat()}"
    history.delete_run("cache_gamma", newest)  # the highest dag_run.id went down
    now = cached()
    assert now == fresh() and newest not in records_of(now, "cache_gamma")
    assert reads()["full"] == 2


def test_no_cache_when_the_refresh_is_zero(history, monkeypatch):
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__SLO_FULL_REFRESH_SECONDS", "0")
    assert cached() == fresh()
    assert history_cache.stats() == {}


def test_the_window_moves_and_subsets_are_served_from_one_copy(history):
    keep = {"keep_dag_ids": PRODUCTS, "keep_since": NOW - 35 * DAY}
    assert cached(["cache_alpha"], SINCE, **keep) == fresh(["cache_alpha"])
    # another user, other products, a later window start: no whole read
    later = SINCE + 5 * DAY + 2 * HOUR
    others = ["cache_beta", "cache_gamma"]
    assert cached(others, later, **keep) == fresh(others, later)
    assert cached(PRODUCTS, NOW - 35 * DAY, **keep) == fresh(PRODUCTS, NOW - 35 * DAY)
    assert reads()["full"] == 1
    # a longer window than kept: one whole read, then answered from it
    assert cached(PRODUCTS, NOW - DAYS * DAY) == fresh(PRODUCTS, NOW - DAYS * DAY)
    assert reads()["full"] == 2
    # the window start moves on: the copy is cut
    assert cached(PRODUCTS, SINCE + 3 * DAY) == fresh(PRODUCTS, SINCE + 3 * DAY)
    assert reads()["full"] == 2 and reads()["runs"] == 3 * 27


def test_events_and_tasks_stamped_before_the_window_start(history):
    """A run due in the window whose publish (or failed task) is older than the window start:
    the whole read leaves them out, so the cached answer must too."""
    start = start_of(DAYS - 2)
    odd = history.run("cache_alpha", start, "success", manual=True)
    history.publish("cache_alpha", odd, start, stamp=SINCE - HOUR)
    cached(since=SINCE - 2 * HOUR)
    assert records_of(cached(), "cache_alpha")[odd].published_at is None
    assert cached() == fresh()


def test_changes_stamped_within_the_margin_are_seen(history, monkeypatch):
    """A change committed late, stamped before the previous read (clock skew, a long
    transaction): seen when within the margin, only at the next full refresh when older."""
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__SLO_CHANGE_MARGIN_SECONDS", "600")
    cached()
    run_id = f"scheduled__{start_of(DAYS - 1).isoformat()}"
    history.set_run("cache_gamma", run_id, state="failed",
                    updated_at=_wall() - dt.timedelta(minutes=5))
    assert cached() == fresh()
    history.set_run("cache_gamma", run_id, state="success", updated_at=_wall() - 2 * HOUR)
    assert records_of(cached(), "cache_gamma")[run_id].state == "failed"  # beyond the margin
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__SLO_FULL_REFRESH_SECONDS", "0.001")
    assert cached() == fresh()


def test_concurrent_calls_share_one_copy(history):
    results, errors = [], []

    def call():
        try:
            results.append(cached())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    expected = fresh()
    assert all(r == expected for r in results) and len(results) == 6
    assert reads()["full"] == 1 and reads()["incremental"] == 5


def test_collect_filters_readable_products_after_the_cache(history, tmp_path, monkeypatch):
    """Users with different readable sets share one copy; their statuses are those of a whole
    read (the cache disabled)."""
    from helpers import demo_yaml, products_folder

    from dag_factory.plugin.status import collect

    text = demo_yaml("flights_daily")
    folder = products_folder(tmp_path, [], {f"{name}.yaml": text.replace("name: flights_daily",
                                                                          f"name: {name}")
                                            for name in PRODUCTS})
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER", str(folder))

    def statuses(readable, only=None):
        with _session() as session:
            return collect(session, set(readable), NOW, only=only)

    one = statuses({"cache_beta"})
    everyone = statuses(PRODUCTS)
    assert [s.name for s in one[0]] == ["cache_beta"] and len(everyone[0]) == 3
    run_id = f"scheduled__{start_of(DAYS - 1).isoformat()}"
    history.set_run("cache_gamma", run_id, state="failed")
    page = statuses(PRODUCTS, only="cache_gamma")
    changed = statuses(PRODUCTS)
    assert reads()["full"] == 1
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__SLO_FULL_REFRESH_SECONDS", "0")
    assert statuses({"cache_beta"}) == one
    assert statuses(PRODUCTS, only="cache_gamma") == page
    assert statuses(PRODUCTS) == changed != everyone
