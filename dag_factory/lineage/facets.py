"""OpenLineage facets built from a product's spec and from what its run measured.

Facets use the classes generated from the OpenLineage spec (``openlineage.client.generated``),
so their ``_producer`` and ``_schemaURL`` are set by the client.
"""

from __future__ import annotations

from typing import Any

from openlineage.client.generated import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    documentation_dataset,
    documentation_job,
    error_message_run,
    output_statistics_output_dataset,
    ownership_dataset,
    ownership_job,
    schema_dataset,
    sql_job,
)


def schema(fields: list[dict[str, Any]]) -> schema_dataset.SchemaDatasetFacet:
    """Schema facet from ``[{"name": str, "type": str | None, "description": ...}, ...]``."""
    return schema_dataset.SchemaDatasetFacet(fields=[
        schema_dataset.SchemaDatasetFacetFields(name=f["name"], type=f.get("type"),
                                                description=f.get("description"),
                                                ordinal_position=i + 1)
        for i, f in enumerate(fields)])


def dataset_ownership(team: str) -> ownership_dataset.OwnershipDatasetFacet:
    return ownership_dataset.OwnershipDatasetFacet(
        owners=[ownership_dataset.Owner(name=f"team:{team}", type="MAINTAINER")])


def job_ownership(team: str) -> ownership_job.OwnershipJobFacet:
    return ownership_job.OwnershipJobFacet(
        owners=[ownership_job.Owner(name=f"team:{team}", type="MAINTAINER")])


def dataset_documentation(text: str) -> documentation_dataset.DocumentationDatasetFacet:
    return documentation_dataset.DocumentationDatasetFacet(description=text,
                                                           contentType="text/markdown")


def job_documentation(text: str) -> documentation_job.DocumentationJobFacet:
    return documentation_job.DocumentationJobFacet(description=text, contentType="text/markdown")


def sql(query: str) -> sql_job.SQLJobFacet:
    return sql_job.SQLJobFacet(query=query, dialect="duckdb")


def output_statistics(rows: int, size: int, files: int) -> output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet:
    """Rows, bytes and files written."""
    return output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
        rowCount=rows, size=size, fileCount=files)


def quality_assertions(checks: list[dict[str, Any]]) -> data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet:
    """One assertion per Soda check of a gate record: name, column, success, severity.

    A warned check did not meet its threshold, so ``success`` is False with severity ``warn``.
    """
    return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(assertions=[
        data_quality_assertions_dataset.Assertion(
            assertion=c["type"] + (f":{c['qualifier']}" if c.get("qualifier") else ""),
            success=c["outcome"] == "passed", column=c.get("column"), name=c["name"],
            severity="warn" if c["level"] == "warn" else "error",
            expected=c.get("threshold"), actual=None if c.get("value") is None else str(c["value"]),
        ) for c in checks if c["outcome"] != "not_evaluated"])


def quality_metrics(metrics: dict[str, Any]) -> data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet:
    """Row count, bytes and per-column null/distinct counts measured by the gate."""
    return data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
        rowCount=metrics["rows"], bytes=metrics.get("bytes"),
        columnMetrics={name: data_quality_metrics_input_dataset.ColumnMetrics(
            nullCount=m["nulls"], distinctCount=m["distinct"])
            for name, m in metrics["columns"].items()})


def error_message(exc: BaseException | None) -> error_message_run.ErrorMessageRunFacet | None:
    """The task's error, or None when there is none."""
    if exc is None:
        return None
    return error_message_run.ErrorMessageRunFacet(message=f"{type(exc).__name__}: {exc}",
                                                  programmingLanguage="python")


def column_lineage(query: str, relations: dict[str, Any], output_columns: list[str]):
    """Column lineage of the transform SQL, or None when it cannot be derived.

    Args:
        query: the transform SQL (``$params`` allowed).
        relations: input relation name -> its dataset naming (``get_namespace``/``get_name``).
        output_columns: the declared output columns.

    openlineage-sql parses the SQL; when it reports errors, names a relation that is not an
    input, or misses an output column, no facet is returned: no lineage beats wrong lineage.
    """
    from openlineage_sql import parse

    try:
        meta = parse([query.replace("$", ":")], dialect="duckdb")
    except Exception:  # noqa: BLE001 - unparsable SQL gives no column lineage
        return None
    if meta is None or getattr(meta, "errors", None):
        return None
    fields: dict[str, column_lineage_dataset.Fields] = {}
    for item in meta.column_lineage:
        inputs = []
        for origin in item.lineage:
            naming = relations.get(origin.origin.name if origin.origin else None)
            if naming is None:
                return None
            inputs.append(column_lineage_dataset.InputField(
                namespace=naming.get_namespace(), name=naming.get_name(), field=origin.name))
        if inputs:
            fields[item.descendant.name] = column_lineage_dataset.Fields(inputFields=inputs)
    if not fields or not set(fields) <= set(output_columns):
        return None
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields)
