"""Build the Airflow DAG of one product: pacing -> ingest -> transform -> quality_gate -> publish -> export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from airflow.sdk import DAG, CronDataIntervalTimetable, TaskGroup

from dag_factory.alerts import AlertSettings, failure_callbacks, has_alerts, warn_callbacks
from dag_factory.backfill.config import PACING_TASK_ID, PacingConfig
from dag_factory.backfill.gate import PacingGateOperator
from dag_factory.build.assets import product_asset
from dag_factory.build.docs import product_doc_md
from dag_factory.contract.compat import contract_record
from dag_factory.engines import engine_config
from dag_factory.ingest.operators import IngestOperator, InputArrivalSensor, wait_kwargs
from dag_factory.publish.export import ExportOperator
from dag_factory.publish.operator import PublishOperator
from dag_factory.quality.operator import QualityGateOperator
from dag_factory.spec.loading import LoadedProduct
from dag_factory.spec.models import ProductInput, ProductSpec, parse_duration
from dag_factory.transform import TransformOperator

PRODUCT_TAG = "dataproduct"


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


CRON_PRESETS = {
    "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *", "@quarterly": "0 0 1 */3 *", "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def cron_of(schedule: str) -> str | None:
    """The cron expression of a cron or preset schedule; None for @once/@continuous."""
    if schedule in ("@once", "@continuous"):
        return None
    return CRON_PRESETS.get(schedule, schedule)


def _schedule(spec: ProductSpec, majors: dict[str, int]):
    """Airflow schedule of a product.

    A cron or preset becomes a ``CronDataIntervalTimetable``: each run covers the period that
    just ended (``@daily`` at 2013-01-02T00:00 processes [01-01, 01-02)). Airflow 3's default
    for a cron string is a trigger timetable whose runs have an empty data interval, which is
    wrong for partitioned data. A list of products becomes their assets (all must update).
    """
    if isinstance(spec.schedule, list):
        return [product_asset(name, spec.read_major(name, majors)) for name in spec.schedule]
    if spec.schedule is None or cron_of(spec.schedule) is None:
        return spec.schedule
    return CronDataIntervalTimetable(cron_of(spec.schedule), timezone="UTC")


def transform_sql(spec: ProductSpec, products_folder: Path) -> str:
    """The transform SQL text (inline, or read from ``transform.file``)."""
    if spec.transform.sql is not None:
        return spec.transform.sql
    return (products_folder / spec.transform.file).read_text(encoding="utf-8")


def build_product_dag(product: LoadedProduct, majors: dict[str, int],
                      products_folder: Path, alert_settings: AlertSettings | None = None) -> DAG:
    """Build the DAG of a valid product.

    Args:
        product: the loaded spec and its file.
        majors: product name -> published major version, for ``type: product`` inputs and
            asset schedules (the upstream's current major, unless the input pins ``major``).
        products_folder: the folder ``transform.file`` is relative to.
        alert_settings: the alert settings when read once for many products (default: read
            from Airflow's configuration for this product).

    Returns:
        the DAG (dag_id = product name).
    """
    spec = product.spec
    asset = product_asset(spec.name, spec.major_version)
    default_args = {
        "owner": spec.owner.team,
        "retries": spec.retries,
        "retry_delay": parse_duration(spec.retry_delay),
    }
    # alerts: one message when a task fails for good (Airflow calls on_failure_callback only
    # when no retry is left; retries send nothing), and a [WARN] one from a warning gate
    if alert_settings is None and has_alerts(spec):
        alert_settings = AlertSettings.read()
    on_failure = failure_callbacks(spec, alert_settings)
    if on_failure:
        default_args["on_failure_callback"] = on_failure
    gate_callbacks = ({"on_success_callback": warn_callbacks(spec, alert_settings)}
                      if on_failure else {})
    dag = DAG(
        dag_id=spec.name,
        description=spec.title,
        doc_md=product_doc_md(spec, product.path.name),
        schedule=_schedule(spec, majors),
        start_date=_utc(spec.start_date),
        end_date=_utc(spec.end_date) + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
        if spec.end_date else None,
        catchup=spec.catchup,
        max_active_runs=spec.max_active_runs,
        tags=sorted({PRODUCT_TAG, *spec.tags, *([f"domain:{spec.domain}"] if spec.domain else [])}),
        owner_links={spec.owner.team: f"mailto:{spec.owner.email}"},
        default_args=default_args,
        params={},
    )
    engine = engine_config(spec)
    with dag:
        # backfill runs wait here for the spec's pacing; other runs pass straight through
        pacing = PacingGateOperator(task_id=PACING_TASK_ID,
                                    pacing=PacingConfig.from_spec(spec).as_dict())
        with TaskGroup("ingest", tooltip="One task per input port") as ingest:
            for inp in spec.inputs:
                _ingest_task(spec, inp, majors)
        with TaskGroup("transform", tooltip=f"{spec.engine.type} SQL over the staged inputs") \
                as transform:
            TransformOperator(
                task_id="run_sql", product=spec.name, engine=engine,
                sql=transform_sql(spec, products_folder),
                input_names=[i.name for i in spec.inputs],
                columns=[{"name": c.name, "data_type": c.data_type} for c in spec.output.columns],
                partition_by=spec.output.partition_by,
            )
        with TaskGroup("quality_gate", tooltip="Soda Core v4 contract on the staged output") as gate:
            QualityGateOperator(
                task_id="verify_contract", product=spec.name, retries=0, engine=engine,
                columns=[c.model_dump(exclude_none=True) for c in spec.output.columns],
                checks=spec.output.checks, **gate_callbacks,
            )
        with TaskGroup("publish", tooltip="Atomic partition swap + manifest + asset event") as publish:
            publish_task = PublishOperator(
                task_id="swap_partitions", product=spec.name, version=spec.version, engine=engine,
                major=spec.major_version, partition_by=spec.output.partition_by, outlets=[asset],
                columns=[{"name": c.name, "data_type": c.data_type,
                          "description": (c.model_extra or {}).get("description")}
                         for c in spec.output.columns],
                documentation=spec.description or spec.title,
                contract=contract_record(spec),
            )
        pacing >> ingest >> transform >> gate >> publish
        if spec.output.exports:
            with TaskGroup("export", tooltip="Extra output ports") as export:
                for index, port in enumerate(spec.output.exports):
                    ExportOperator(task_id=f"{port.type}_{index}", product=spec.name,
                                   export=port.model_dump(), publish_task_id=publish_task.task_id,
                                   major=spec.major_version)
            publish >> export
    return dag


def _ingest_task(spec: ProductSpec, inp, majors: dict[str, int]):
    source = {**inp.model_dump(exclude={"wait", "description"}, exclude_none=True),
              "product": spec.name}
    inlets = []
    if isinstance(inp, ProductInput):
        source["product_name"] = inp.product
        source["major"] = spec.read_major(inp.product, majors)
        inlets = [product_asset(inp.product, source["major"])]
    task = IngestOperator(task_id=inp.name, product=spec.name, source=source, inlets=inlets)
    if inp.wait is not None:
        sensor = InputArrivalSensor(task_id=f"wait_{inp.name}", product=spec.name, source=source,
                                    **wait_kwargs(inp.wait))
        sensor >> task
    return task
