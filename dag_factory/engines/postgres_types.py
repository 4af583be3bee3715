"""Map DuckDB type names (the spec's ``data_type`` and the types of staged Parquet inputs) to
PostgreSQL types.

The spec's ``output.columns[].data_type`` uses DuckDB's type names (DuckDB is the default
engine). A product on ``engine: postgres`` has its columns cast to the PostgreSQL type of the
same meaning, which is not always the type of the same *name*: DuckDB ``float`` is 4 bytes
(PostgreSQL ``real``), while PostgreSQL ``float`` is 8 bytes; DuckDB ``decimal`` without
width is ``decimal(18,3)``. Sources: DuckDB "Data Types" overview, PostgreSQL manual ch. 8.
"""

from __future__ import annotations

import re

_SIMPLE = {
    "boolean": "boolean", "bool": "boolean", "logical": "boolean",
    "tinyint": "smallint", "int1": "smallint", "utinyint": "smallint",
    "smallint": "smallint", "int2": "smallint", "short": "smallint", "usmallint": "integer",
    "integer": "integer", "int": "integer", "int4": "integer", "signed": "integer",
    "uinteger": "bigint",
    "bigint": "bigint", "int8": "bigint", "long": "bigint",
    "ubigint": "numeric(20, 0)", "hugeint": "numeric(39, 0)", "uhugeint": "numeric(39, 0)",
    "float": "real", "float4": "real", "real": "real",
    "double": "double precision", "float8": "double precision",
    "double precision": "double precision",
    "decimal": "numeric(18, 3)", "numeric": "numeric(18, 3)",
    "varchar": "varchar", "string": "text", "text": "text", "char": "text", "bpchar": "text",
    "date": "date", "time": "time",
    "timestamp": "timestamp", "datetime": "timestamp", "timestamp_s": "timestamp",
    "timestamp_ms": "timestamp", "timestamp_ns": "timestamp", "timestamp_us": "timestamp",
    "timestamp with time zone": "timestamptz", "timestamptz": "timestamptz",
    "interval": "interval", "uuid": "uuid", "json": "jsonb",
    "blob": "bytea", "bytea": "bytea", "binary": "bytea", "varbinary": "bytea",
}
_SIZED = {"decimal": "numeric", "numeric": "numeric", "varchar": "varchar", "char": "char"}
_WITH_ARGS = re.compile(r"^([a-z ]+?)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$")
_NESTED = re.compile(r"(\[\d*\]$|^(struct|map|union|list)\s*\()", re.IGNORECASE)


class UnsupportedType(ValueError):
    """A type name with no PostgreSQL equivalent here (the message lists the supported ones)."""


def postgres_type(duckdb_type: str) -> str:
    """The PostgreSQL type for a DuckDB type name.

    Args:
        duckdb_type: e.g. ``"double"``, ``"DECIMAL(10,2)"``, ``"TIMESTAMP WITH TIME ZONE"``
            (case and spacing do not matter).

    Returns:
        the PostgreSQL type, e.g. ``"double precision"``, ``"numeric(10, 2)"``, ``"timestamptz"``.

    Raises:
        UnsupportedType: for nested types (list, struct, map) and names not in the table.
    """
    name = " ".join(duckdb_type.strip().lower().split())
    if name in _SIMPLE:
        return _SIMPLE[name]
    sized = _WITH_ARGS.match(name)
    if sized and sized.group(1) in _SIZED:
        base, first, second = _SIZED[sized.group(1)], sized.group(2), sized.group(3)
        if base in ("varchar", "char") and second is not None:
            raise UnsupportedType(f"{duckdb_type!r}: {base} takes one length, e.g. {base}(20)")
        return f"{base}({first}, {second})" if second is not None else f"{base}({first})"
    raise UnsupportedType(
        f"data type {duckdb_type!r} has no PostgreSQL equivalent for engine postgres; expected "
        "a DuckDB type name such as boolean, integer, bigint, real, double, decimal(p, s), "
        "varchar, text, date, time, timestamp, timestamptz, interval, uuid, json or blob "
        "(docs/engines.md lists them all)")


def is_nested(duckdb_type: str) -> bool:
    """Whether a DuckDB type is nested (``INTEGER[]``, ``STRUCT(...)``, ``MAP(...)``); such
    input columns are loaded into PostgreSQL as ``jsonb``."""
    return bool(_NESTED.search(duckdb_type.strip()))

