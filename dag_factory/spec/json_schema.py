"""JSON Schema of product spec v1, generated from the pydantic models (for editors and CI)."""

from __future__ import annotations

import copy

from dag_factory.spec.models import ProductSpec
from dag_factory.spec.soda_schema import soda_contract_schema

SCHEMA_ID = "https://github.com/airflow-dataproducts/airflow-dataproducts/schemas/product-v1.json"


def product_json_schema() -> dict:
    """Return the JSON Schema (draft 2020-12) of a product file.

    ``output.columns`` items and ``output.checks`` use Soda Core v4's own contract schema
    (its ``$defs`` are merged in), so an editor completes Soda checks too.

    Raises:
        FileNotFoundError: when soda-core's schema file is missing.
    """
    schema = ProductSpec.model_json_schema(mode="validation")
    soda = copy.deepcopy(soda_contract_schema())
    defs = schema.setdefault("$defs", {})
    clash = set(defs) & set(soda.get("$defs", {}))
    if clash:  # pragma: no cover - guards a future Soda release
        raise RuntimeError(f"Soda schema $defs clash with ours: {sorted(clash)}")
    defs.update(soda.get("$defs", {}))
    defs["Column"] = soda["properties"]["columns"]["items"]
    output = defs["OutputSpec"]["properties"]
    output["checks"] = {"anyOf": [soda["properties"]["checks"], {"type": "null"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }
