"""The quality gate operator."""

from __future__ import annotations

import json
from typing import Any

from dag_factory import datastore
from dag_factory.datastore.workspace import Workspace
from dag_factory.engines import duckdb as engine
from dag_factory.operator_base import ProductOperator
from dag_factory.quality.contract import SCHEMA, contract_yaml, staged_table
from dag_factory.quality.gate import GateResult, QualityGateFailed, measure_columns, verify
from dag_factory.storage import quality_history_file, run_paths


class QualityGateOperator(ProductOperator):
    """Verify the staged output against the product's Soda contract (write-audit-publish: audit).

    ``fail``: the task fails and nothing is published; the failing checks (name, column,
    measured value, threshold) are in the log, in XCom (key ``quality``) and in the error.
    ``warn``: the run goes on to publish; the warnings are recorded the same way.
    Results are also written to ``_quality/<product>/<run>.json`` for the SLO engine.

    Args:
        columns / checks: ``output.columns`` and ``output.checks`` (Soda v4 syntax).

    Returns (XCom): :meth:`GateResult.to_dict`.

    Raises:
        QualityGateFailed: on a ``fail`` outcome.
    """

    ui_color = "#fdebd0"

    def __init__(self, *, columns: list[dict[str, Any]], checks: list[Any] | None,
                 **kwargs: Any) -> None:
        super().__init__(stage="quality_gate", **kwargs)
        self.columns = columns
        self.checks = checks

    def run(self, context) -> dict[str, Any]:
        paths = run_paths(self.product, context["run_id"])
        if self.warehouse is not None:
            result, metrics = self.warehouse.audit(self.stage_job(context), self.columns,
                                                   self.checks)
        else:
            result, metrics = self._audit_staged_file(paths)
        record = {**result.to_dict(), "metrics": metrics, "product": self.product,
                  "run_id": context["run_id"]}
        self.measured = record
        self._store(paths.quality_file, record)
        self._store(quality_history_file(self.product, context["run_id"]), record)
        context["ti"].xcom_push(key="quality", value=record)
        self._log_table(result)
        self.progress.info("quality_gate: %s (%s)", result.outcome.upper(), result.summary())
        if result.outcome == "fail":
            raise QualityGateFailed(self.product, result)
        return record

    def _audit_staged_file(self, paths) -> tuple[GateResult, dict]:
        """The gate on the DuckDB engine: Soda on the staged Parquet output (a local copy when
        the data folder is on S3)."""
        with Workspace() as workspace:
            output = workspace.read(paths.output_file)
            con = engine.connect()
            try:
                staged = str(output).replace("'", "''")
                table = f"{engine.quote_ident(SCHEMA)}.{engine.quote_ident(staged_table(self.product))}"
                con.execute(f"create table {table} as select * from read_parquet('{staged}')")
                rows = con.execute(f"select count(*) from {table}").fetchone()[0]
                result = verify(con, contract_yaml(self.product, self.columns, self.checks), rows)
                metrics = measure_columns(con, table, [c["name"] for c in self.columns])
            finally:
                con.close()
            metrics["bytes"] = output.stat().st_size
        return result, metrics

    def lineage(self, measured):
        from dag_factory.lineage import stages

        return stages.quality_gate(self.product, measured, engine=self.engine)

    @staticmethod
    def _store(path, record: dict) -> None:
        datastore.write_text(path, json.dumps(record, indent=2, default=str))  # atomic

    def _log_table(self, result: GateResult) -> None:
        self.log.info("quality gate on %d rows: %s -> %s", result.rows, result.summary(),
                      result.outcome.upper())
        for check in result.checks:
            self.log.info("  %-13s %s", check.outcome.upper(), check.describe())
        for error in result.errors:
            self.log.error("  Soda error: %s", error)
