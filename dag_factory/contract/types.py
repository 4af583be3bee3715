"""Widening of DuckDB column types: which type changes keep every published value readable.

A change from type ``A`` to type ``B`` *widens* when every value of ``A`` converts to ``B``
exactly (no rounding, no overflow) and a reader's SQL over the column keeps its meaning.
Widening is compatible; every other change of a column's type is breaking. The rules, and why
``VARCHAR`` is deliberately not the top of the lattice, are in docs/compatibility.md.

Type names are compared in DuckDB's canonical spelling (``int`` -> ``INTEGER``, ``string`` ->
``VARCHAR``, ``decimal`` -> ``DECIMAL(18,3)``), resolved by DuckDB itself, so the spec's
aliases and the published manifest's ``describe`` output compare equal.
"""

from __future__ import annotations

import functools
import re

from dag_factory.spec.models import SQL_TYPE

# (signed, value bits) of DuckDB's integer types
_INTEGERS = {
    "TINYINT": (True, 8), "SMALLINT": (True, 16), "INTEGER": (True, 32),
    "BIGINT": (True, 64), "HUGEINT": (True, 128),
    "UTINYINT": (False, 8), "USMALLINT": (False, 16), "UINTEGER": (False, 32),
    "UBIGINT": (False, 64), "UHUGEINT": (False, 128),
}
# decimal digits needed for every value of an integer type (precision minus scale of a DECIMAL)
_INTEGER_DIGITS = {
    "TINYINT": 3, "SMALLINT": 5, "INTEGER": 10, "BIGINT": 19, "HUGEINT": 39,
    "UTINYINT": 3, "USMALLINT": 5, "UINTEGER": 10, "UBIGINT": 20, "UHUGEINT": 39,
}
# IEEE 754 significand bits (integers up to this many bits are exact) and exact decimal digits
_FLOATS = {"FLOAT": (24, 6), "DOUBLE": (53, 15)}
# timestamp precisions, coarse to fine, that share one value range
_TIMESTAMPS = ["TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP"]
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


@functools.lru_cache(maxsize=256)
def canonical_type(name: str) -> str:
    """DuckDB's canonical name of a type: ``"int"`` -> ``"INTEGER"``, ``"numeric(5, 1)"`` ->
    ``"DECIMAL(5,1)"``, ``"varchar(10)"`` -> ``"VARCHAR"`` (DuckDB ignores the length).

    Args:
        name: a type as written in a spec (validated by ``SQL_TYPE``) or in a manifest.

    Returns:
        the canonical upper-case name; a name DuckDB does not know, or that is not a plain
        ``SQL_TYPE`` (nested types in a manifest), comes back upper-cased and unchanged.
    """
    if not re.match(SQL_TYPE, name):  # only plain type names are ever put into SQL below
        return name.strip().upper()
    import duckdb

    con = duckdb.connect()
    try:
        return con.execute(f"select typeof(cast(null as {name}))").fetchone()[0]
    except duckdb.Error:
        return name.strip().upper()
    finally:
        con.close()


def widens(old: str, new: str) -> bool:
    """Whether changing a column from ``old`` to ``new`` (canonical names) is a widening.

    Equal types count as widening. Integers widen to a wider integer of the same signedness,
    unsigned to a strictly wider signed one, to FLOAT/DOUBLE when their bits fit the
    significand (24/53) and to ``DECIMAL(p,s)`` when ``p - s`` holds all their digits;
    ``DECIMAL(p,s)`` widens to ``DECIMAL(p',s')`` with ``s' >= s`` and ``p'-s' >= p-s``, and to
    FLOAT/DOUBLE up to 6/15 digits; FLOAT -> DOUBLE; DATE -> TIMESTAMP; TIMESTAMP_S ->
    TIMESTAMP_MS -> TIMESTAMP. Nothing else widens (in particular nothing widens to VARCHAR).
    """
    if old == new:
        return True
    if old in _INTEGERS:
        return _integer_widens(old, new)
    old_decimal = _DECIMAL.match(old)
    if old_decimal:
        precision, scale = int(old_decimal[1]), int(old_decimal[2])
        new_decimal = _DECIMAL.match(new)
        if new_decimal:
            return int(new_decimal[2]) >= scale and \
                int(new_decimal[1]) - int(new_decimal[2]) >= precision - scale
        return new in _FLOATS and precision <= _FLOATS[new][1]
    if old == "FLOAT":
        return new == "DOUBLE"
    if old == "DATE":
        return new == "TIMESTAMP"
    if old in _TIMESTAMPS and new in _TIMESTAMPS:
        return _TIMESTAMPS.index(new) > _TIMESTAMPS.index(old)
    return False


def _integer_widens(old: str, new: str) -> bool:
    signed, bits = _INTEGERS[old]
    if new in _INTEGERS:
        new_signed, new_bits = _INTEGERS[new]
        if signed == new_signed:
            return new_bits >= bits
        return new_signed and new_bits > bits  # unsigned -> strictly wider signed
    if new in _FLOATS:
        return bits <= _FLOATS[new][0]
    new_decimal = _DECIMAL.match(new)
    if new_decimal:
        return int(new_decimal[1]) - int(new_decimal[2]) >= _INTEGER_DIGITS[old]
    return False
