"""DAG documentation (Markdown) generated from a product spec."""

from __future__ import annotations

from dag_factory.ingest import location_of
from dag_factory.spec.models import ProductSpec


def product_doc_md(spec: ProductSpec, source_file: str) -> str:
    """Markdown shown on the DAG page: title, description, owner, ports, contract, SLOs."""
    lines = [f"# {spec.title}", "", spec.description or "", "",
             "| | |", "|---|---|",
             f"| Product | `{spec.name}` v{spec.version} |",
             f"| Domain | {spec.domain or '-'} |",
             f"| Owner | {spec.owner.team} ({spec.owner.email}) |",
             f"| Runbook | {spec.owner.runbook or '-'} |",
             f"| Spec file | `{source_file}` |",
             f"| Engine | {_engine_line(spec)} |", "",
             "## Input ports", "", "| name | type | source |", "|---|---|---|"]
    for inp in spec.inputs:
        lines.append(f"| `{inp.name}` | {inp.type} | `{location_of(inp.model_dump())}` |")
    lines += ["", f"## Output port (partitioned by `{spec.output.partition_by}`)", "",
              "| column | type | checks |", "|---|---|---|"]
    for col in spec.output.columns:
        checks = ", ".join(next(iter(c)) if isinstance(c, dict) else str(c) for c in col.checks or [])
        lines.append(f"| `{col.name}` | {col.data_type or '-'} | {checks or '-'} |")
    if spec.output.checks:
        names = ", ".join(next(iter(c)) if isinstance(c, dict) else str(c) for c in spec.output.checks)
        lines += ["", f"Dataset checks: {names}"]
    slo = spec.slo
    lines += ["", "## SLOs", "",
              f"freshness {slo.freshness or '-'} · success rate {slo.success_rate or '-'} · "
              f"quality pass rate {slo.quality_pass_rate or '-'} · window {slo.window}"]
    return "\n".join(lines)


def _engine_line(spec: ProductSpec) -> str:
    """Where the product is published: the Parquet tree, or the warehouse table and its
    connection id (never the connection's host or credentials)."""
    engine = spec.engine
    if engine.type == "duckdb":
        return f"duckdb: Parquet under `products/{spec.name}/v{spec.major_version}/`"
    return (f"{engine.type}: table `{engine.schema_name}.{spec.name}_v{spec.major_version}` "
            f"(connection `{engine.conn_id}`)")
