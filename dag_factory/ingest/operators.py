"""Airflow operators of the ingest stage: one task per input, plus an optional wait sensor."""

from __future__ import annotations

import importlib
from typing import Any

from airflow.sdk import BaseSensorOperator

from dag_factory.datastore.workspace import Workspace
from dag_factory.ingest import location_of
from dag_factory.operator_base import ProductOperator, fill_template_context
from dag_factory.storage import run_paths

KINDS = ("file", "s3", "http", "sql", "product")


def _module(kind: str):
    if kind not in KINDS:
        raise ValueError(f"unknown input type {kind!r}; expected one of {KINDS}")
    return importlib.import_module(f"dag_factory.ingest.{kind}")


class IngestOperator(ProductOperator):
    """Stage one input port of a product as Parquet in the run's staging area.

    Args:
        source: the input spec as a dict (``type``, ``name``, and the kind's fields), plus
            ``product`` (this product's name); for ``type: product`` also ``product_name``
            and ``major`` of the upstream. Strings in it are Jinja-rendered with Airflow macros.

    Returns (XCom): ``{"input": name, "rows": int, "location": str}``.

    Raises:
        InputMissing: the input is absent; the message names product, input and location.
    """

    template_fields = ("source",)
    template_fields_renderers = {"source": "json"}
    ui_color = "#d6eaf8"

    def __init__(self, *, source: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(stage="ingest", **kwargs)
        self.source = source

    def run(self, context) -> dict[str, Any]:
        kind = self.source["type"]
        staged = run_paths(self.product, context["run_id"]).input_file(self.source["name"])
        with Workspace() as workspace:  # uploads the staged file when the data folder is S3
            target = workspace.write(staged)
            rows = _module(kind).fetch(self.source, target, context)
            self.measured = {"rows": rows, "bytes": target.stat().st_size}
        location = location_of(self.source)
        self.log.info("ingest %s: %s rows from %s (%s)", self.source["name"], rows, location, kind)
        self.progress.info("ingest.%s: %d rows from %s", self.source["name"], rows, location)
        return {"input": self.source["name"], "rows": rows, "location": location}


    def lineage(self, measured):
        from dag_factory.lineage import stages

        return stages.ingest(self.product, self.source, measured)


class InputArrivalSensor(BaseSensorOperator):
    """Wait, in reschedule mode (no worker slot held), for an input to exist.

    Args:
        product: this product's name.
        source: as for :class:`IngestOperator`.
        timeout / poke_interval: seconds (from the input's ``wait`` block).
    """

    template_fields = ("source",)
    ui_color = "#fcf3cf"

    def __init__(self, *, product: str, source: dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.product = product
        self.source = source

    def render_template_fields(self, context, jinja_env=None) -> None:
        fill_template_context(context)
        super().render_template_fields(context, jinja_env)

    def poke(self, context) -> bool:
        present = _module(self.source["type"]).exists(self.source, context)
        if not present:
            self.log.info("input %r of product %r not there yet; next check in %ss",
                          self.source["name"], self.product, self.poke_interval)
        return present


def wait_kwargs(wait) -> dict[str, float]:
    """Sensor timing from a spec ``wait`` block, in seconds."""
    from dag_factory.spec.models import parse_duration

    return {"timeout": parse_duration(wait.timeout).total_seconds(),
            "poke_interval": parse_duration(wait.poke_interval).total_seconds()}

