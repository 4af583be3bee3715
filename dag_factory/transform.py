"""The transform stage: the product's SQL over its staged inputs, in in-process DuckDB or on
the product's warehouse engine (:mod:`dag_factory.engines`)."""

from __future__ import annotations

import re
from typing import Any

from dag_factory.datastore.workspace import Workspace
from dag_factory.engines import duckdb as engine
from dag_factory.operator_base import DeterministicFailure, ProductOperator
from dag_factory.storage import NULL_PARTITION, run_paths


class ContractViolation(DeterministicFailure, ValueError):
    """The transform's result does not have the columns the output contract declares."""


class TransformOperator(ProductOperator):
    """Run the transform SQL and stage its result, conformed to the output contract.

    Each input is a relation named after it. The SQL may use ``$data_interval_start``,
    ``$data_interval_end`` (UTC timestamps) and ``$ds`` (YYYY-MM-DD) as bound parameters, and
    Jinja with Airflow macros. The staged output has exactly the declared columns, in the
    declared order, cast to their declared ``data_type``.

    Args:
        sql: the transform SQL.
        input_names: the input relations to expose.
        columns: ``[{"name": str, "data_type": str | None}, ...]`` from ``output.columns``.
        partition_by: the partition column; date/timestamp values must fall in the interval.

    Returns (XCom): ``{"rows": int, "columns": [str], "partitions": [str]}``.

    Raises:
        ContractViolation: missing or undeclared columns, or partitions outside the interval.
    """

    template_fields = ("sql",)
    template_fields_renderers = {"sql": "sql"}
    ui_color = "#d5f5e3"

    def __init__(self, *, sql: str, input_names: list[str], columns: list[dict[str, Any]],
                 partition_by: str, **kwargs: Any) -> None:
        super().__init__(stage="transform", **kwargs)
        self.sql = sql
        self.input_names = input_names
        self.columns = columns
        self.partition_by = partition_by

    def run(self, context) -> dict[str, Any]:
        if self.warehouse is not None:
            return self._run_in_warehouse(context)
        interval = self.data_interval(context)
        paths = run_paths(self.product, context["run_id"])
        workspace = Workspace()  # local paths of staged files (downloaded/uploaded on S3)
        con = engine.connect()
        try:
            for name in self.input_names:
                staged = str(workspace.read(paths.input_file(name))).replace("'", "''")
                con.execute(f"create view {engine.quote_ident(name)} as "
                            f"select * from read_parquet('{staged}')")
            params = {k: v for k, v in interval.as_params().items()
                      if re.search(rf"\$\b{k}\b", self.sql)}
            con.execute(f"create temp table _result as {self.sql}", params)
            conform = conformed_select(con, "_result", self.columns, self.product)
            output = workspace.write(paths.output_file)
            rows = engine.relation_to_parquet(con, conform, output)
            self.measured = {"rows": rows, "bytes": output.stat().st_size}
            partitions = staged_partitions(con, output, self.partition_by)
            workspace.flush()
        finally:
            con.close()
            workspace.close()
        return self._result(interval, rows, partitions)

    def _run_in_warehouse(self, context) -> dict[str, Any]:
        """The transform on a warehouse engine (:meth:`WarehouseEngine.transform`); the staged
        inputs are read through a workspace, so they may live in an S3 data folder."""
        job = self.stage_job(context)
        paths = run_paths(self.product, context["run_id"])
        with Workspace() as workspace:
            inputs = {name: workspace.read(paths.input_file(name)) for name in self.input_names}
            staged = self.warehouse.transform(job, self.sql, inputs, self.columns,
                                              self.partition_by)
        self.measured = {"rows": staged.rows, "bytes": staged.bytes}
        return self._result(job.interval, staged.rows, staged.partitions)

    def _result(self, interval, rows: int, partitions: list[str]) -> dict[str, Any]:
        outside = [p for p in partitions if interval.contains_partition(p) is False]
        if outside:
            raise ContractViolation(
                f"product {self.product!r}: the transform produced rows for partitions outside "
                f"the run's data interval [{interval.start.isoformat()}, {interval.end.isoformat()}): "
                f"{', '.join(outside[:10])}; filter on $data_interval_start/$data_interval_end")
        self.log.info("transform: %d rows, partitions %s", rows, partitions)
        self.progress.info("transform: %d rows in %d partition(s)", rows, len(partitions))
        return {"rows": rows, "columns": [c["name"] for c in self.columns], "partitions": partitions}


    def lineage(self, measured):
        from dag_factory.lineage import stages

        return stages.transform(self.product, self.sql, self.input_names, self.columns, measured,
                                engine=self.engine)


def conformed_select(con, relation: str, columns: list[dict[str, Any]], product: str) -> str:
    """SELECT of the declared columns, in order and cast to their declared types.

    Raises:
        ContractViolation: naming missing and undeclared columns.
    """
    actual = [row[0] for row in con.execute(f"describe {relation}").fetchall()]
    check_columns(actual, columns, product)
    select = []
    for column in columns:
        ident = engine.quote_ident(column["name"])
        data_type = column.get("data_type")  # validated against models.SQL_TYPE
        select.append(f"cast({ident} as {data_type}) as {ident}" if data_type else ident)
    return f"select {', '.join(select)} from {relation}"


def check_columns(actual: list[str], columns: list[dict[str, Any]], product: str) -> None:
    """Check that a transform result has exactly the declared columns (any order).

    Args:
        actual: the result's column names; columns: ``output.columns`` dicts.

    Raises:
        ContractViolation: naming missing and undeclared columns.
    """
    declared = [c["name"] for c in columns]
    missing = [c for c in declared if c not in actual]
    extra = [c for c in actual if c not in declared]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing declared column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"undeclared column(s) {', '.join(extra)} (add them to output.columns)")
        raise ContractViolation(f"product {product!r}: transform result does not match "
                                f"output.columns: {'; '.join(parts)}")


def staged_partitions(con, parquet_file, partition_by: str) -> list[str]:
    """Distinct partition values of a staged Parquet file, as text, sorted."""
    staged = str(parquet_file).replace("'", "''")
    ident = engine.quote_ident(partition_by)
    rows = con.execute(f"select distinct cast({ident} as varchar) as v from read_parquet('{staged}') "
                       "order by v nulls first").fetchall()
    return [r[0] if r[0] is not None else NULL_PARTITION for r in rows]
