"""SQL engines that run a product's transform and quality gate (DuckDB is the default).

``duckdb`` (:mod:`dag_factory.engines.duckdb`) runs in-process and publishes Parquet files;
the operators call it directly. Warehouse engines (:mod:`dag_factory.engines.base`) run the
stages in a database and publish a table; :func:`warehouse_engine` picks one from a spec's
``engine`` block. See docs/engines.md.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

WAREHOUSE_ENGINES = {"postgres": "dag_factory.engines.postgres:PostgresEngine"}


def warehouse_engine(config: Mapping[str, Any] | None):
    """The warehouse engine of a spec ``engine`` block, or None for the DuckDB default.

    Args:
        config: ``{"type": "postgres", "conn_id": ..., "schema": ...}``, ``{"type": "duckdb"}``
            or None.

    Returns:
        a :class:`dag_factory.engines.base.WarehouseEngine`, or None.

    Raises:
        ValueError: for an engine type that is neither duckdb nor a warehouse engine.
    """
    kind = (config or {}).get("type", "duckdb")
    if kind == "duckdb":
        return None
    if kind not in WAREHOUSE_ENGINES:
        raise ValueError(f"unknown engine {kind!r}; expected duckdb or one of "
                         f"{', '.join(WAREHOUSE_ENGINES)}")
    module, _, name = WAREHOUSE_ENGINES[kind].partition(":")
    return getattr(importlib.import_module(module), name)(config)


def engine_config(spec) -> dict | None:
    """The ``engine`` argument of a product's operators (and of :func:`warehouse_engine`):
    None on DuckDB, else the spec's engine block (by its YAML names) plus the product's major
    version. ``spec`` is a :class:`dag_factory.spec.models.ProductSpec`."""
    if spec.engine.type == "duckdb":
        return None
    return {**spec.engine.model_dump(by_alias=True), "major": spec.major_version}
