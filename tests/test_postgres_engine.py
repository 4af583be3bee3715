"""engine: postgres end to end: real Airflow runs (dag.test), real PostgreSQL (a database of
its own per test, dropped after), real Soda, real moto S3 for the demo product's S3 input.

The demo product fleet_daily has SQL that is portable between DuckDB and PostgreSQL, so the
same file runs on both engines and must publish the same rows."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid

import psycopg
import pytest

from helpers import demo_yaml, products_folder, published, run
from test_lineage import by_task, events_of, names, spec, validate_event  # noqa: F401

pytestmark = [pytest.mark.airflow_run, pytest.mark.usefixtures("airflow_db")]

JAN1, JAN2, JAN3 = dt.date(2013, 1, 1), dt.date(2013, 1, 2), dt.date(2013, 1, 3)
CONN_ID = "warehouse"
TABLE = '"dataproducts"."fleet_daily_v1"'
PASSWORD = "not-a-real-secret-7f3a"
ENGINE = f"engine: {{type: postgres, conn_id: {CONN_ID}, schema: dataproducts}}\n"


@pytest.fixture
def warehouse(postgres_url, monkeypatch):
    """A fresh database on the local PostgreSQL, as Airflow connection ``warehouse``.

    Yields:
        the database's connection URL (trust auth, no password); the database is dropped after.
    """
    name = f"dp_engine_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(postgres_url, autocommit=True)
    admin.execute(f'create database "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    # trust auth ignores the password; it is there to show it never reaches the lineage
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}",
                       f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/{name}")
    try:
        yield url
    finally:
        admin.execute(f'drop database if exists "{name}" with (force)')
        admin.close()


@pytest.fixture
def planes_in_s3(s3_endpoint):
    """fleet_daily's S3 input, uploaded to the moto server."""
    from dag_factory.demo.s3server import DEMO_CONN_ID
    from dag_factory.demo.seed import seed_s3

    seed_s3("s3://landing/nycflights13/planes.csv", DEMO_CONN_ID, log=lambda _: None)


def postgres_fleet(tmp_path, yaml_text: str | None = None):
    """A products folder holding fleet_daily (or ``yaml_text``) on engine postgres."""
    text = (yaml_text or demo_yaml("fleet_daily")) + ENGINE
    tmp_path.mkdir(parents=True, exist_ok=True)
    return products_folder(tmp_path, [], {"fleet_daily.yaml": text})


def table_rows(url: str, table: str = TABLE, order: str = "flight_date, manufacturer") -> list[dict]:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(f"select * from {table} order by {order}")
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def column_types(url: str, schema: str, table: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            [schema, table]).fetchall())


def tables_like(url: str, pattern: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_name like %s "
            "order by 1", [pattern]).fetchall()]


def test_postgres_engine_publishes_the_same_rows_as_duckdb(data_folder, warehouse, planes_in_s3,
                                                          tmp_path):
    pg_folder = postgres_fleet(tmp_path)
    days = [JAN1, JAN2, JAN3]
    timings = {}
    for day in days:
        started = time.monotonic()
        duck = run("fleet_daily", day)
        timings.setdefault("duckdb", []).append(time.monotonic() - started)
        started = time.monotonic()
        pg = run("fleet_daily", day, pg_folder)
        timings.setdefault("postgres", []).append(time.monotonic() - started)
        assert duck.state == pg.state == "success", (duck.tasks, pg.tasks)
        assert (pg.rows, pg.partitions) == (duck.rows, duck.partitions) == (pg.rows, [str(day)])
        assert pg.quality["outcome"] == duck.quality["outcome"]
        assert [(c["name"], c["outcome"], c["value"]) for c in pg.quality["checks"]] == \
            [(c["name"], c["outcome"], c["value"]) for c in duck.quality["checks"]]
        assert pg.quality["metrics"]["columns"] == duck.quality["metrics"]["columns"]
        for stage in ("transform.run_sql", "quality_gate.verify_contract", "publish.swap_partitions"):
            timings.setdefault(f"postgres {stage}", []).append(pg.tasks[stage][1])
            timings.setdefault(f"duckdb {stage}", []).append(duck.tasks[stage][1])
    print("\nseconds per run/stage:", {k: [round(v, 2) for v in vs] for k, vs in timings.items()})

    duckdb_rows = sorted(published(data_folder, "fleet_daily"),
                         key=lambda r: (r["flight_date"], r["manufacturer"]))
    postgres_rows = table_rows(warehouse)
    assert len(postgres_rows) > 3 * 10
    assert postgres_rows == duckdb_rows
    assert {type(v) for r in postgres_rows for v in r.values() if v is not None} == \
        {type(v) for r in duckdb_rows for v in r.values() if v is not None}
    assert column_types(warehouse, "dataproducts", "fleet_daily_v1") == {
        "flight_date": "date", "manufacturer": "character varying", "flights": "bigint",
        "aircraft": "bigint", "seats": "bigint"}
    assert tables_like(warehouse, "\\_stg\\_%") == [], "published runs leave no staging table"


def test_rerun_replaces_the_days_rows_and_a_failing_gate_changes_nothing(
        data_folder, warehouse, planes_in_s3, tmp_path):
    folder = postgres_fleet(tmp_path / "a")
    assert run("fleet_daily", JAN1, folder).state == "success"
    assert run("fleet_daily", JAN2, folder).state == "success"
    before = table_rows(warehouse)
    jan2 = [r for r in before if r["flight_date"] == JAN2]

    again = run("fleet_daily", JAN1, folder)
    assert again.state == "success"
    assert table_rows(warehouse) == before, "a re-run replaces the day: no duplicates"

    # a re-run whose output lost rows: they go, the other day stays as it was
    fewer = demo_yaml("fleet_daily").replace("where f.dep_time is not null",
                                             "where f.dep_time is not null and p.seats > 100")
    assert fewer != demo_yaml("fleet_daily")
    summary = run("fleet_daily", JAN1, postgres_fleet(tmp_path / "b", fewer))
    assert summary.state == "success"
    after = table_rows(warehouse)
    jan1_after = [r for r in after if r["flight_date"] == JAN1]
    assert 0 < len(jan1_after) < len([r for r in before if r["flight_date"] == JAN1])
    assert "UNKNOWN" not in {r["manufacturer"] for r in jan1_after}
    assert [r for r in after if r["flight_date"] == JAN2] == jan2

    strict = demo_yaml("fleet_daily").replace(
        "row_count: {threshold: {must_be_greater_than: 0}}",
        "row_count: {threshold: {must_be_greater_than: 1000}}")
    failed = run("fleet_daily", JAN1, postgres_fleet(tmp_path / "c", strict))
    assert failed.state == "failed"
    assert failed.tasks["quality_gate.verify_contract"][0] == "failed"
    assert failed.tasks["publish.swap_partitions"][0] == "upstream_failed"
    row_count = [c for c in failed.quality["checks"] if c["type"] == "row_count"][0]
    assert row_count["outcome"] == "failed" and row_count["value"] == len(
        [r for r in before if r["flight_date"] == JAN1])
    assert table_rows(warehouse) == after, "a failed gate leaves the table unchanged"
    assert len(tables_like(warehouse, "\\_stg\\_fleet\\_daily\\_v1\\_%")) == 1, \
        "the audited staging table is kept for diagnosis"


def test_a_failure_or_a_killed_connection_in_the_swap_leaves_the_old_rows(
        data_folder, warehouse, planes_in_s3, tmp_path):
    from dag_factory.engines.base import StageJob
    from dag_factory.engines.postgres import PostgresEngine
    from dag_factory.interval import DataInterval

    assert run("fleet_daily", JAN1, postgres_fleet(tmp_path / "a")).state == "success"
    old = table_rows(warehouse)
    with psycopg.connect(warehouse, autocommit=True) as conn:
        # fails the INSERT of the swap, after its DELETE ran in the same transaction
        conn.execute("""create function fail_insert() returns trigger language plpgsql as
                        $$ begin raise exception 'injected failure between delete and insert'; end $$""")
        conn.execute(f"create trigger fail_insert before insert on {TABLE} "
                     "for each statement execute function fail_insert()")
    lowered = demo_yaml("fleet_daily").replace("coalesce(p.manufacturer, 'UNKNOWN')",
                                               "lower(coalesce(p.manufacturer, 'UNKNOWN'))")
    summary = run("fleet_daily", JAN1, postgres_fleet(tmp_path / "b", lowered))
    assert summary.state == "failed"
    assert summary.tasks["publish.swap_partitions"][0] == "failed"
    assert table_rows(warehouse) == old

    # the same swap, its connection killed while it waits between delete and insert
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("drop trigger fail_insert on " + TABLE)
        conn.execute("""create function slow_insert() returns trigger language plpgsql as
                        $$ begin perform pg_sleep(60); return null; end $$""")
        conn.execute(f"create trigger slow_insert before insert on {TABLE} "
                     "for each statement execute function slow_insert()")
    engine = PostgresEngine({"type": "postgres", "conn_id": CONN_ID, "schema": "dataproducts"})
    start = dt.datetime(2013, 1, 1, tzinfo=dt.timezone.utc)
    job = StageJob("fleet_daily", 1, summary.run_id,
                   DataInterval(start, start + dt.timedelta(days=1)))
    outcome = {}

    def publish():
        try:
            outcome["result"] = engine.publish(job, "flight_date", summary.quality["rows"])
        except Exception as exc:  # noqa: BLE001 - the test asserts what it was
            outcome["error"] = exc

    swap = threading.Thread(target=publish)
    swap.start()
    with psycopg.connect(warehouse, autocommit=True) as watcher:
        pid = None
        for _ in range(300):
            row = watcher.execute("select pid from pg_stat_activity where query like 'insert into%'"
                                  " and wait_event = 'PgSleep'").fetchone()
            if row:
                pid = row[0]
                break
            time.sleep(0.1)
        assert pid, "the swap never reached its insert"
        assert table_rows(warehouse) == old, "a reader sees the old rows during the swap"
        watcher.execute("select pg_terminate_backend(%s)", [pid])
    swap.join(30)
    assert isinstance(outcome.get("error"), psycopg.OperationalError), outcome
    assert table_rows(warehouse) == old, "a killed swap leaves the old rows"

    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("drop trigger slow_insert on " + TABLE)
    done = engine.publish(job, "flight_date", summary.quality["rows"])
    new = table_rows(warehouse)
    assert done.rows == len(new) == len(old) and done.partitions == ["2013-01-01"]
    assert [r["manufacturer"] for r in new] == sorted(r["manufacturer"].lower() for r in old)
    assert tables_like(warehouse, "\\_stg\\_%") == []


ODD_SCHEMA = "odd schema; drop table public.sentinel; --'"
ODD_PRODUCT = f"""
name: odd_names
version: 2.0.0
title: Identifiers that need quoting
owner: {{team: t, email: t@example.com}}
start_date: 2013-01-01
inputs:
  - {{name: airlines, type: file, path: landing/nycflights13/airlines.csv}}
transform:
  sql: |
    select carrier as "Carrier; drop table public.sentinel; --",
           name as "it's name",
           cast($ds as date) as "Day Of"
    from airlines
output:
  partition_by: Day Of
  columns:
    - {{name: "Carrier; drop table public.sentinel; --", data_type: varchar, checks: [{{missing: }}]}}
    - {{name: "it's name", data_type: varchar}}
    - {{name: Day Of, data_type: date}}
  checks:
    - duplicate: {{columns: ["Carrier; drop table public.sentinel; --"]}}
    - schema:
engine: {{type: postgres, conn_id: {CONN_ID}, schema: "{ODD_SCHEMA}"}}
"""


def test_identifiers_are_quoted_everywhere(data_folder, warehouse, tmp_path):
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("create table public.sentinel (x int)")
    folder = products_folder(tmp_path, [], {"odd_names.yaml": ODD_PRODUCT})

    summary = run("odd_names", JAN2, folder)

    assert summary.state == "success", summary.tasks
    assert summary.quality["outcome"] == "pass", summary.quality
    assert tables_like(warehouse, "sentinel") == ["sentinel"]
    assert column_types(warehouse, ODD_SCHEMA, "odd_names_v2") == {
        "Carrier; drop table public.sentinel; --": "character varying",
        "it's name": "character varying", "Day Of": "date"}
    rows = table_rows(warehouse, f'"{ODD_SCHEMA}"."odd_names_v2"', order="1")
    assert len(rows) == 16 and {r["Day Of"] for r in rows} == {JAN2}
    assert summary.partitions == ["2013-01-02"]


def test_lineage_names_the_tables_as_postgres_datasets(data_folder, warehouse, planes_in_s3,
                                                       tmp_path, spec):
    summary = run("fleet_daily", JAN1, postgres_fleet(tmp_path))
    assert summary.state == "success"
    database = warehouse.rsplit("/", 1)[1]
    namespace = "postgres://127.0.0.1:5432"
    product = (namespace, f"{database}.dataproducts.fleet_daily_v1")
    staged = (namespace, f"{database}.dataproducts._stg_fleet_daily_v1")

    events = events_of(summary.run_id)
    for event in events:
        validate_event(event, spec)
    complete = by_task(events, "COMPLETE")
    assert names(complete["transform.run_sql"]["outputs"]) == [staged]
    assert names(complete["quality_gate.verify_contract"]["inputs"]) == [staged]
    assert names(complete["publish.swap_partitions"]["inputs"]) == [staged]
    output = complete["publish.swap_partitions"]["outputs"][0]
    assert (output["namespace"], output["name"]) == product
    assert [f["name"] for f in output["facets"]["schema"]["fields"]] == [
        "flight_date", "manufacturer", "flights", "aircraft", "seats"]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == summary.rows
    assert PASSWORD not in json.dumps(events)


FLEET_TOTALS = f"""
name: fleet_totals
version: 1.0.0
title: Departures per day, from fleet_daily's PostgreSQL table
owner: {{team: t, email: t@example.com}}
schedule: [fleet_daily]
start_date: 2013-01-01
inputs:
  - name: fleet
    type: sql
    conn_id: {CONN_ID}
    query: >
      select * from dataproducts.fleet_daily_v1
      where flight_date >= '{{{{ data_interval_start | ds }}}}'
        and flight_date < '{{{{ data_interval_end | ds }}}}'
transform:
  sql: select flight_date, sum(flights) as flights from fleet group by 1
output:
  partition_by: flight_date
  columns:
    - {{name: flight_date, data_type: date}}
    - {{name: flights, data_type: bigint}}
"""


def test_a_downstream_product_reads_the_table_with_a_sql_input(data_folder, warehouse,
                                                               planes_in_s3, tmp_path):
    folder = products_folder(tmp_path, [], {
        "fleet_daily.yaml": demo_yaml("fleet_daily") + ENGINE, "fleet_totals.yaml": FLEET_TOTALS})
    for day in (JAN1, JAN2, JAN3):
        assert run("fleet_daily", day, folder).state == "success"

    summary = run("fleet_totals", JAN2, folder)

    assert summary.state == "success", summary.tasks
    upstream = [r for r in table_rows(warehouse) if r["flight_date"] == JAN2]
    assert published(data_folder, "fleet_totals") == [
        {"flight_date": JAN2, "flights": sum(r["flights"] for r in upstream)}]


def test_validate_against_published_reads_the_publish_record_beside_the_table(
        data_folder, warehouse, planes_in_s3, tmp_path, capsys):
    """A postgres product writes no manifest: its publish commits a record of the contract in
    ``dataproducts._dataproducts_contracts``, which ``validate --against published`` reads."""
    from dag_factory.cli.main import main
    from dag_factory.contract.compat import contract_record
    from dag_factory.spec.loading import load_products

    folder = postgres_fleet(tmp_path / "products")
    assert run("fleet_daily", JAN1, folder).state == "success"
    with psycopg.connect(warehouse) as conn:
        rows = conn.execute('select product, major, record from "dataproducts"."_dataproducts_contracts"').fetchall()
    assert [(p, m) for p, m, _ in rows] == [("fleet_daily", 1)]
    record = rows[0][2]
    assert record["contract"] == contract_record(load_products(folder).products["fleet_daily"].spec)
    assert record["version"] == "1.0.0" and record["partition"] == {"key": "flight_date"}
    assert record["table"].endswith(".dataproducts.fleet_daily_v1")
    assert PASSWORD not in json.dumps(record)

    path = folder / "fleet_daily.yaml"
    path.write_text(path.read_text().replace("checks: [{invalid: {valid_min: 1}}]}\n    - name: seats",
                                             "checks: [{invalid: {valid_min: 2}}]}\n    - name: seats")
                    .replace("version: 1.0.0", "version: 1.0.1"))
    assert main(["validate", str(folder), "--against", "published"]) == 1
    out, err = capsys.readouterr()
    assert ("fleet_daily: breaking change without a major version bump (1.0.0 -> 1.0.1): invalid "
            "check on column aircraft: tightened") in err
    assert "note: fleet_daily: compared with the publish record of " in out
    assert ".dataproducts.fleet_daily_v1 (engine postgres, published 20" in out

    # a compatible change, published: the record follows the latest publish
    path.write_text(path.read_text().replace("{valid_min: 2}", "{valid_min: 0}")
                    .replace("version: 1.0.1", "version: 1.1.0"))
    assert main(["validate", str(folder), "--against", "published"]) == 0
    assert "compatible  invalid check on column aircraft: loosened" in capsys.readouterr().out
    assert run("fleet_daily", JAN2, folder).state == "success"
    with psycopg.connect(warehouse) as conn:
        (version,), = conn.execute("select record->>'version' from "
                                   '"dataproducts"."_dataproducts_contracts"').fetchall()
    assert version == "1.1.0"
