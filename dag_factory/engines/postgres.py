"""The PostgreSQL warehouse engine: transform, Soda gate and a transactional partition swap
into the product table ``<schema>.<product>_v<major>`` (``engine: {type: postgres, ...}``).

Every stage opens its own connection through the postgres provider's ``PostgresHook``
(psycopg 3) and sets the session to ``TimeZone=UTC`` and ``DateStyle=ISO``. Every identifier
it writes into SQL is quoted (:func:`quote_ident`); values travel as bound parameters or
COPY data, never as SQL text. See docs/engines.md.
"""

from __future__ import annotations

import datetime as dt
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from dag_factory.engines.base import (
    StagedOutput, StageJob, TablePublish, WarehouseEngine, staging_prefix,
)
from dag_factory.engines.duckdb import quote_ident
from dag_factory.engines.postgres_types import is_nested, postgres_type
from dag_factory.operator_base import DeterministicFailure
from dag_factory.storage import NULL_PARTITION

COPY_BATCH_ROWS = 10_000
RECORDS_TABLE = "_dataproducts_contracts"  # one publish record per product and major
_PARAM = re.compile(r"\$(data_interval_start|data_interval_end|ds)\b")


class StagingMissing(DeterministicFailure, RuntimeError):
    """The run's staging table is gone (dropped, or the transform did not run)."""


class PublishRefused(DeterministicFailure, RuntimeError):
    """The staged rows cannot replace the product table's partitions (count differs from the
    audited one, or the columns differ from the product table's)."""


def qualified(schema: str, table: str) -> str:
    """``"schema"."table"``, both quoted."""
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def render_parameters(sql: str, job: StageJob) -> str:
    """Replace ``$data_interval_start``, ``$data_interval_end`` and ``$ds`` in the product SQL
    by literals: PostgreSQL takes no bound parameters in ``CREATE TABLE AS``. The values are
    the run's own (timestamps in UTC, ``ds`` as YYYY-MM-DD), quoted as SQL string literals.

    Returns:
        the SQL text with the parameters replaced (other text untouched).
    """
    params = job.interval.as_params()

    def literal(match: re.Match) -> str:
        value = params[match.group(1)]
        if match.group(1) == "ds":
            return "'" + str(value).replace("'", "''") + "'"
        return f"timestamp '{value.isoformat(sep=' ')}'"

    return _PARAM.sub(literal, sql)


def contract_columns(columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``output.columns`` with each ``data_type`` as Soda's PostgreSQL dialect reads it: the
    PostgreSQL type name, with a length/precision/scale as Soda's own keys
    (``numeric(10, 2)`` -> ``data_type: numeric, numeric_precision: 10, numeric_scale: 2``)."""
    adapted = []
    for column in columns:
        column = dict(column)
        if column.get("data_type"):
            pg = postgres_type(column["data_type"])
            sized = re.match(r"^(\w+)\((\d+)(?:, (\d+))?\)$", pg)
            if sized and sized.group(1) == "numeric":
                column.update(data_type="numeric", numeric_precision=int(sized.group(2)),
                              numeric_scale=int(sized.group(3) or 0))
            elif sized:
                column.update(data_type=sized.group(1),
                              character_maximum_length=int(sized.group(2)))
            else:
                column["data_type"] = pg
        adapted.append(column)
    return adapted


class PostgresEngine(WarehouseEngine):
    """``engine: {type: postgres, conn_id: <postgres connection>, schema: <schema>}``.

    Tables: the product table ``<schema>.<product>_v<major>`` (created on the first publish,
    with an index on the partition column) and one staging table per run,
    ``<schema>._stg_<product>_v<major>_<run digest>``, dropped by the publish that swaps it in
    (kept after a failed gate, for diagnosis); ``<schema>._dataproducts_contracts``, one
    publish record (version, schema, output contract) per product and major.
    """

    type = "postgres"

    @property
    def conn_id(self) -> str:
        return self.config["conn_id"]

    @property
    def schema(self) -> str:
        return self.config.get("schema") or "dataproducts"

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A psycopg 3 connection from ``PostgresHook`` in autocommit mode (transactions are
        explicit), session in UTC with ISO dates; closed on exit.

        Raises:
            RuntimeError: when the hook gives a psycopg 2 connection (psycopg 3 is needed for
                COPY and for Soda's PostgreSQL data source).
        """
        import psycopg
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        conn = PostgresHook(postgres_conn_id=self.conn_id).get_conn()
        if not isinstance(conn, psycopg.Connection):
            conn.close()
            raise RuntimeError("engine postgres needs psycopg 3 (pip install 'psycopg[binary]') "
                               "and SQLAlchemy 2, so that PostgresHook uses it")
        try:
            conn.autocommit = True
            conn.execute("set timezone to 'UTC'")
            conn.execute("set datestyle to 'ISO, YMD'")
            yield conn
        finally:
            conn.close()

    # -- transform ---------------------------------------------------------------------------

    def transform(self, job: StageJob, sql: str, inputs: Mapping[str, Path],
                  columns: list[dict[str, Any]], partition_by: str) -> StagedOutput:
        """See :meth:`WarehouseEngine.transform`. Inputs become temporary tables (COPY),
        the SQL's result a temporary table, and its conformed columns the staging table."""
        from dag_factory.transform import check_columns

        staging = qualified(self.schema, job.staging_table)
        with self.connect() as conn:
            conn.execute(f"create schema if not exists {quote_ident(self.schema)}")
            for name, path in inputs.items():
                load_parquet(conn, name, path)
            conn.execute(f"create temporary table _result as {render_parameters(sql, job)}")
            actual = [d.name for d in conn.execute("select * from _result limit 0").description]
            check_columns(actual, columns, job.product)
            with conn.transaction():
                conn.execute(f"drop table if exists {staging}")
                conn.execute(f"create table {staging} as {conformed_select(columns)}")
            rows = conn.execute(f"select count(*) from {staging}").fetchone()[0]
            key = quote_ident(partition_by)
            values = [r[0] for r in conn.execute(
                f"select distinct cast({key} as text) from {staging}").fetchall()]
            size = _relation_size(conn, staging)
        return StagedOutput(rows=rows, partitions=_sorted_partitions(values), bytes=size)

    # -- quality gate ------------------------------------------------------------------------

    def audit(self, job: StageJob, columns: list[dict[str, Any]],
              checks: list[Any] | None) -> tuple[Any, dict[str, Any]]:
        """See :meth:`WarehouseEngine.audit`: Soda's PostgreSQL data source on this stage's
        own connection, the dataset ``dataproducts/<database>/<schema>/<staging table>``."""
        from dag_factory.quality.contract import DATA_SOURCE, contract_yaml
        from dag_factory.quality.gate import measure_columns, verify_on

        staging = qualified(self.schema, job.staging_table)
        with self.connect() as conn:
            self._require_staging(conn, job)
            rows = conn.execute(f"select count(*) from {staging}").fetchone()[0]
            database = conn.execute("select current_database()").fetchone()[0]
            contract = contract_yaml(
                job.product, contract_columns(columns), checks,
                dataset=f"{DATA_SOURCE}/{database}/{self.schema}/{job.staging_table}")
            result = verify_on(soda_data_source(conn), contract, rows)
            metrics = measure_columns(conn, staging, [c["name"] for c in columns])
            metrics["bytes"] = _relation_size(conn, staging)
        return result, metrics

    # -- publish -----------------------------------------------------------------------------

    def publish(self, job: StageJob, partition_by: str, audited_rows: int,
                version: str | None = None, contract: dict | None = None) -> TablePublish:
        """See :meth:`WarehouseEngine.publish`.

        In one transaction: take the product's advisory lock (publishes of one product take
        turns), create the product table on first use (columns as staged, index on the
        partition column), lock it against other writers (readers are not blocked), check the
        staged count and columns, delete the rows of the staged partitions and of every other
        partition value in the data interval, insert the staged rows, drop the staging table,
        and (with ``version``) upsert the publish record in ``<schema>._dataproducts_contracts``.
        Readers see the old rows until the commit, the new ones after it; an error or a lost
        connection before the commit rolls everything back.

        Raises:
            StagingMissing / PublishRefused; psycopg errors (nothing changed).
        """
        product = qualified(self.schema, job.table)
        staging = qualified(self.schema, job.staging_table)
        key = quote_ident(partition_by)
        with self.connect() as conn:
            self._require_staging(conn, job)
            database = conn.execute("select current_database()").fetchone()[0]
            if version is not None:
                self._create_records_table(conn)
            with conn.transaction():
                # publishes of one product take turns, the table's first creation included
                conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [product])
                if _regclass(conn, self.schema, job.table) is None:
                    conn.execute(f"create table {product} (like {staging})")
                    conn.execute(f"create index on {product} ({key})")
                conn.execute(f"lock table {product} in share row exclusive mode")
                staged_rows = conn.execute(f"select count(*) from {staging}").fetchone()[0]
                if staged_rows != audited_rows:
                    raise PublishRefused(
                        f"product {job.product!r}: the staging table {job.staging_table} holds "
                        f"{staged_rows} rows but the quality gate audited {audited_rows}; "
                        "re-run the transform and the gate")
                schema = _columns_of(conn, self.schema, job.table)
                _check_same_columns(job, schema, _columns_of(conn, self.schema, job.staging_table))
                column_type = dict((c["name"], c["type"]) for c in schema)[partition_by]
                staged = _sorted_partitions([r[0] for r in conn.execute(
                    f"select distinct cast({key} as text) from {staging}").fetchall()])
                stale = [v for v in self._interval_partitions(conn, product, key, column_type, job)
                         if v not in staged]
                conn.execute(
                    f"delete from {product} where {key} in (select {key} from {staging})"
                    f" or ({key} is null and exists (select 1 from {staging} where {key} is null))"
                    f" or cast({key} as text) = any(%s)", [stale])
                names = ", ".join(quote_ident(c["name"]) for c in schema)
                inserted = conn.execute(f"insert into {product} ({names}) select {names} "
                                        f"from {staging}").rowcount
                conn.execute(f"drop table {staging}")
                table = f"{database}.{self.schema}.{job.table}"
                if version is not None:
                    self._upsert_record(conn, job, {
                        "product": job.product, "version": version,
                        "partition": {"key": partition_by}, "schema": schema,
                        "contract": contract, "run_id": job.run_id, "table": table,
                        "published_at": dt.datetime.now(dt.timezone.utc).isoformat()})
            size = _relation_size(conn, product)
        return TablePublish(rows=inserted, partitions=staged, removed=stale, table=table,
                            schema=schema, bytes=size)

    def published_record(self, product: str) -> dict | None:
        """See :meth:`WarehouseEngine.published_record`: the row of the highest major in
        ``<schema>._dataproducts_contracts``.

        Raises:
            psycopg errors (unreachable database, no access).
        """
        with self.connect() as conn:
            if _regclass(conn, self.schema, RECORDS_TABLE) is None:
                return None
            row = conn.execute(
                f"select record from {qualified(self.schema, RECORDS_TABLE)} "
                "where product = %s order by major desc limit 1", [product]).fetchone()
        return None if row is None else row[0]

    def _create_records_table(self, conn) -> None:
        """Create the publish records table once per schema; concurrent first publishes of
        different products take turns (``create table if not exists`` alone can race)."""
        records = qualified(self.schema, RECORDS_TABLE)
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [records])
            conn.execute(f"create table if not exists {records} (product text not null, "
                         "major integer not null, record jsonb not null, "
                         "published_at timestamptz not null, primary key (product, major))")

    def _upsert_record(self, conn, job: StageJob, record: dict) -> None:
        from psycopg.types.json import Jsonb

        conn.execute(
            f"insert into {qualified(self.schema, RECORDS_TABLE)} "
            "(product, major, record, published_at) values (%s, %s, %s, now()) "
            "on conflict (product, major) do update set record = excluded.record, "
            "published_at = excluded.published_at", [job.product, job.major, Jsonb(record)])

    def _interval_partitions(self, conn, product: str, key: str, column_type: str,
                             job: StageJob) -> list[str]:
        """Partition values of the product table in the run's data interval, as text: a range
        query for date/timestamp keys, else the values that read as a moment in the interval
        (the Parquet engine's rule, :meth:`DataInterval.contains_partition`)."""
        if column_type == "date" or column_type.startswith("timestamp"):
            bounds = ([job.interval.start, job.interval.end] if "with time zone" in column_type
                      else [job.interval.start.replace(tzinfo=None),
                            job.interval.end.replace(tzinfo=None)])
            rows = conn.execute(f"select distinct cast({key} as text) from {product} "
                                f"where {key} >= %s and {key} < %s", bounds).fetchall()
            return [r[0] for r in rows]
        rows = conn.execute(f"select distinct cast({key} as text) from {product}").fetchall()
        return [r[0] for r in rows if r[0] is not None
                and job.interval.contains_partition(r[0]) is True]

    def _require_staging(self, conn, job: StageJob) -> None:
        if _regclass(conn, self.schema, job.staging_table) is None:
            raise StagingMissing(
                f"product {job.product!r}: the staging table "
                f"{self.schema}.{job.staging_table} of run {job.run_id} does not exist; "
                "re-run the transform (clear the transform task)")

    # -- lineage -----------------------------------------------------------------------------

    def product_naming(self, product: str, major: int):
        """``postgres://host:port`` + ``database.schema.<product>_v<major>``."""
        return self._naming(f"{product}_v{major}")

    def staged_naming(self, product: str, major: int):
        """``postgres://host:port`` + ``database.schema._stg_<product>_v<major>``."""
        return self._naming(staging_prefix(product, major))

    def _naming(self, table: str):
        from airflow.sdk import BaseHook
        from openlineage.client.naming.dataset import Postgres

        conn = BaseHook.get_connection(self.conn_id)
        return Postgres(host=conn.host or "localhost", port=str(conn.port or 5432),
                        database=conn.schema or "postgres", schema=self.schema, table=table)


def conformed_select(columns: list[dict[str, Any]]) -> str:
    """SELECT of the declared columns from ``_result``, in order, cast to the PostgreSQL type
    of their ``data_type`` (a column without one keeps the type the SQL gave it)."""
    select = []
    for column in columns:
        ident = quote_ident(column["name"])
        data_type = column.get("data_type")
        select.append(f"cast({ident} as {postgres_type(data_type)}) as {ident}"
                      if data_type else ident)
    return f"select {', '.join(select)} from _result"


def load_parquet(conn, name: str, path: Path) -> int:
    """Load a staged Parquet file into the temporary table ``name`` with COPY.

    Column types are the PostgreSQL types of the file's DuckDB types; nested columns (lists,
    structs, maps) arrive as ``jsonb``.

    Returns:
        the number of rows loaded.
    """
    from dag_factory.engines import duckdb as embedded

    duck = embedded.connect()
    try:
        described = duck.execute("describe select * from read_parquet(?)", [str(path)]).fetchall()
        definitions, select = [], []
        for column, duck_type, *_ in described:
            ident = quote_ident(column)
            if is_nested(duck_type):
                definitions.append(f"{ident} jsonb")
                select.append(f"cast(to_json({ident}) as varchar)")
            else:
                definitions.append(f"{ident} {postgres_type(duck_type)}")
                select.append(ident)
        table = quote_ident(name)
        conn.execute(f"drop table if exists pg_temp.{table}")
        conn.execute(f"create temporary table {table} ({', '.join(definitions)})")
        result = duck.execute(f"select {', '.join(select)} from read_parquet(?)", [str(path)])
        rows = 0
        with conn.cursor() as cursor, cursor.copy(f"copy {table} from stdin") as copy:
            while batch := result.fetchmany(COPY_BATCH_ROWS):
                for row in batch:
                    copy.write_row(row)
                rows += len(batch)
        return rows
    finally:
        duck.close()


def soda_data_source(conn):
    """Soda's PostgreSQL data source on the open psycopg connection ``conn`` (Soda leaves a
    connection it did not open alone). The model carries no password: it is never used to
    connect."""
    from soda_core.common.data_source_connection import DataSourceConnection
    from soda_postgres.common.data_sources.postgres_data_source import PostgresDataSourceImpl
    from soda_postgres.common.data_sources.postgres_data_source_connection import (
        PostgresDataSource, PostgresDataSourceConnection,
    )

    from dag_factory.quality.contract import DATA_SOURCE

    class _Existing(PostgresDataSourceConnection):
        def __init__(self, name: str, connection) -> None:
            DataSourceConnection.__init__(self, name, {}, connection=connection)

    info = conn.info
    model = PostgresDataSource(name=DATA_SOURCE, connection={
        "host": info.host, "port": info.port, "database": info.dbname, "user": info.user,
        "password": ""})
    return PostgresDataSourceImpl(data_source_model=model,
                                  connection=_Existing(DATA_SOURCE, conn))


def _regclass(conn, schema: str, table: str):
    return conn.execute("select to_regclass(%s)", [qualified(schema, table)]).fetchone()[0]


def _relation_size(conn, relation: str) -> int:
    return conn.execute("select pg_total_relation_size(to_regclass(%s))",
                        [relation]).fetchone()[0] or 0


def _columns_of(conn, schema: str, table: str) -> list[dict[str, str]]:
    """``[{"name", "type"}]`` of a table, in column order (types as ``format_type`` gives)."""
    rows = conn.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute "
        "where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped order by attnum",
        [qualified(schema, table)]).fetchall()
    return [{"name": name, "type": kind} for name, kind in rows]


def _check_same_columns(job: StageJob, product: list[dict], staged: list[dict]) -> None:
    if product != staged:
        def text(cols):
            return ", ".join(f"{c['name']} {c['type']}" for c in cols)

        raise PublishRefused(
            f"product {job.product!r}: the staged columns ({text(staged)}) differ from the "
            f"product table {job.table} ({text(product)}); a changed output schema needs a "
            "new major version (a new table), or migrate the table first")


def _sorted_partitions(values: list[str | None]) -> list[str]:
    """Partition values sorted as the Parquet engine sorts them: NULL first, then by text."""
    text = sorted(v for v in values if v is not None)
    return ([NULL_PARTITION] if None in values else []) + text
