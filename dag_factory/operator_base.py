"""What every factory operator shares: the product it serves and the run's data interval."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseOperator

from dag_factory.interval import (
    DataInterval, NoDataInterval, resolve_data_interval, template_values,
)

STAGES = ("ingest", "transform", "quality_gate", "publish", "export")


def fill_template_context(context) -> None:
    """Make Jinja's ``ds``/``ds_nodash``/``data_interval_*`` those of the product's resolved
    data interval, also in runs Airflow gives no logical date (asset-triggered, manual)."""
    try:
        interval = resolve_data_interval(context)
    except ValueError:
        return
    context.update(template_values(interval))


class DeterministicFailure(Exception):
    """Marker base: errors a retry cannot fix (bad contract, failed gate, no interval)."""


class ProductOperator(BaseOperator):
    """Base of the factory's operators.

    Args:
        product: the product name (the dag_id).
        stage: one of :data:`STAGES`, used in logs and alerts.
        engine: the spec's ``engine`` block plus ``major`` (``{"type": "postgres", "conn_id":
            ..., "schema": ..., "major": 1}``) for a warehouse engine; None for DuckDB.
        **kwargs: passed to :class:`airflow.sdk.BaseOperator`.
    """

    ui_color = "#e8f4fd"
    measured: dict | None = None  # what run() measured (rows, bytes, ...), for the lineage

    def __init__(self, *, product: str, stage: str, engine: dict | None = None,
                 **kwargs: Any) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
        super().__init__(**kwargs)
        self.product = product
        self.stage = stage
        self.engine = engine

    @property
    def warehouse(self):
        """The :class:`dag_factory.engines.base.WarehouseEngine` of a product on a warehouse
        engine, or None on the DuckDB default."""
        from dag_factory.engines import warehouse_engine

        return warehouse_engine(self.engine)

    def stage_job(self, context):
        """The :class:`dag_factory.engines.base.StageJob` of this task's run."""
        from dag_factory.engines.base import StageJob

        return StageJob(product=self.product, major=int((self.engine or {}).get("major", 1)),
                        run_id=context["run_id"], interval=self.data_interval(context))

    def render_template_fields(self, context, jinja_env=None) -> None:
        fill_template_context(context)
        super().render_template_fields(context, jinja_env)

    def execute(self, context) -> Any:
        """Run the stage; errors a retry cannot fix fail the task without retrying."""
        from airflow.sdk.exceptions import AirflowFailException

        try:
            return self.run(context)
        except (DeterministicFailure, NoDataInterval) as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    def run(self, context) -> Any:  # pragma: no cover - every stage overrides it
        """The stage's work; returns the task's XCom value. Sets ``self.measured`` (rows,
        bytes, ...) for the lineage of the COMPLETE/FAIL events."""
        raise NotImplementedError

    def lineage(self, measured: dict | None):  # pragma: no cover - every stage overrides it
        """The stage's OpenLineage (see :mod:`dag_factory.lineage.stages`)."""
        raise NotImplementedError

    def get_openlineage_facets_on_start(self):
        """OpenLineage provider hook: inputs and outputs known before the run."""
        return self.lineage(None)

    def get_openlineage_facets_on_complete(self, task_instance):
        """OpenLineage provider hook: adds what the run measured."""
        return self.lineage(self.measured)

    def get_openlineage_facets_on_failure(self, task_instance):
        """OpenLineage provider hook: what was measured before the failure (the provider adds
        the error message facet)."""
        return self.lineage(self.measured)

    def data_interval(self, context) -> DataInterval:
        """The run's data interval (see :func:`dag_factory.interval.resolve_data_interval`)."""
        return resolve_data_interval(context)

    @property
    def progress(self) -> logging.Logger:
        """Logger for one-line progress messages (``dataproducts run`` prints them)."""
        return logging.getLogger("dag_factory.progress")
