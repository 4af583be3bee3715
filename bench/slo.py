"""SLO API benchmark: latency of the all-products SLO view on a metadata DB with a year of history.

What it measures
----------------
``dag_factory.plugin.status.collect(session, readable, now)``: the code path behind
``GET /dataproducts/products``, the plugin's SLO page and ``dataproducts status`` (read every
product spec, bulk-read the run history from the metadata DB, run the SLI engine per product),
for N products (default 1,000) with D days (default 365) of daily runs each, on each backend
(default: SQLite and the local Postgres):

1. **Build** (not timed against the target; progress on stderr): a throw-away work folder per
   backend with its own ``AIRFLOW_HOME`` and a products folder of N renamed copies of
   ``products/flights_daily.yaml`` (``flights_daily_0001`` ..., written by ``bench/parse.py``'s
   generator). SQLite: ``$AIRFLOW_HOME/airflow.db``; Postgres: a new database
   ``dp_bench_<random>`` on ``--pg-url`` (dropped at the end unless ``--keep``).
   ``python -m airflow db migrate`` creates the schema, then a subprocess bulk-inserts
   (SQLAlchemy core) into Airflow's own tables, day by day across all products (5 days per
   transaction) as the scheduler creates runs, so ids grow with time and the runs of the SLO
   window are the newest rows, as in a real metadata DB:

   * ``dag`` (one ``DagModel`` row per product, active and unpaused) and its ``dag_bundle``;
   * ``dag_run``: one scheduled run per day and product (``CronDataIntervalTimetable``: data
     interval = the day, ``run_after`` = its end, ``conf`` = ``{}``), about 2% ``failed``
     (``--failed-fraction``), half of those re-run 1-6 hours later by a manual run with
     ``conf = {"data_interval_start", "data_interval_end"}`` (the conf ``dag_factory.interval``
     reads for manual runs);
     the newest day is ``running`` for 1% of the products and ``queued`` for another 1%;
   * ``asset`` (``dataproduct://<name>/v1``) and ``asset_event``: one event per successful run
     with the ``extra`` that ``PublishOperator._emit_asset_event`` writes (``quality`` pass,
     10% warn);
   * ``task_instance``: with ``--task-instances all`` (default) the 5 task instances of every
     run (``ingest.flights``, ``ingest.airlines``, ``transform.run_sql``,
     ``quality_gate.verify_contract``, ``publish.swap_partitions``: success, or for failed runs
     upstream successes, the failed task (``ingest.flights``, ``transform.run_sql`` or
     ``quality_gate.verify_contract``) and ``upstream_failed`` downstream; no state yet for the
     queued and running runs' later tasks), so the table has its production size;
     ``--task-instances failed`` writes only the failed runs' ones (faster to build).

   The newest partition ends at today's 00:00 UTC and ``now`` is 03:00 UTC, so a 30-day SLO
   window holds ~30 runs per product. Postgres gets ``VACUUM ANALYZE`` after the load (what
   autovacuum does after a bulk load); SQLite is left as Airflow leaves it (no ``ANALYZE``).
2. **Measure**, in a fresh Python subprocess per backend (nothing shared with the build):
   ``import airflow`` and ``dag_factory.plugin.status`` (not timed); ``readable`` = every
   dag_id of the ``dag`` table (what an admin may read); each call on a new unscoped session
   like the API's ``SessionDep``:

   * **cold**: the first call of the process: reads and validates every spec, reads the whole
     window of history into the per-process history cache (``dag_factory.slo.history_cache``);
   * **warm**: ``--repeats`` (default 20) calls with nothing changed in between: each reads
     only what changed since the previous call (nothing, here) and answers from the cache;
   * **after change**: ``--changes`` (default 10) calls, each after a round of realistic
     changes written to the DB between calls (not timed): 10 products get a manual re-run of
     their newest partition that succeeded and published (a ``dag_run`` and an
     ``asset_event``), 2 get one that failed at the gate (a ``dag_run`` and a failed
     ``task_instance``), and one of the running runs finishes and publishes (an UPDATE of
     ``dag_run``, an ``asset_event``), all stamped ``updated_at`` = the wall clock, as Airflow
     does;
   * **refresh**: 3 calls after emptying the history cache, with the specs kept: the whole read
     that the first call, and one call every ``[dataproducts] slo_full_refresh_seconds``
     (default 300), pays.

   The table gives p50, p95 (nearest rank) and max of each kind, the warm calls' median CPU
   time and time in Python's cyclic garbage collector (``gc.callbacks``), and the median time
   of turning the result into the route's JSON body (what ``list_products`` does, outside
   ``collect``). Five more warm calls are timed per phase for "where the time goes": the
   functions of ``PHASES`` that the measured code has (spec loading, the cache's whole read,
   incremental update and answer, the engine's ``compute`` over all products), and the rest of
   ``collect``. The rows written by the change rounds are deleted at the end (the running runs
   set back), so a kept build measures the same again. To measure another version of
   ``dag_factory`` on the same databases, put it first on ``PYTHONPATH`` and ``--reuse`` (the
   report says which ``dag_factory`` it measured; one without the history cache has no
   refresh figure).
3. **Errors** (exit 1): a subprocess that fails, a result without exactly the N products, an
   invalid spec, products with too few or too many runs in the window, two calls on the same
   data whose results differ (the cold and the last warm call), or an answer of the cache after
   the change rounds that differs from a whole re-read of the same DB (the cache emptied: the
   first refresh call). The result's SHA-256 (every status with its runs, as JSON) is printed:
   an optimisation of the reader must leave it unchanged for the same database (``--reuse``).
   A missed target never changes the exit code.

``--profile`` prints the top cumulative entries of ``cProfile`` for one warm call per backend.
``--http`` also starts ``airflow api-server`` on the built DB (``SimpleAuthManager``, user
``admin``, one worker process: the history cache is per process), gets a token from
``POST /auth/token`` and times ``GET /dataproducts/products`` end to end (authentication, the
auth manager's readable dag_ids, ``collect``, JSON) the same way: one cold request,
``--repeats`` warm ones and ``--changes`` after a round of changes each (written by a helper
subprocess between requests).

Usage (from the repo root)::

    .venv/bin/python bench/slo.py                          # 1000 products x 365 days, both backends
    .venv/bin/python bench/slo.py --backends sqlite --products 100 --days 90
    .venv/bin/python bench/slo.py --profile --http --keep  # keep the DBs: re-measure with --reuse
    .venv/bin/python bench/slo.py --reuse /tmp/bench-slo-XXXX --profile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from gc_timer import GcTimer  # bench/ is on sys.path: the script's own folder

# Only the standard library is imported at module level: the measuring subprocess runs this
# same file, and must not have airflow or dag_factory imported before it starts.

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432"
DEFAULT_BACKENDS = ("sqlite", "postgres")
TARGET_P95_MS = 300.0
TARGET_TEXT = f"p95 < {TARGET_P95_MS:.0f} ms"
BATCH_DAYS = 5  # days of history (of all products) per insert transaction
TASKS = ("ingest.flights", "ingest.airlines", "transform.run_sql",
         "quality_gate.verify_contract", "publish.swap_partitions")
OPERATORS = {"ingest": "IngestOperator", "transform": "TransformOperator",
             "quality_gate": "QualityGateOperator", "publish": "PublishOperator"}
#: the task a failed run failed in, and how often
FAILED_TASKS = (("ingest.flights", 0.5), ("transform.run_sql", 0.1),
                ("quality_gate.verify_contract", 0.4))
RETRIES = 2  # the spec's default ``retries``; the gate has none
WARN_FRACTION = 0.10
RERUN_FRACTION = 0.5
BREAKDOWN_CALLS = 5
#: the code the figures depend on (reported when it differs from the commit)
MEASURED_CODE = ("dag_factory/slo", "dag_factory/plugin", "dag_factory/spec")
PROFILE_TOP = 25
#: (label, module, attribute, nested in (module, attribute)) of the functions the phase
#: breakdown times, when the module has them: the code before and after the reader's
#: optimisation has different ones. A nested phase is part of its parent's time.
PHASES = (
    ("specs: load_specs (stat the folder; load when changed)", "dag_factory.plugin.status",
     "load_specs", None),
    ("specs: load_products (read + validate every file)", "dag_factory.spec.loading",
     "load_products", ("dag_factory.plugin.status", "load_specs")),
    ("metadata.load_history (the history, cached or not)", "dag_factory.slo.metadata",
     "load_history", None),
    ("metadata.load_records (dag_run, asset_event, task_instance)", "dag_factory.slo.metadata",
     "load_records", None),
    ("history_cache.read_full (whole read of the window)", "dag_factory.slo.history_cache",
     "read_full", ("dag_factory.slo.metadata", "load_history")),
    ("history_cache.update (read the changed rows, merge)", "dag_factory.slo.history_cache",
     "update", ("dag_factory.slo.metadata", "load_history")),
    ("history_cache.answer (the records of the window)", "dag_factory.slo.history_cache",
     "answer", ("dag_factory.slo.metadata", "load_history")),
    ("metadata.latest_publish (newest event per product)", "dag_factory.slo.metadata",
     "latest_publish", ("dag_factory.slo.metadata", "load_history")),
    ("engine: compute (all products)", "dag_factory.plugin.status", "compute", None),
)
#: one round of changes between two "after change" calls (see the module docstring)
CHANGE_RERUNS, CHANGE_FAILURES = 10, 2
CHANGE_PREFIX = "bench_change__"
REFRESH_CALLS = 3


def _progress(message: str) -> None:
    print(f"[slo] {message}", file=sys.stderr, flush=True)


# --- the history -------------------------------------------------------------------------------

def _history(name: str, index: int, days: int, last_end, seed: int, log_template_id,
             all_tis: bool):
    """The rows of one product, day by day, oldest first: yields (dag_runs, asset events
    without asset_id, task instances) of each day."""
    import datetime as dt

    rng = random.Random(f"{seed}:{name}")
    day = dt.timedelta(days=1)
    sec = dt.timedelta(seconds=1)

    def run_row(run_id, run_type, triggered_by, logical, start, end, run_after, queued, started,
                ended, state, conf):
        return {"dag_id": name, "run_id": run_id, "run_type": run_type,
                "triggered_by": triggered_by, "logical_date": logical,
                "data_interval_start": start, "data_interval_end": end, "run_after": run_after,
                "queued_at": queued, "start_date": started, "end_date": ended, "state": state,
                "conf": conf, "clear_number": 0, "created_at": queued,
                "updated_at": ended or started or queued, "last_scheduling_decision": ended or started,
                "log_template_id": log_template_id, "bundle_version": None}

    def ti_row(run_id, task_id, state, start, end, try_number, queued):
        stage = task_id.split(".", 1)[0]
        return {"dag_id": name, "run_id": run_id, "task_id": task_id, "map_index": -1,
                "state": state, "start_date": start, "end_date": end,
                "duration": (end - start).total_seconds() if start and end else None,
                "try_number": try_number, "max_tries": 0 if stage == "quality_gate" else RETRIES,
                "pool": "default_pool", "pool_slots": 1, "queue": "default",
                "priority_weight": 1, "operator": OPERATORS[stage],
                "custom_operator_name": None, "hostname": "worker-1" if start else None,
                "unixname": "airflow" if start else None, "queued_dttm": queued,
                "scheduled_dttm": queued, "executor": None, "pid": None,
                "updated_at": end or start or queued, "dag_version_id": None,
                "task_display_name": task_id.split(".", 1)[1]}

    def task_instances(run_id, state, started, failed_task=None, running_task=None):
        """Five TIs in pipeline order; returns (rows, the time the last one ended)."""
        rows, clock, latest = [], started, started
        reached_failure = reached_running = False
        for task_id in TASKS:
            if reached_failure and task_id != "ingest.airlines":  # downstream of the failure
                rows.append(ti_row(run_id, task_id, "upstream_failed", latest, latest, 0, None))
                continue
            if reached_running or state == "queued" or started is None:
                rows.append(ti_row(run_id, task_id, None, None, None, 0, None))
                continue
            queued = clock + sec * rng.uniform(0.2, 2)
            begin = queued + sec * rng.uniform(0.2, 2)
            if task_id == running_task:
                rows.append(ti_row(run_id, task_id, "running", begin, None, 1, queued))
                reached_running = True
                continue
            end = begin + sec * rng.uniform(5, 90)
            if task_id == failed_task:
                tries = 1 if task_id.startswith("quality_gate") else RETRIES + 1
                rows.append(ti_row(run_id, task_id, "failed", begin, end, tries, queued))
                reached_failure = True
            else:
                rows.append(ti_row(run_id, task_id, "success", begin, end, 1, queued))
            latest = max(latest, end)
            if task_id != "ingest.flights":  # the two ingest tasks run side by side
                clock = latest
        return rows, max(latest, clock) if started else clock

    def event_row(run_id, start, end, stamp):
        quality = "warn" if rng.random() < WARN_FRACTION else "pass"
        extra = {"product": name, "version": "1.0.0", "rows": rng.randint(14, 16),
                 "partitions": [start.date().isoformat()],
                 "data_interval_start": start.isoformat(), "data_interval_end": end.isoformat(),
                 "quality": quality, "checks_passed": 11 - (quality == "warn"),
                 "checks_warned": int(quality == "warn"), "checks_failed": 0, "run_id": run_id}
        return {"source_dag_id": name, "source_run_id": run_id,
                "source_task_id": "publish.swap_partitions", "source_map_index": -1,
                "timestamp": stamp, "extra": extra}

    for k in range(days):
        runs, events, tis = [], [], []
        start = last_end - day * (days - k)
        end = start + day
        run_id = f"scheduled__{start.isoformat()}"
        newest = k == days - 1
        if newest and index % 100 == 0:
            state = "running"
        elif newest and index % 100 == 50:
            state = "queued"
        elif rng.random() < FAILED_FRACTION:
            state = "failed"
        else:
            state = "success"
        queued = end + sec * rng.uniform(1, 10)
        started = None if state == "queued" else queued + sec * rng.uniform(0.5, 5)
        failed_task = None
        if state == "failed":
            failed_task = rng.choices([t for t, _ in FAILED_TASKS], [w for _, w in FAILED_TASKS])[0]
        ti_rows, finished = task_instances(
            run_id, state, started, failed_task,
            running_task="transform.run_sql" if state == "running" else None)
        ended = finished + sec * rng.uniform(0.5, 3) if state in ("success", "failed") else None
        runs.append(run_row(run_id, "scheduled", "timetable", start, start, end, end, queued,
                            started, ended, state, {}))
        if state == "success":
            events.append(event_row(run_id, start, end, finished - sec * rng.uniform(0.1, 1)))
        if all_tis or state == "failed":
            tis += ti_rows
        if state == "failed" and not newest and rng.random() < RERUN_FRACTION:
            # the partition re-run by hand a few hours later: a manual run with the interval in conf
            trigger = ended + dt.timedelta(hours=rng.uniform(1, 6))
            rerun_id = f"manual__{trigger.isoformat()}"
            ti_rows, finished = task_instances(rerun_id, "success", trigger + sec * rng.uniform(0.5, 3))
            conf = {"data_interval_start": start.isoformat(), "data_interval_end": end.isoformat()}
            runs.append(run_row(rerun_id, "manual", "rest_api", None, None, None, trigger, trigger,
                                ti_rows[0]["queued_dttm"], finished + sec, "success", conf))
            events.append(event_row(rerun_id, start, end, finished - sec * rng.uniform(0.1, 1)))
            if all_tis:
                tis += ti_rows
        yield runs, events, tis


FAILED_FRACTION = 0.02  # set from --failed-fraction in the build subprocess


def _child_build(spec: dict, result_path: str) -> None:
    """Runs in a fresh interpreter against the migrated DB: bulk-insert the history."""
    import datetime as dt

    global FAILED_FRACTION
    FAILED_FRACTION = spec["failed_fraction"]
    from sqlalchemy import func, insert, select, text

    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.tasklog import LogTemplate
    from airflow.utils.types import DagRunTriggeredByType

    names = spec["names"]
    last_end = dt.datetime.fromisoformat(spec["last_end"])
    now = dt.datetime.now(dt.timezone.utc)
    engine = settings.engine
    counts = {"dag": 0, "dag_run": 0, "asset_event": 0, "task_instance": 0}
    started = time.perf_counter()
    with engine.begin() as conn:
        if conn.execute(select(DagBundleModel.name).where(DagBundleModel.name == "dags-folder")).first() is None:
            conn.execute(insert(DagBundleModel.__table__), [{"name": "dags-folder", "active": True}])
        log_template_id = conn.execute(select(func.max(LogTemplate.id))).scalar()
        conn.execute(insert(DagModel.__table__), [{
            "dag_id": n, "is_paused": False, "is_stale": False, "bundle_name": "dags-folder",
            "fileloc": f"{spec['products_folder']}/load_products.py",
            "relative_fileloc": "load_products.py", "owners": "ops-analytics",
            "description": "NYC departures - daily carrier performance",
            "timetable_type": "airflow.timetables.interval.CronDataIntervalTimetable",
            "timetable_summary": "0 0 * * *", "max_active_tasks": 16, "max_active_runs": 16,
            "max_consecutive_failed_dag_runs": 0, "has_task_concurrency_limits": False,
            "last_parsed_time": now} for n in names])
        counts["dag"] = len(names)
        conn.execute(insert(AssetModel.__table__), [{
            "name": f"{n}.v1", "uri": f"dataproduct://{n}/v1", "group": "dataproduct", "extra": {},
            "created_at": now, "updated_at": now} for n in names])
        asset_ids = dict(conn.execute(select(AssetModel.uri, AssetModel.id)
                                      .where(AssetModel.uri.like("dataproduct://%"))).all())
    _progress(f"  dag, dag_bundle, asset: {len(names)} products")
    # Day by day across all products, as the scheduler creates runs: ids grow with time, so
    # the runs of the window are the newest rows of each table, as in a real metadata DB.
    histories = [_history(name, index, spec["days"], last_end, spec["seed"], log_template_id,
                          spec["task_instances"] == "all") for index, name in enumerate(names)]
    for first in range(0, spec["days"], BATCH_DAYS):
        batch = min(BATCH_DAYS, spec["days"] - first)
        runs, events, tis = [], [], []
        for name, days in zip(names, histories):
            asset_id = asset_ids[f"dataproduct://{name}/v1"]
            for _ in range(batch):
                r, e, t = next(days)
                for row in e:
                    row["asset_id"] = asset_id
                for row in r:  # an Enum column that stores the member's name
                    row["triggered_by"] = DagRunTriggeredByType(row["triggered_by"])
                runs += r
                events += e
                tis += t
        # one day of all products after the other (the generators give day by day)
        runs.sort(key=lambda row: row["run_after"])
        events.sort(key=lambda row: row["timestamp"])
        with engine.begin() as conn:
            conn.execute(insert(DagRun.__table__), runs)
            if events:
                conn.execute(insert(AssetEvent.__table__), events)
            if tis:
                conn.execute(insert(TaskInstance.__table__), tis)
        counts["dag_run"] += len(runs)
        counts["asset_event"] += len(events)
        counts["task_instance"] += len(tis)
        done = first + batch
        if done % (BATCH_DAYS * 6) == 0 or done == spec["days"]:
            elapsed = time.perf_counter() - started
            _progress(f"  {done}/{spec['days']} days: {counts['dag_run']:,} dag_run, "
                      f"{counts['asset_event']:,} asset_event, {counts['task_instance']:,} "
                      f"task_instance rows in {elapsed:.0f}s "
                      f"(~{elapsed / done * (spec['days'] - done):.0f}s left)")
    insert_s = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        _progress("  VACUUM ANALYZE ...")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    with engine.connect() as conn:
        states = dict(conn.execute(select(DagRun.state, func.count()).group_by(DagRun.state)).all())
    Path(result_path).write_text(json.dumps({"counts": counts, "insert_s": insert_s,
                                             "total_s": time.perf_counter() - started,
                                             "run_states": {str(k): v for k, v in states.items()}}))


# --- changes between calls -----------------------------------------------------------------

class Changer:
    """Writes the rounds of changes of the "after change" calls into the built DB, and takes
    them out again (:meth:`undo`). Runs where airflow is importable (the measuring subprocess,
    or the ``--_changer`` helper of ``--http``)."""

    def __init__(self, spec: dict) -> None:
        import datetime as dt

        from sqlalchemy import func, select

        from airflow import settings
        from airflow.models.asset import AssetEvent, AssetModel
        from airflow.models.dagrun import DagRun
        from airflow.models.tasklog import LogTemplate

        self.engine = settings.engine
        self.names = spec["names"]
        self.last_end = dt.datetime.fromisoformat(spec["last_end"])
        self.now = dt.datetime.fromisoformat(spec["now"])
        with self.engine.connect() as conn:
            self.log_template_id = conn.execute(select(func.max(LogTemplate.id))).scalar()
            self.asset_ids = dict(conn.execute(select(AssetModel.uri, AssetModel.id)).all())
            self.first_event_id = conn.execute(select(func.max(AssetEvent.id))).scalar() or 0
            # the runs left running by the build (1% of the products): finished by the rounds
            self.running = [tuple(r) for r in conn.execute(
                select(DagRun.dag_id, DagRun.run_id, DagRun.data_interval_start)
                .where(DagRun.state == "running").order_by(DagRun.dag_id))]
        self.finished: list[tuple[str, str]] = []

    def apply(self, round_no: int) -> int:
        """Write round ``round_no`` (0-based); returns the rows written."""
        import datetime as dt

        from sqlalchemy import insert, update

        from airflow.models.asset import AssetEvent
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.types import DagRunTriggeredByType

        wall = dt.datetime.now(dt.timezone.utc)
        start, end = self.last_end - dt.timedelta(days=1), self.last_end
        n = len(self.names)
        picks = [self.names[(round_no * 131 + j * 37) % n]
                 for j in range(CHANGE_RERUNS + CHANGE_FAILURES)]
        runs, events, tis = [], [], []
        for j, name in enumerate(dict.fromkeys(picks)):
            failed = j >= CHANGE_RERUNS
            trigger = self.now - dt.timedelta(minutes=90 - round_no)
            run_id = f"{CHANGE_PREFIX}{round_no}_{j}"
            runs.append({
                "dag_id": name, "run_id": run_id, "run_type": "manual",
                "triggered_by": DagRunTriggeredByType.REST_API, "logical_date": None,
                "data_interval_start": None, "data_interval_end": None, "run_after": trigger,
                "queued_at": trigger, "start_date": trigger, "end_date": trigger + dt.timedelta(minutes=5),
                "state": "failed" if failed else "success",
                "conf": {"data_interval_start": start.isoformat(), "data_interval_end": end.isoformat()},
                "clear_number": 0, "created_at": wall, "updated_at": wall,
                "log_template_id": self.log_template_id, "bundle_version": None})
            if failed:
                tis.append({
                    "dag_id": name, "run_id": run_id, "task_id": "quality_gate.verify_contract",
                    "map_index": -1, "state": "failed", "start_date": trigger,
                    "end_date": trigger + dt.timedelta(minutes=4), "duration": 240.0,
                    "try_number": 1, "max_tries": 0, "pool": "default_pool", "pool_slots": 1,
                    "queue": "default", "priority_weight": 1, "operator": "QualityGateOperator",
                    "updated_at": wall, "task_display_name": "verify_contract"})
            else:
                events.append(self._event(name, run_id, start, end, trigger + dt.timedelta(minutes=4)))
        finish = None
        if round_no < len(self.running):
            finish = self.running[round_no]
            day = dt.timedelta(days=1)
            events.append(self._event(finish[0], finish[1], finish[2], finish[2] + day,
                                      self.now - dt.timedelta(minutes=30)))
        with self.engine.begin() as conn:
            conn.execute(insert(DagRun.__table__), runs)
            if tis:
                conn.execute(insert(TaskInstance.__table__), tis)
            conn.execute(insert(AssetEvent.__table__), events)
            if finish is not None:
                conn.execute(update(DagRun.__table__).where(
                    DagRun.__table__.c.dag_id == finish[0], DagRun.__table__.c.run_id == finish[1])
                    .values(state="success", updated_at=wall))
                self.finished.append(finish[:2])
        return len(runs) + len(tis) + len(events) + (finish is not None)

    def _event(self, name, run_id, start, end, stamp) -> dict:
        return {"source_dag_id": name, "source_run_id": run_id, "asset_id":
                self.asset_ids[f"dataproduct://{name}/v1"], "source_task_id": "publish.swap_partitions",
                "source_map_index": -1, "timestamp": stamp,
                "extra": {"product": name, "version": "1.0.0", "rows": 15,
                          "partitions": [start.date().isoformat()],
                          "data_interval_start": start.isoformat(),
                          "data_interval_end": end.isoformat(), "quality": "pass",
                          "checks_passed": 11, "checks_warned": 0, "checks_failed": 0,
                          "run_id": run_id}}

    def undo(self) -> None:
        """Delete what the rounds wrote and set the finished runs running again."""
        import datetime as dt

        from sqlalchemy import delete, update

        from airflow.models.asset import AssetEvent
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance

        runs = DagRun.__table__
        with self.engine.begin() as conn:
            conn.execute(delete(TaskInstance.__table__).where(
                TaskInstance.__table__.c.run_id.like(f"{CHANGE_PREFIX}%")))
            conn.execute(delete(runs).where(runs.c.run_id.like(f"{CHANGE_PREFIX}%")))
            conn.execute(delete(AssetEvent.__table__).where(
                AssetEvent.__table__.c.id > self.first_event_id))
            for dag_id, run_id in self.finished:
                conn.execute(update(runs).where(runs.c.dag_id == dag_id, runs.c.run_id == run_id)
                             .values(state="running", updated_at=dt.datetime.now(dt.timezone.utc)))
        self.finished.clear()


def _child_changer(spec: dict) -> None:
    """``--_changer``: apply a round per ``change N`` line on stdin, ``undo`` on ``undo``;
    answers ``ok <rows>`` per line (the ``--http`` measurement drives it)."""
    changer = Changer(spec)
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "change":
            print(f"ok {changer.apply(int(command[1]))}", flush=True)
        elif command[0] == "undo":
            changer.undo()
            print("ok 0", flush=True)


# --- the measuring subprocess ------------------------------------------------------------------

def _child_measure(spec: dict, result_path: str, profile_path: str | None) -> None:
    """Runs in a fresh interpreter: time collect() on the built DB; write JSON results."""
    import contextlib
    import dataclasses
    import datetime as dt
    import hashlib
    import importlib

    t0 = time.perf_counter()
    import airflow  # noqa: F401
    from sqlalchemy import select

    from airflow import settings
    from airflow.models.dag import DagModel

    from dag_factory.plugin.status import collect, to_jsonable
    import_s = time.perf_counter() - t0
    try:
        from dag_factory.slo import history_cache
    except ImportError:  # a dag_factory before the history cache (PYTHONPATH)
        history_cache = None

    now = dt.datetime.fromisoformat(spec["now"])
    with settings.Session.session_factory() as session:
        readable = set(session.scalars(select(DagModel.dag_id)))

    from dag_factory.plugin import status as status_module
    paused = getattr(status_module, "gc_paused", contextlib.nullcontext)

    def body(statuses, invalid) -> bytes:  # what GET /dataproducts/products returns
        with paused():
            products = []
            for st in statuses:
                item = to_jsonable(dataclasses.replace(st, runs=[]))
                item.pop("runs")
                products.append(item)
            return json.dumps({"evaluated_at": now.isoformat(), "products": products,
                               "invalid_specs": to_jsonable(invalid)}, ensure_ascii=False,
                              allow_nan=False, separators=(",", ":")).encode("utf-8")

    gc_timer = GcTimer()

    def call():
        session = settings.Session.session_factory()  # a new unscoped session, like SessionDep
        try:
            gc_timer.reset()
            start, cpu = time.perf_counter(), time.process_time()
            statuses, invalid = collect(session, readable, now)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            gc_seconds = gc_timer.seconds
        finally:
            session.close()
        start = time.perf_counter()
        size = len(body(statuses, invalid))
        return statuses, invalid, {"ms": seconds * 1000, "cpu_ms": cpu * 1000,
                                   "gc_ms": gc_seconds * 1000,
                                   "json_ms": (time.perf_counter() - start) * 1000, "bytes": size}

    def digest(statuses, invalid) -> str:
        return hashlib.sha256(json.dumps(to_jsonable([statuses, invalid]), sort_keys=True)
                              .encode()).hexdigest()

    import dag_factory
    result: dict = {"import_s": import_s, "readable": len(readable),
                    "dag_factory": str(Path(dag_factory.__file__).parent),
                    "cache": history_cache is not None}
    statuses, invalid, cold = call()
    result["cold"] = cold
    result["digest_cold"] = digest(statuses, invalid)
    runs = sorted(len(s.runs) for s in statuses)
    result.update(
        products=len(statuses), invalid=[i.file for i in invalid],
        runs_in_window={"min": runs[0] if runs else 0, "median": statistics.median(runs) if runs else 0,
                        "max": runs[-1] if runs else 0, "total": sum(runs)},
        states={s: sum(1 for x in statuses if x.slo.state == s)
                for s in sorted({x.slo.state for x in statuses})})
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
        session = settings.Session.session_factory()
        profiler.enable()
        collect(session, readable, now)
        profiler.disable()
        session.close()
        profiler.dump_stats(profile_path)
    warm = []
    for _ in range(spec["repeats"]):
        statuses, invalid, figures = call()
        warm.append(figures)
    result["warm"] = warm
    result["digest_warm"] = digest(statuses, invalid)

    # phase breakdown: wrap the functions collect() calls, time BREAKDOWN_CALLS more calls
    spent: dict[str, float] = {}
    phases: dict[str, list[float]] = {}
    top_level = []
    originals = []
    for label, module_name, attr, parent in PHASES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        original = getattr(module, attr, None)
        if original is None:
            continue
        nested = parent is not None and hasattr(importlib.import_module(parent[0]), parent[1])
        label = f"  of which {label}" if nested else label
        if not nested:
            top_level.append(label)

        def timed(*args, _f=original, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.perf_counter() - start

        setattr(module, attr, timed)
        originals.append((module, attr, original))
        phases[label] = []
    phases["rest of collect"] = []
    for _ in range(BREAKDOWN_CALLS):
        spent.clear()
        _, _, figures = call()
        for label in phases:
            if label != "rest of collect":
                phases[label].append(spent.get(label, 0.0) * 1000)
        phases["rest of collect"].append(figures["ms"] - sum(spent.get(k, 0.0) for k in top_level) * 1000)
    for module, attr, original in originals:
        setattr(module, attr, original)
    result["phases_ms"] = {label: statistics.median(v) for label, v in phases.items()
                           if label == "rest of collect" or any(v)}

    # after change: a round of changes written between calls, then the cache against a whole read
    changer = Changer(spec)
    changed = []
    try:
        rows = 0
        for round_no in range(spec["changes"]):
            rows += changer.apply(round_no)
            statuses, invalid, figures = call()
            changed.append(figures)
        result["changed"] = changed
        result["change_rows"] = rows
        result["digest_changed"] = digest(statuses, invalid)
        if history_cache is not None:
            result["cache_reads"] = history_cache.stats()
            refresh = []
            for i in range(REFRESH_CALLS):
                history_cache.clear()
                statuses, invalid, figures = call()
                refresh.append(figures)
                if i == 0:
                    result["digest_full_reread"] = digest(statuses, invalid)
            result["refresh"] = refresh
    finally:
        changer.undo()
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")


# --- the driver --------------------------------------------------------------------------------

class BenchError(Exception):
    """A subprocess that failed, or a result that is not what the built history must give."""


def _run(cmd: list[str], env: dict, what: str, cwd: Path, stream: bool = False) -> str:
    proc = subprocess.run(cmd, env=env, cwd=cwd, text=True,
                          stdout=subprocess.PIPE, stderr=None if stream else subprocess.STDOUT)
    if proc.returncode != 0:
        raise BenchError(f"{what}: exited {proc.returncode}\n{(proc.stdout or '')[-5000:]}")
    return proc.stdout or ""


def _env(home: Path, products: Path, url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__DATABASE__")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_FOLDER": str(products),
        "AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER": str(products),
        "PYTHONHASHSEED": "0",
    })
    return env


def _pg_admin(pg_url: str, sql: str) -> None:
    import psycopg2  # the driver only; the URL's scheme may name a SQLAlchemy driver

    dsn = pg_url.split("://", 1)[1]
    conn = psycopg2.connect(f"postgresql://{dsn.rstrip('/')}/postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def build_backend(backend: str, root: Path, args, last_end: str) -> dict:
    """Generate the products folder, migrate a fresh DB and fill it; return its state."""
    import datetime as dt

    sys.path.insert(0, str(BENCH))
    from parse import generate_dataproducts

    work = root / backend
    home, products = work / "airflow_home", work / "products"
    home.mkdir(parents=True)
    products.mkdir()
    names = generate_dataproducts(products, args.products)
    _progress(f"{backend}: {len(names)} product files in {products}")
    if backend == "sqlite":
        url, database = f"sqlite:///{home / 'airflow.db'}", None
    else:
        database = f"dp_bench_{uuid.uuid4().hex[:10]}"
        _pg_admin(args.pg_url, f'CREATE DATABASE "{database}"')
        url = f"{args.pg_url.rstrip('/')}/{database}"
        _progress(f"{backend}: created database {database}")
    state = {"backend": backend, "url": url, "database": database, "home": str(home),
             "products_folder": str(products), "names": names, "last_end": last_end,
             "now": (dt.datetime.fromisoformat(last_end) + dt.timedelta(hours=3)).isoformat(),
             "days": args.days, "task_instances": args.task_instances}
    (work / "state.json").write_text(json.dumps(state), encoding="utf-8")
    env = _env(home, products, url)
    started = time.perf_counter()
    _progress(f"{backend}: airflow db migrate ...")
    _run([sys.executable, "-m", "airflow", "db", "migrate"], env, f"{backend}: airflow db migrate", work)
    state["migrate_s"] = time.perf_counter() - started
    _progress(f"{backend}: migrated in {state['migrate_s']:.0f}s; inserting {args.products} x "
              f"{args.days} days of history ({args.task_instances} task instances) ...")
    spec = {"names": names, "last_end": last_end, "days": args.days, "seed": args.seed,
            "failed_fraction": args.failed_fraction, "task_instances": args.task_instances,
            "products_folder": str(products)}
    spec_path, result_path = work / "build-spec.json", work / "build-result.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    _run([sys.executable, str(Path(__file__).resolve()), "--_build", str(spec_path),
          "--_result", str(result_path)], env, f"{backend}: build", work, stream=True)
    state["build"] = json.loads(result_path.read_text(encoding="utf-8"))
    b = state["build"]
    _progress(f"{backend}: built in {b['total_s']:.0f}s: " + ", ".join(
        f"{v:,} {k}" for k, v in b["counts"].items()) + f"; run states {b['run_states']}")
    (work / "state.json").write_text(json.dumps(state), encoding="utf-8")
    return state


def _spec_of(state: dict) -> dict:
    return {"names": state["names"], "last_end": state["last_end"], "now": state["now"]}


def measure_backend(state: dict, args, profile_path: Path | None) -> dict:
    work = Path(state["home"]).parent
    env = _env(Path(state["home"]), Path(state["products_folder"]), state["url"])
    spec_path, result_path = work / "measure-spec.json", work / "measure-result.json"
    spec_path.write_text(json.dumps({**_spec_of(state), "repeats": args.repeats,
                                     "changes": args.changes}), encoding="utf-8")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_measure", str(spec_path),
           "--_result", str(result_path)]
    if profile_path:
        cmd += ["--_profile-out", str(profile_path)]
    _progress(f"{state['backend']}: measuring (1 cold + {args.repeats} warm + {BREAKDOWN_CALLS} "
              f"breakdown + {args.changes} after-change + {REFRESH_CALLS} refresh calls"
              f"{' + 1 profiled' if profile_path else ''}) in a fresh subprocess ...")
    load_before = os.getloadavg()[0]
    _run(cmd, env, f"{state['backend']}: measure", work)
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result["load_before"] = load_before
    result["load_after"] = os.getloadavg()[0]
    n = len(state["names"])
    problems = []
    if result["products"] != n:
        problems.append(f"{result['products']} products in the result, expected {n}")
    if result["invalid"]:
        problems.append(f"invalid specs: {result['invalid'][:5]}")
    window = result["runs_in_window"]
    if n and (window["min"] < 25 or window["max"] > 40):
        problems.append(f"runs in the window per product {window}, expected ~30 each")
    if result["digest_cold"] != result["digest_warm"]:
        problems.append("the cold and the last warm call returned different statuses")
    if result.get("digest_full_reread") and result["digest_full_reread"] != result["digest_changed"]:
        problems.append("after the changes, the cached answer differs from a whole re-read of the DB")
    if args.changes and result["digest_changed"] == result["digest_warm"]:
        problems.append("the change rounds did not change the result")
    if problems:
        raise BenchError(f"{state['backend']}: " + "; ".join(problems))
    return result


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _summary(values: list[float]) -> dict:
    return {"p50": statistics.median(values), "p95": _percentile(values, 95), "max": max(values)}


def _group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of the live processes of process group ``pgid`` (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ... utime stime
            total += int(fields[11]) + int(fields[12])
    return total / tick


def measure_http(state: dict, args) -> dict:
    """Start an API server with the plugin on the built DB and time GET /dataproducts/products:
    cold, warm, and after each round of changes (written by a ``--_changer`` subprocess)."""
    import socket
    import urllib.request

    work = Path(state["home"]).parent
    env = _env(Path(state["home"]), Path(state["products_folder"]), state["url"])
    env.update({"AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__API__WORKERS": "1"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    log_path = work / "api-server.log"
    _progress(f"{state['backend']}: starting airflow api-server on port {port} ...")
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--port", str(port),
                                   "--host", "127.0.0.1"], env=env, cwd=work, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    spec_path = work / "changer-spec.json"
    spec_path.write_text(json.dumps(_spec_of(state)), encoding="utf-8")
    changer = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--_changer",
                                str(spec_path)], env=env, cwd=work, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, start_new_session=True)

    def tell(command: str) -> None:
        changer.stdin.write(command + "\n")
        changer.stdin.flush()
        answer = changer.stdout.readline()
        if not answer.startswith("ok"):
            raise BenchError(f"{state['backend']}: changer: {command!r} -> {answer!r}")

    try:
        if changer.stdout.readline().strip() != "ready":
            raise BenchError(f"{state['backend']}: the changer subprocess did not start")
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise BenchError(f"api-server exited {server.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"api-server not healthy after 180s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        passwords = json.loads((Path(state["home"]) /
                                "simple_auth_manager_passwords.json.generated").read_text())
        req = urllib.request.Request(f"{base}/auth/token", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"username": "admin",
                                                      "password": passwords["admin"]}).encode())
        with urllib.request.urlopen(req, timeout=30) as r:
            token = json.loads(r.read())["access_token"]

        cpu_ms = []  # CPU of the api-server's processes per request (load-independent)

        def get() -> tuple[float, int]:
            request = urllib.request.Request(f"{base}/dataproducts/products",
                                             headers={"Authorization": f"Bearer {token}"})
            cpu = _group_cpu_s(server.pid)
            start = time.perf_counter()
            with urllib.request.urlopen(request, timeout=120) as r:
                data = r.read()
                code = r.status
            seconds = time.perf_counter() - start
            cpu_ms.append((_group_cpu_s(server.pid) - cpu) * 1000)
            if code != 200 or len(json.loads(data)["products"]) != len(state["names"]):
                raise BenchError(f"HTTP: status {code}, expected {len(state['names'])} products")
            return seconds * 1000, len(data)

        cold_ms, size = get()
        warm = [get()[0] for _ in range(args.repeats)]
        warm_cpu = cpu_ms[1:]
        changed = []
        try:
            for round_no in range(args.changes):
                tell(f"change {round_no}")
                changed.append(get()[0])
        finally:
            tell("undo")
        return {"cold_ms": cold_ms, "warm_ms": warm, "changed_ms": changed, "bytes": size,
                "warm_cpu_ms": warm_cpu, "cpu_ms": statistics.median(warm_cpu), **_summary(warm)}
    finally:
        for proc in (server, changer):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in (server, changer):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _machine(states: list[dict]) -> list[str]:
    import importlib.metadata as md
    import sqlite3

    lines = []
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "?"
    try:
        kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        mem = f"{kib / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    lines.append(f"machine: {os.cpu_count()} CPUs ({cpu}), {mem} RAM, {platform.platform()}")
    versions = []
    for dist in ("apache-airflow-core", "SQLAlchemy", "psycopg2-binary"):
        try:
            versions.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            pass
    lines.append(f"software: Python {platform.python_version()}, " + ", ".join(versions)
                 + f", SQLite {sqlite3.sqlite_version}")
    for state in states:
        if state["backend"] == "postgres":
            try:
                import psycopg2
                dsn = state["url"].split("://", 1)[1]
                with psycopg2.connect(f"postgresql://{dsn}") as conn, conn.cursor() as cur:
                    cur.execute("show server_version")
                    lines[-1] += f", PostgreSQL {cur.fetchone()[0]} (local, {dsn.split('/')[0]})"
            except Exception as exc:  # noqa: BLE001 - informational only
                lines[-1] += f", PostgreSQL ? ({exc})"
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", *MEASURED_CODE],
                               capture_output=True, text=True).stdout.split()[1::2]
        lines.append(f"repository: {commit}" + (f" (modified: {', '.join(dirty)})" if dirty else ""))
    except OSError:
        pass
    return lines


def _verdict(p95: float) -> str:
    return "met" if p95 < TARGET_P95_MS else "MISSED"


def print_report(rows: list[dict], args) -> None:
    print()
    print(f"All-products SLO view: collect(session, readable, now) in a fresh process per backend: "
          f"1 cold, {args.repeats} warm, {args.changes} after a round of changes each, "
          f"{REFRESH_CALLS} refresh calls")
    print("  cold      the first call of the process (specs read, the window read whole)")
    print("  warm      nothing changed since the previous call (the history cache reads the changes: none)")
    print("  changed   after a round of changes written between calls (new runs, events, a failed task, "
          "a run finishing)")
    print("  refresh   the history cache emptied, specs kept: the whole read of each "
          "slo_full_refresh_seconds (median)")
    print("  p50/p95/max  wall-clock ms (p95: nearest rank); CPU, GC: median process CPU ms and ms in "
          "the cyclic GC of the warm calls")
    print("               (HTTP: CPU of the api-server's processes per warm request; Postgres' own CPU "
          "is in neither)")
    print("  JSON      median ms to build the route's body; runs: dag_run rows in the DB; "
          "window: runs per product in the view")
    print()
    header = (f"{'backend':<10} {'products':>8} {'runs':>8} {'window':>7} {'cold':>7} "
              f"{'warm p50':>8} {'p95':>6} {'max':>6} {'changed p50':>11} {'p95':>6} {'max':>6} "
              f"{'refresh':>7} {'CPU':>5} {'GC':>4} {'JSON':>5} {'load':>9}  target {TARGET_TEXT}")
    print(header)
    print("-" * len(header))
    for r in rows:
        b, m = r["state"]["build"], r["measure"]
        w = _summary([x["ms"] for x in m["warm"]])
        c = _summary([x["ms"] for x in m["changed"]]) if m.get("changed") else None
        refresh = (f"{statistics.median(x['ms'] for x in m['refresh']):>7.0f}"
                   if m.get("refresh") else f"{'n/a':>7}")
        cpu = statistics.median(x["cpu_ms"] for x in m["warm"])
        gc_ms = statistics.median(x["gc_ms"] for x in m["warm"])
        json_ms = statistics.median(x["json_ms"] for x in m["warm"])
        window = f"{m['runs_in_window']['min']}-{m['runs_in_window']['max']}"
        verdict = f"warm {_verdict(w['p95'])}" + (f", changed {_verdict(c['p95'])}" if c else "")
        changed = (f"{c['p50']:>11.0f} {c['p95']:>6.0f} {c['max']:>6.0f}" if c
                   else f"{'-':>11} {'-':>6} {'-':>6}")
        load = f"{m['load_before']:.1f}-{m.get('load_after', m['load_before']):.1f}"
        print(f"{r['state']['backend']:<10} {m['products']:>8} {b['counts']['dag_run']:>8,} "
              f"{window:>7} {m['cold']['ms']:>7.0f} {w['p50']:>8.0f} {w['p95']:>6.0f} "
              f"{w['max']:>6.0f} {changed} {refresh} {cpu:>5.0f} {gc_ms:>4.0f} {json_ms:>5.0f} "
              f"{load:>9}  {verdict}")
        if "http" in r:
            h = r["http"]
            hc = _summary(h["changed_ms"]) if h.get("changed_ms") else None
            verdict = f"warm {_verdict(h['p95'])}" + (f", changed {_verdict(hc['p95'])}" if hc else "")
            changed = (f"{hc['p50']:>11.0f} {hc['p95']:>6.0f} {hc['max']:>6.0f}" if hc
                       else f"{'-':>11} {'-':>6} {'-':>6}")
            print(f"{'  HTTP':<10} {m['products']:>8} {'':>8} {'':>7} {h['cold_ms']:>7.0f} "
                  f"{h['p50']:>8.0f} {h['p95']:>6.0f} {h['max']:>6.0f} {changed} {'':>7} "
                  f"{h.get('cpu_ms', float('nan')):>5.0f} "
                  f"{'':>4} {'':>5} {'':>9}  {verdict} (GET /dataproducts/products end to end, "
                  f"body {h['bytes'] / 1024:.0f} KiB)")
    print()
    for r in rows:
        m = r["measure"]
        if Path(m["dag_factory"]) != REPO / "dag_factory":
            print(f"{r['state']['backend']}: measured the dag_factory of {m['dag_factory']} (PYTHONPATH)")
        same = ("cache = whole re-read after the changes: "
                + ("yes" if m.get("digest_full_reread") == m.get("digest_changed") else "NO")
                if m.get("digest_full_reread") else "no history cache: no re-read check")
        print(f"{r['state']['backend']}: states {m['states']}; {m['runs_in_window']['total']:,} runs "
              f"in the windows; body {m['warm'][-1]['bytes'] / 1024:.0f} KiB; result sha256 "
              f"{m['digest_warm'][:16]} (after the changes {m.get('digest_changed', '-')[:16]}; "
              f"{same}); {m.get('change_rows', 0)} rows changed in {len(m.get('changed', []))} rounds")
        if m.get("cache_reads"):
            reads = ", ".join(f"{v['full']} whole + {v['incremental']} incremental reads, {v['runs']:,} "
                              "runs kept" for v in m["cache_reads"].values())
            print(f"  history cache before the refresh calls: {reads}")
        print(f"  where the time goes in a warm call (median of {BREAKDOWN_CALLS} calls, ms):")
        for label, ms in m["phases_ms"].items():
            print(f"    {label:<72} {ms:8.1f}")


def print_profile(path: Path, top: int = PROFILE_TOP) -> None:
    import io
    import pstats

    out = io.StringIO()
    pstats.Stats(str(path), stream=out).strip_dirs().sort_stats("cumulative").print_stats(top)
    text = out.getvalue()
    print(text[text.find("function calls") - 10:].rstrip() if "function calls" in text else text)


def cleanup(states: list[dict], root: Path, args) -> None:
    if args.keep:
        databases = ", ".join(s["database"] for s in states if s.get("database")) or "none"
        _progress(f"kept {root} (re-measure: bench/slo.py --reuse {root}); Postgres databases: "
                  f"{databases} (drop them when done)")
        return
    for state in states:
        if state.get("database"):
            try:
                _pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{state["database"]}" WITH (FORCE)')
                _progress(f"dropped database {state['database']}")
            except Exception as exc:  # noqa: BLE001 - report, keep cleaning
                print(f"WARNING: could not drop database {state['database']}: {exc}", file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(DEFAULT_BACKENDS),
                        help="comma-separated, of sqlite, postgres (default: %(default)s)")
    parser.add_argument("--products", type=int, default=1000, help="products (default: 1000)")
    parser.add_argument("--days", type=int, default=365, help="daily runs per product (default: 365)")
    parser.add_argument("--repeats", type=int, default=20, help="warm calls per backend (default: 20)")
    parser.add_argument("--changes", type=int, default=10,
                        help="calls after a round of changes each, per backend (default: 10)")
    parser.add_argument("--task-instances", choices=("all", "failed"), default="all",
                        help="task_instance rows for every run, or only for failed runs (default: all)")
    parser.add_argument("--failed-fraction", type=float, default=0.02,
                        help="share of scheduled runs that fail (default: 0.02)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the history (default: 1)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL,
                        help="Postgres server to create the database on (default: %(default)s)")
    parser.add_argument("--profile", action="store_true",
                        help=f"also cProfile one warm call per backend (top {PROFILE_TOP} cumulative)")
    parser.add_argument("--http", action="store_true",
                        help="also time GET /dataproducts/products on an airflow api-server")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder and Postgres databases (for --reuse)")
    parser.add_argument("--reuse", type=Path, help="measure a work folder kept by --keep (no build)")
    parser.add_argument("--json", type=Path, help="write the raw results to this JSON file")
    parser.add_argument("--_build", help=argparse.SUPPRESS)
    parser.add_argument("--_measure", help=argparse.SUPPRESS)
    parser.add_argument("--_changer", help=argparse.SUPPRESS)
    parser.add_argument("--_result", help=argparse.SUPPRESS)
    parser.add_argument("--_profile-out", dest="child_profile_out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._build:
        _child_build(json.loads(Path(args._build).read_text()), args._result)
        return 0
    if args._changer:
        _child_changer(json.loads(Path(args._changer).read_text()))
        return 0
    if args._measure:
        _child_measure(json.loads(Path(args._measure).read_text()), args._result,
                       args.child_profile_out)
        return 0

    backends = [b for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in DEFAULT_BACKENDS]
    if unknown or not backends:
        parser.error(f"--backends: unknown {unknown}; known: {list(DEFAULT_BACKENDS)}")
    if args.products < 1 or args.days < 31 or args.repeats < 1 or args.changes < 0:
        parser.error("--products >= 1, --days >= 31 (the window must fill), --repeats >= 1, "
                     "--changes >= 0")

    import datetime as dt
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    states: list[dict] = []
    rows: list[dict] = []
    if args.reuse:
        root = args.reuse.resolve()
        args.keep = True  # never delete what the user kept
        for backend in backends:
            path = root / backend / "state.json"
            if path.exists():
                states.append(json.loads(path.read_text(encoding="utf-8")))
        if not states:
            parser.error(f"--reuse: no state.json of {backends} under {root}")
    else:
        root = Path(tempfile.mkdtemp(prefix="bench-slo-"))
    try:
        if not args.reuse:
            for backend in backends:
                started = time.perf_counter()
                try:
                    states.append(build_backend(backend, root, args, today.isoformat()))
                except BaseException:
                    state_path = root / backend / "state.json"
                    if state_path.exists():
                        states.append(json.loads(state_path.read_text()))  # drop its database
                    raise
                _progress(f"{backend}: ready in {time.perf_counter() - started:.0f}s")
        for state in states:
            prof = root / f"{state['backend']}-collect.prof" if args.profile else None
            row = {"state": state, "measure": measure_backend(state, args, prof)}
            if prof:
                row["profile_path"] = prof  # printed after the table
            if args.http:
                row["http"] = measure_http(state, args)
            rows.append(row)
        for line in _machine(states):
            print(line)
        print(f"history: {args.products if not args.reuse else len(states[0]['names'])} products x "
              f"{states[0]['days']} days, task instances: {states[0]['task_instances']}, "
              f"now = {states[0]['now']}")
        print_report(rows, args)
        for row in rows:
            if "profile_path" in row:
                print(f"\ncProfile of one warm collect() on {row['state']['backend']} "
                      f"(top {PROFILE_TOP} by cumulative time):")
                print_profile(row["profile_path"])
                row["profile_path"] = str(row["profile_path"])
    except BenchError as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        cleanup(states, root, args)
    if args.json:
        for row in rows:
            row["state"] = {k: v for k, v in row["state"].items() if k != "names"}
        args.json.write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
