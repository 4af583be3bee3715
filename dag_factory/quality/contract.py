"""Build the Soda Core v4 data contract of a product's staged output from its spec."""

from __future__ import annotations

from typing import Any

import yaml

DATA_SOURCE = "dataproducts"
SCHEMA = "main"


def staged_table(product: str) -> str:
    """Name of the DuckDB table that holds the staged output during the gate."""
    return f"staged_{product}"


def contract_yaml(product: str, columns: list[dict[str, Any]], checks: list[Any] | None,
                  dataset: str | None = None) -> str:
    """The Soda contract YAML for the staged output of ``product``.

    Args:
        product: product name.
        columns: ``output.columns`` as in the spec (Soda syntax).
        checks: ``output.checks`` (Soda syntax) or None.
        dataset: Soda's qualified dataset name when the staged output is not the DuckDB
            table below (a warehouse engine's staging table).

    Returns:
        YAML text; ``dataset`` is filled in by the factory as ``<data source>/<schema>/<table>``
        (Soda's DuckDB dialect reads the first prefix as the schema: a catalog there would
        make the ``schema`` check look in the wrong place and come back not evaluated).
    """
    contract: dict[str, Any] = {
        "dataset": dataset or f"{DATA_SOURCE}/{SCHEMA}/{staged_table(product)}",
        "columns": columns,
    }
    if checks:
        contract["checks"] = checks
    return yaml.safe_dump(contract, sort_keys=False)
