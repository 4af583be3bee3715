"""SQL data types of the spec's ``output.columns`` -> ODCS v3.1 logical types.

ODCS v3.1 logical types: string, date, timestamp, time, number, integer, object, array,
boolean (the ``logicalType`` enum of ``SchemaBaseProperty`` in the official JSON Schema), with
``logicalTypeOptions.format`` i8..i128/u8..u128 for integers and f32/f64 for numbers. The SQL
names are DuckDB's (the transform engine) and their common aliases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_INTEGERS = {
    "tinyint": "i8", "int1": "i8", "smallint": "i16", "int2": "i16", "short": "i16",
    "integer": "i32", "int": "i32", "int4": "i32", "signed": "i32",
    "bigint": "i64", "int8": "i64", "long": "i64", "hugeint": "i128",
    "utinyint": "u8", "usmallint": "u16", "uinteger": "u32", "ubigint": "u64", "uhugeint": "u128",
}
_FLOATS = {"double": "f64", "double precision": "f64", "float8": "f64",
           "float": "f32", "float4": "f32", "real": "f32"}
_DECIMALS = {"decimal", "numeric"}
_STRINGS = {"varchar", "char", "bpchar", "text", "string", "character varying", "character",
            "nvarchar", "nchar"}
_BINARY = {"blob", "bytea", "binary", "varbinary"}
_BOOLEANS = {"boolean", "bool", "logical"}
_TIMESTAMPS = {"timestamp", "datetime", "timestamp_s", "timestamp_ms", "timestamp_ns",
               "timestamp without time zone"}
_TIMESTAMPS_TZ = {"timestamptz", "timestamp_tz", "timestamp with time zone"}
_TIMES = {"time", "timetz", "time with time zone", "time without time zone"}


@dataclass(frozen=True)
class LogicalType:
    """An ODCS logical type: ``name`` (None: no ODCS equivalent, e.g. interval or json) and
    ``options`` for ``logicalTypeOptions`` (e.g. ``{"format": "i64"}``)."""

    name: str | None
    options: dict = field(default_factory=dict)


def logical_type(data_type: str | None) -> LogicalType:
    """The ODCS logical type of an SQL type name such as ``bigint``, ``varchar(10)`` or
    ``decimal(10, 2)`` (case and parameters ignored, except a varchar length, which becomes
    ``maxLength``). None or an unknown name gives ``LogicalType(None)``."""
    if not data_type:
        return LogicalType(None)
    match = re.match(r"^\s*([A-Za-z][A-Za-z0-9_ ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*\d+\s*)?\))?\s*$",
                     data_type)
    if not match:
        return LogicalType(None)
    base, size = re.sub(r"\s+", " ", match.group(1).lower()), match.group(2)
    if base in _INTEGERS:
        return LogicalType("integer", {"format": _INTEGERS[base]})
    if base in _FLOATS:
        return LogicalType("number", {"format": _FLOATS[base]})
    if base in _DECIMALS:
        return LogicalType("number")
    if base in _STRINGS:
        return LogicalType("string", {"maxLength": int(size)} if size else {})
    if base in _BINARY:
        return LogicalType("string", {"format": "binary"})
    if base == "uuid":
        return LogicalType("string", {"format": "uuid"})
    if base in _BOOLEANS:
        return LogicalType("boolean")
    if base == "date":
        return LogicalType("date")
    if base in _TIMESTAMPS:
        return LogicalType("timestamp", {"timezone": False})
    if base in _TIMESTAMPS_TZ:
        return LogicalType("timestamp", {"timezone": True})
    if base in _TIMES:
        return LogicalType("time")
    return LogicalType(None)
