"""The embedded DuckDB engine: read files into relations, run the transform, write Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

READERS = {
    "csv": "read_csv",
    "parquet": "read_parquet",
    "json": "read_json_auto",
    "jsonl": "read_json_auto",
}


def quote_ident(name: str) -> str:
    """Quote an SQL identifier for DuckDB/Postgres (``a"b`` -> ``"a""b"``)."""
    return '"' + name.replace('"', '""') + '"'


def connect():
    """A fresh in-process DuckDB connection (in memory: no file lock between tasks)."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET threads TO 2")
    return con


def reader_sql(fmt: str, options: dict[str, Any] | None = None) -> tuple[str, list]:
    """SQL of a table function reading one file of ``fmt``, with the path and options bound.

    Args:
        fmt: csv | parquet | json | jsonl.
        options: reader options (CSV only), e.g. ``{"nullstr": "NA"}``; None values are skipped.

    Returns:
        (sql, parameters): the SQL takes the path as its first ``?`` and then one ``?`` per option.

    Raises:
        ValueError: for an unknown format.
    """
    if fmt not in READERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(READERS)}")
    options = {k: v for k, v in (options or {}).items() if v is not None}
    args = "".join(f", {k} = ?" for k in options)  # option names come from the spec model
    if fmt == "jsonl":
        args += ", format = 'newline_delimited'"
    return f"select * from {READERS[fmt]}(?{args})", list(options.values())


def file_to_parquet(con, source: Path | str, fmt: str, target: Path,
                    options: dict[str, Any] | None = None) -> int:
    """Read ``source`` (of ``fmt``) and write it as Parquet at ``target``.

    Returns:
        the number of rows written.
    """
    sql, params = reader_sql(fmt, options)
    return relation_to_parquet(con, sql, target, [str(source), *params])


def relation_to_parquet(con, query: str, target: Path, params: list | dict | None = None) -> int:
    """Write the result of ``query`` to ``target`` (Parquet, zstd), via a temp file and rename.

    Returns:
        the number of rows written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    # COPY answers with the number of rows it wrote: no second read of the file
    rows = con.execute(f"copy ({query}) to '{sql_string(partial)}' (format parquet, compression zstd)",
                       params or []).fetchone()[0]
    partial.replace(target)
    return rows


def sql_string(path: Path | str) -> str:
    """``path`` as the body of a SQL string literal (single quotes doubled)."""
    return str(path).replace("'", "''")
