"""What each stage of a product run tells OpenLineage: its inputs, outputs and facets.

| stage        | inputs                                  | outputs                                         |
|--------------|-----------------------------------------|-------------------------------------------------|
| ingest.<in>  | the source (file, s3, http, postgres    | staged input (+ outputStatistics)               |
|              | tables, or an upstream product)         |                                                 |
| transform    | staged inputs                           | staged output (+ schema, columnLineage); SQL job|
| quality_gate | staged output (+ dataQualityAssertions, | none                                            |
|              | dataQualityMetrics)                     |                                                 |
| publish      | staged output                           | the product (+ schema, ownership, documentation,|
|              |                                         | outputStatistics); ownership + docs on the job  |
| export.<n>   | the product                             | the export target (+ outputStatistics)          |

Every function returns the provider's ``OperatorLineage``; ``measured`` is what the task's
``run`` recorded (None before it ran, e.g. for the START event).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.openlineage.extractors import OperatorLineage

from dag_factory.lineage import datasets as ds
from dag_factory.lineage import facets


def _stats(measured: dict | None) -> dict:
    if not measured or "rows" not in measured:
        return {}
    return {"outputStatistics": facets.output_statistics(measured["rows"], measured.get("bytes", 0),
                                                         measured.get("files", 1))}


def ingest(product: str, source: dict, measured: dict | None) -> OperatorLineage:
    """Lineage of ``ingest.<input>``."""
    return OperatorLineage(
        inputs=[ds.input_dataset(n) for n in ds.source_namings(source)],
        outputs=[ds.output_dataset(ds.staged_input_naming(product, source["name"]),
                                   output_facets=_stats(measured))])


def transform(product: str, sql: str, input_names: list[str], columns: list[dict],
              measured: dict | None, engine: dict | None = None) -> OperatorLineage:
    """Lineage of ``transform.run_sql``, with column lineage from the SQL when derivable.
    On a warehouse engine the output is its staging table (``engine``: the operator's)."""
    relations = {name: ds.staged_input_naming(product, name) for name in input_names}
    output_facets: dict[str, Any] = {"schema": facets.schema(
        [{"name": c["name"], "type": c.get("data_type")} for c in columns])}
    lineage = facets.column_lineage(sql, relations, [c["name"] for c in columns])
    if lineage is not None:
        output_facets["columnLineage"] = lineage
    return OperatorLineage(
        inputs=[ds.input_dataset(n) for n in relations.values()],
        outputs=[ds.output_dataset(ds.staged_output_naming(product, engine),
                                   facets=output_facets, output_facets=_stats(measured))],
        job_facets={"sql": facets.sql(sql)})


def quality_gate(product: str, record: dict | None, engine: dict | None = None) -> OperatorLineage:
    """Lineage of ``quality_gate.verify_contract``: the Soda results as data quality facets."""
    dataset_facets, input_facets = {}, {}
    if record:
        dataset_facets["dataQualityAssertions"] = facets.quality_assertions(record["checks"])
        if record.get("metrics"):
            input_facets["dataQualityMetrics"] = facets.quality_metrics(record["metrics"])
    return OperatorLineage(inputs=[ds.input_dataset(ds.staged_output_naming(product, engine),
                                                    facets=dataset_facets,
                                                    input_facets=input_facets)])


def publish(product: str, major: int, team: str, documentation: str, columns: list[dict],
            measured: dict | None, engine: dict | None = None) -> OperatorLineage:
    """Lineage of ``publish.swap_partitions``: the product dataset with its schema (types as
    written, descriptions from the spec), ownership, documentation and statistics."""
    described = {c["name"]: c.get("description") for c in columns}
    written = (measured or {}).get("schema") or [{"name": c["name"], "type": c.get("data_type")}
                                                 for c in columns]
    schema = facets.schema([{**f, "description": described.get(f["name"])} for f in written])
    product_facets = {"schema": schema, "ownership": facets.dataset_ownership(team),
                      "documentation": facets.dataset_documentation(documentation)}
    return OperatorLineage(
        inputs=[ds.input_dataset(ds.staged_output_naming(product, engine))],
        outputs=[ds.output_dataset(ds.product_naming(product, major, engine),
                                   facets=product_facets, output_facets=_stats(measured))],
        job_facets={"ownership": facets.job_ownership(team),
                    "documentation": facets.job_documentation(documentation)})


def export(product: str, major: int, port: dict, measured: dict | None) -> OperatorLineage:
    """Lineage of ``export.<port>``."""
    target = ds.s3_naming(port["uri"]) if port["type"] == "s3" else ds.file_naming(port["path"])
    return OperatorLineage(inputs=[ds.input_dataset(ds.product_naming(product, major))],
                           outputs=[ds.output_dataset(target, output_facets=_stats(measured))])
