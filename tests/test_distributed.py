"""Airflow's distributed setup: CeleryExecutor with two Celery workers on the local Postgres
(metadata DB and result backend) and Redis (broker), the data folder on S3 (moto's server), the
scheduler catching up the demo products for several days, the downstream product triggered by
their assets, and fleet_daily on the Postgres engine. The published data must equal what the
embedded default (``dag.test()`` in one process, local data folder, DuckDB) publishes for the
same days: the same Parquet bytes on S3, the same rows in the warehouse table."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
import warnings

import boto3
import psycopg
import pytest

from airflow_services import Celery, drop_database, flush_redis_db, free_redis_db, start_airflow
from dag_factory.demo.s3server import DEMO_CONN_ID, connection_json, free_port
from helpers import demo_yaml, products_folder, published, run

pytestmark = [pytest.mark.scheduler, pytest.mark.distributed]

UPSTREAM = ("flights_daily", "weather_daily")
DOWNSTREAM = "delays_weather_daily"
ON_S3 = (*UPSTREAM, DOWNSTREAM)
ON_POSTGRES = "fleet_daily"
FIRST, DAYS = dt.date(2013, 1, 1), 3
DAY_LIST = [FIRST + dt.timedelta(days=i) for i in range(DAYS)]
DATA_CONN, WAREHOUSE_CONN = "aws_data", "warehouse"
ENGINE = f"engine: {{type: postgres, conn_id: {WAREHOUSE_CONN}, schema: dataproducts}}\n"
# A task message the broker never delivers stays queued until [scheduler] task_queued_timeout
# (600 s by default) re-queues it; the test shortens that so such a loss costs 2 minutes, and
# reports every re-queue (test_every_run_succeeds_on_the_celery_workers).
QUEUED_TIMEOUT = {"AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
                  "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "20"}


def catchup_spec(name: str) -> str:
    """The demo product limited to the test's days, with catchup so the scheduler runs each."""
    last = DAY_LIST[-1].isoformat()
    text = re.sub(r"^end_date: .*\n", "", demo_yaml(name), flags=re.M)
    return text.replace("start_date: 2013-01-01\n",
                        f"start_date: 2013-01-01\nend_date: {last}\ncatchup: true\n")


def s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


@pytest.fixture(scope="module")
def redis_broker(redis_server):
    """An empty database of the local Redis as the Celery broker, emptied afterwards."""
    url = free_redis_db()
    yield url
    flush_redis_db(url)


@pytest.fixture(scope="module")
def s3_data_folder(s3_endpoint, seeded_folder):
    """A fresh bucket on the moto server as the data folder, with the seeded landing zone, and
    fleet_daily's S3 input (``aws_landing``)."""
    from dag_factory.datastore import S3Path
    from dag_factory.demo.seed import seed_s3, upload_tree

    bucket = f"dp-dist-{uuid.uuid4().hex[:10]}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    with pytest.MonkeyPatch.context() as patch:  # the seeding's own S3 connection
        patch.setenv(f"AIRFLOW_CONN_{DATA_CONN.upper()}", connection_json(s3_endpoint))
        patch.setenv("AIRFLOW__DATAPRODUCTS__DATA_CONN_ID", DATA_CONN)
        upload_tree(seeded_folder / "landing", S3Path(bucket, "data/landing"))
    seed_s3("s3://landing/nycflights13/planes.csv", DEMO_CONN_ID, log=lambda _: None)
    return bucket


@pytest.fixture(scope="module")
def warehouse(postgres_url):
    """A fresh database on the local PostgreSQL for the Postgres-engine product; dropped after."""
    name = f"dp_dist_wh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, s3_endpoint, s3_data_folder, warehouse, postgres_url,
               redis_broker):
    """Airflow with CeleryExecutor and two workers of one task slot each, so two tasks running
    at once must run on different workers; data folder ``s3://<bucket>/data``."""
    tmp = tmp_path_factory.mktemp("distributed")
    specs = {f"{n}.yaml": catchup_spec(n) for n in ON_S3}
    specs[f"{ON_POSTGRES}.yaml"] = catchup_spec(ON_POSTGRES) + ENGINE
    folder = products_folder(tmp, [], specs)
    connections = {
        f"AIRFLOW_CONN_{DATA_CONN.upper()}": connection_json(s3_endpoint),
        f"AIRFLOW_CONN_{DEMO_CONN_ID.upper()}": connection_json(s3_endpoint),
        f"AIRFLOW_CONN_{WAREHOUSE_CONN.upper()}": warehouse,
        "AIRFLOW__DATAPRODUCTS__DATA_CONN_ID": DATA_CONN,
    }
    services = start_airflow(tmp / "home", folder, f"s3://{s3_data_folder}/data", postgres_url,
                             free_port(),
                             celery=Celery(broker_url=redis_broker, workers=2, concurrency=1),
                             extra_env={**connections, **QUEUED_TIMEOUT})
    yield services
    services.stop()
    drop_database(postgres_url, services.db_url)


def published_days(endpoint: str, bucket: str, product: str) -> set[str]:
    """Partition values of ``product`` whose manifest is published (what readers see)."""
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"data/products/{product}/v1/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {k.split("/")[-2].split("=", 1)[1] for k in keys if k.endswith("/_manifest.json")}


@pytest.fixture(scope="module")
def finished(deployment, s3_endpoint, s3_data_folder):
    """Wait until the downstream product published every day and no run is left."""
    days = {d.isoformat() for d in DAY_LIST}

    def done():
        return published_days(s3_endpoint, s3_data_folder, DOWNSTREAM) >= days and not \
            deployment.query("select 1 from dag_run where state in ('queued', 'running')") and \
            len(deployment.query("select 1 from dag_run where dag_id = :d", d=ON_POSTGRES)) >= DAYS

    deployment.wait_for(done, 900, "the products did not publish every day", period=3)
    return deployment


def test_every_run_succeeds_on_the_celery_workers(finished):
    runs = finished.query("select dag_id, run_type, state from dag_run order by id")
    assert all(state == "success" for _, _, state in runs), runs
    scheduled = sorted(d for d, kind, _ in runs if d != DOWNSTREAM)
    assert scheduled == sorted((*UPSTREAM, ON_POSTGRES) * DAYS)
    assert {kind for d, kind, _ in runs if d == DOWNSTREAM} == {"asset_triggered"}

    by_host = dict(finished.query("select hostname, count(*) from task_instance "
                                  "where state = 'success' group by hostname"))
    assert set(by_host) == {"worker1", "worker2"}, f"tasks ran on {by_host}, not on both workers"
    executors = {e for (e,) in finished.query("select distinct executor from task_instance")}
    assert executors <= {None, "CeleryExecutor"}
    for name in ("worker1", "worker2"):
        log = (finished.logs / f"{name}.log").read_text(errors="replace")
        assert f"{name}@" in log and "ready" in log, f"{name} log:\n{log[-2000:]}"
    requeued = finished.query("select dag_id, task_id, run_id from log "
                              "where event = 'stuck in queued reschedule'")
    if requeued:  # Airflow's own remedy worked; say so rather than hide it
        warnings.warn(f"task messages the broker never delivered, re-queued by the scheduler: "
                      f"{requeued}")


def warehouse_rows(url: str) -> list[dict]:
    with psycopg.connect(url) as conn:
        cursor = conn.execute('select * from "dataproducts"."fleet_daily_v1" '
                              "order by flight_date, manufacturer")
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


@pytest.mark.usefixtures("airflow_db")
def test_published_data_equals_the_embedded_default(finished, data_folder, s3_endpoint,
                                                    s3_data_folder, warehouse):
    for product in (*ON_S3, ON_POSTGRES):
        for day in DAY_LIST:
            summary = run(product, day)
            assert summary.state == "success", (product, day, summary)

    s3 = s3_client(s3_endpoint)
    for product in ON_S3:
        for day in DAY_LIST:
            local = next((data_folder / "products" / product / "v1").glob(f"*={day.isoformat()}"))
            prefix = f"data/products/{product}/v1/{local.name}"
            manifest = s3.get_object(Bucket=s3_data_folder, Key=f"{prefix}/_manifest.json")
            data_key = f"{prefix}/{json.loads(manifest['Body'].read())['file']}"
            ours = s3.get_object(Bucket=s3_data_folder, Key=data_key)["Body"].read()
            assert ours == (local / "part-0.parquet").read_bytes(), (product, day)

    expected = published(data_folder, ON_POSTGRES)
    assert expected and warehouse_rows(warehouse) == expected
