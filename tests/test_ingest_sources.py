"""Input ports against real local servers: HTTP (stdlib server on loopback), Postgres (the
local server), S3 (moto server) for an export port; each run through real Airflow."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import threading
import uuid

import duckdb
import pytest

from helpers import demo_yaml, products_folder, published, run

pytestmark = [pytest.mark.airflow_run, pytest.mark.usefixtures("airflow_db")]
JAN1 = dt.date(2013, 1, 1)


class _FlakyHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files; answers 503 to the first request of each path (to exercise retries)."""

    seen: set = set()

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path not in self.seen:
            self.seen.add(self.path)
            self.send_error(503, "warming up")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_landing(data_folder):
    """An HTTP server on 127.0.0.1 serving the landing zone; yields its base URL."""
    handler = functools.partial(_FlakyHandler, directory=str(data_folder / "landing"))
    _FlakyHandler.seen = set()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def weather_over_http(base_url: str) -> str:
    text = demo_yaml("weather_daily")
    old = "    type: file\n    path: landing/nycflights13/weather/{{ ds }}.csv\n"
    assert old in text
    return text.replace(old, f"    type: http\n    url: {base_url}/nycflights13/weather/{{{{ ds }}}}.csv\n"
                             "    timeout: 10\n    retries: 2\n")


def test_http_input_with_a_retry_publishes_like_the_file_input(data_folder, http_landing, tmp_path):
    assert run("weather_daily", JAN1).state == "success"
    from_file = published(data_folder, "weather_daily")

    folder = products_folder(tmp_path, [], {"weather_daily.yaml": weather_over_http(http_landing)})
    summary = run("weather_daily", JAN1, folder)

    assert summary.state == "success"
    assert published(data_folder, "weather_daily") == from_file
    assert "/nycflights13/weather/2013-01-01.csv" in _FlakyHandler.seen


def test_http_404_fails_the_ingest_task(data_folder, http_landing, tmp_path):
    folder = products_folder(tmp_path, [], {"weather_daily.yaml": weather_over_http(http_landing)})
    summary = run("weather_daily", dt.date(2013, 6, 1), folder)  # not seeded: 404
    assert summary.state == "failed"
    assert summary.tasks["ingest.observations"][0] == "failed"


@pytest.fixture
def postgres_flights(postgres_url, seeded_folder, monkeypatch):
    """A Postgres table of 2013-01-01 flights in a fresh schema; yields the schema name."""
    import psycopg2

    schema = f"dp_test_{uuid.uuid4().hex[:8]}"
    csv_file = seeded_folder / "landing/nycflights13/flights/2013-01-01.csv"
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute(f'create schema "{schema}"')
        cur.execute(f'create table "{schema}".flights (year int, month int, day int, carrier text, '
                    "dep_delay double precision, origin text)")
        rows = duckdb.connect().execute(
            "select year, month, day, carrier, dep_delay, origin from read_csv(?, nullstr = 'NA')",
            [str(csv_file)]).fetchall()
        cur.executemany(f'insert into "{schema}".flights values (%s, %s, %s, %s, %s, %s)', rows)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres_url)
    yield schema
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute(f'drop schema "{schema}" cascade')


SQL_PRODUCT = """
name: origin_delays_daily
version: 1.0.0
title: Departure delay per origin airport, from the warehouse
owner: {{team: ops-analytics, email: ops@example.com}}
schedule: "@daily"
start_date: 2013-01-01
inputs:
  - name: flights
    type: sql
    conn_id: warehouse
    query: >
      select make_date(year, month, day) as day, origin, dep_delay
      from "{schema}".flights
      where make_date(year, month, day) = date '{{{{ ds }}}}'
transform:
  sql: |
    select day, origin, count(*) as flights, round(avg(dep_delay), 2) as avg_dep_delay_min
    from flights group by all
output:
  partition_by: day
  columns:
    - {{name: day, data_type: date}}
    - {{name: origin, data_type: varchar, checks: [{{invalid: {{valid_values: [EWR, JFK, LGA]}}}}]}}
    - {{name: flights, data_type: bigint}}
    - {{name: avg_dep_delay_min, data_type: double}}
  checks:
    - row_count: {{threshold: {{must_be: 3}}}}
"""


def test_sql_input_reads_the_local_postgres(data_folder, postgres_flights, postgres_url, tmp_path):
    import psycopg2

    folder = products_folder(tmp_path, [], {
        "origin_delays_daily.yaml": SQL_PRODUCT.format(schema=postgres_flights)})
    summary = run("origin_delays_daily", JAN1, folder)

    assert summary.state == "success", summary.tasks
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute(f'select origin, count(*), round(avg(dep_delay)::numeric, 2) '
                    f'from "{postgres_flights}".flights group by origin order by origin')
        expected = [(o, n, float(d)) for o, n, d in cur.fetchall()]
    got = sorted((r["origin"], r["flights"], r["avg_dep_delay_min"])
                 for r in published(data_folder, "origin_delays_daily"))
    assert got == expected


def test_s3_export_port_receives_the_published_rows(data_folder, s3_endpoint, tmp_path):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id="aws_landing")
    if not hook.check_for_bucket("products"):
        hook.create_bucket(bucket_name="products")
    text = demo_yaml("flights_daily").replace("slo:\n", (
        "  exports:\n"
        "    - {type: s3, uri: \"s3://products/flights_daily/{{ ds }}.parquet\", conn_id: aws_landing}\n"
        "slo:\n"), 1)
    folder = products_folder(tmp_path, [], {"flights_daily.yaml": text})

    summary = run("flights_daily", JAN1, folder)

    assert summary.state == "success"
    assert summary.tasks["export.s3_0"][0] == "success"
    local = tmp_path / "export.parquet"
    hook.get_conn().download_file("products", "flights_daily/2013-01-01.parquet", str(local))
    exported = duckdb.connect().execute(f"select count(*), sum(flights) from read_parquet('{local}')").fetchone()
    rows = published(data_folder, "flights_daily")
    assert exported == (len(rows), sum(r["flights"] for r in rows))
