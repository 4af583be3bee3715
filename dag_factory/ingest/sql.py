"""``type: sql`` inputs: a query on an Airflow connection (any common-sql hook, e.g. Postgres)."""

from __future__ import annotations

from pathlib import Path

from dag_factory.engines import duckdb as engine


def fetch(source: dict, target: Path, context) -> int:
    """Run the (rendered) query through the connection's hook and stage the rows as Parquet.

    Raises:
        airflow exceptions for an unknown connection; the driver's error for a bad query.
    """
    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection(source["conn_id"]).get_hook()
    frame = hook.get_df(source["query"], df_type="pandas")
    con = engine.connect()
    try:
        con.register("_sql_input", frame)
        return engine.relation_to_parquet(con, "select * from _sql_input", target)
    finally:
        con.close()
