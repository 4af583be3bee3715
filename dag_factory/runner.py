"""Run one partition of a product through real Airflow (``dag.test()``) and summarise it."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dag_factory import datastore
from dag_factory.storage import product_root, quality_history_file


@dataclass
class RunSummary:
    """Outcome of one product run.

    Attributes:
        product, run_id, state (``success``/``failed``);
        tasks: task_id -> (state, duration in seconds);
        rows: rows published; partitions: partition values published;
        quality: the gate record (outcome, counts, checks) or None if the gate did not run.
    """

    product: str
    run_id: str
    state: str
    tasks: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    rows: int = 0
    partitions: list[str] = field(default_factory=list)
    quality: dict[str, Any] | None = None

    def checks_line(self) -> str:
        if not self.quality:
            return "gate did not run"
        c = self.quality["counts"]
        return (f"{c['passed']} passed, {c['warned']} warned, {c['failed']} failed "
                f"({self.quality['outcome'].upper()})")


def interval_for(schedule, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The data interval starting at ``day`` 00:00 UTC: one schedule period for cron schedules,
    one day for asset-triggered and unscheduled products."""
    from croniter import croniter

    from dag_factory.build.dag import cron_of

    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    cron = cron_of(schedule) if isinstance(schedule, str) else None
    if cron is None:
        return start, start + dt.timedelta(days=1)
    return start, croniter(cron, start).get_next(dt.datetime)


class _ProgressHandler(logging.Handler):
    def __init__(self, stream):
        super().__init__(logging.INFO)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        print(f"    {record.getMessage()}", file=self.stream, flush=True)


@contextlib.contextmanager
def dags_folder(folder: Path | None):
    """Point Airflow's dags folder at ``folder`` for the duration (no-op for None).

    ``dag.test()`` in Airflow 3.3 serializes the DAG by parsing the DAG bundle (the dags
    folder), so a product from another folder is only runnable with the folder pointed there.
    """
    if folder is None:
        yield
        return
    bundles = json.dumps([{"name": "dags-folder",
                           "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                           "kwargs": {"path": str(folder)}}])
    overrides = {"AIRFLOW__CORE__DAGS_FOLDER": str(folder),
                 "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": bundles}
    before = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_product(dag, schedule, day: dt.date, retries: int = 0, stream=sys.stdout,
                folder: Path | None = None) -> RunSummary:
    """Run ``dag`` for the data interval starting at ``day`` with ``dag.test()``.

    Args:
        dag: the product's DAG (from :func:`dag_factory.build.folder.build_dags`).
        schedule: the product's spec schedule (to size the interval).
        day: first day of the data interval.
        retries: retries per task for this run (default 0: fail fast at the terminal).
        stream: where stage-by-stage progress is printed.
        folder: the products folder ``dag`` comes from, when it is not Airflow's dags folder.

    Returns:
        a :class:`RunSummary`.
    """
    start, end = interval_for(schedule, day)
    for task in dag.tasks:
        task.retries = retries
    progress = logging.getLogger("dag_factory.progress")
    handler = _ProgressHandler(stream)
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    try:
        with dags_folder(folder):
            dag_run = dag.test(logical_date=start, run_conf={
                "data_interval_start": start.isoformat(), "data_interval_end": end.isoformat()})
    finally:
        progress.removeHandler(handler)
    return summarise(dag, dag_run)


def summarise(dag, dag_run) -> RunSummary:
    """Build a :class:`RunSummary` from a finished DagRun and what the run wrote."""
    summary = RunSummary(product=dag.dag_id, run_id=dag_run.run_id, state=str(dag_run.state))
    for ti in dag_run.get_task_instances():
        summary.tasks[ti.task_id] = (str(ti.state), ti.duration)
    from dag_factory.publish.reader import published_partitions

    publish = next((t for t in dag.tasks if t.task_id.startswith("publish.")), None)
    try:  # a failed run may have failed on the data folder itself (missing bucket, access)
        summary.quality = json.loads(datastore.read_text(
            quality_history_file(dag.dag_id, dag_run.run_id)))
    except datastore.NotFound:
        pass
    except OSError as exc:
        logging.getLogger(__name__).warning("no run summary from the data folder: %s", exc)
        return summary
    if getattr(publish, "engine", None):  # a warehouse engine: no manifests, read its XCom
        published = _return_value(dag_run, publish.task_id) or {}
        summary.rows = published.get("rows", 0)
        summary.partitions = list(published.get("partitions", []))
        return summary
    major = getattr(publish, "major", 1)
    for partition in published_partitions(product_root(dag.dag_id, major), _in_run(dag_run)):
        if partition.manifest.get("run_id") == dag_run.run_id:
            summary.rows += partition.manifest["rows"]
            summary.partitions.append(partition.manifest["partition"]["value"])
    return summary


def _return_value(dag_run, task_id: str):
    """The XCom return value of ``task_id`` in ``dag_run`` (decoded), or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.query(XComModel.value).filter(
            XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id,
            XComModel.task_id == task_id, XComModel.key == "return_value").scalar()
    return json.loads(value) if isinstance(value, str) else value


def _in_run(dag_run):
    """A partition-value filter of the run's data interval (from the run conf of
    :func:`run_product`), so only those manifests are read; None (all) without one."""
    from dag_factory.interval import DataInterval

    conf = dag_run.conf or {}
    if "data_interval_start" not in conf:
        return None
    interval = DataInterval(dt.datetime.fromisoformat(conf["data_interval_start"]),
                            dt.datetime.fromisoformat(conf["data_interval_end"]))
    return lambda value: interval.contains_partition(value) is not False


def quiet_airflow_logs() -> None:
    """Keep the terminal to our progress lines: Airflow's own INFO logs go to WARNING."""
    for name in ("airflow", "airflow.task", "airflow.sdk", "airflow.models", "sqlalchemy",
                 "py.warnings", "soda_core", "botocore", "urllib3", "werkzeug"):
        logging.getLogger(name).setLevel(logging.WARNING)


def products_by_dependency(specs: dict) -> list[str]:
    """Product names ordered so that every product comes after its upstream products."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in specs:
            return
        seen.add(name)
        for upstream in specs[name].upstream_products():
            visit(upstream)
        ordered.append(name)

    for name in sorted(specs):
        visit(name)
    return ordered


