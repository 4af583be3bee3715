"""An ``s3://bucket/prefix`` data folder (moto's S3 server on 127.0.0.1): the demo products run
through real Airflow (``dag.test()``) and publish the same Parquet bytes as on a local data
folder; staging lives in S3; readers follow manifests; errors name what and where."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

import boto3
import duckdb
import pytest

from conftest import SEED_DAYS, _port_open
from helpers import run
from test_lineage import by_task, events_of, names, spec, validate_event  # noqa: F401 - spec is a fixture

pytestmark = [pytest.mark.airflow_run, pytest.mark.usefixtures("airflow_db")]

CONN_ID = "aws_data"
PRODUCTS = ["flights_daily", "weather_daily", "delays_weather_daily", "fleet_daily"]
DAYS = [dt.date(2013, 1, 1), dt.date(2013, 1, 2), dt.date(2013, 1, 3)]


def client(endpoint: str):
    """An independent boto3 client of the moto server (the tests' own view of the bucket)."""
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    pages = client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def get(endpoint: str, bucket: str, key: str) -> bytes:
    return client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()


def visible_partitions(endpoint: str, bucket: str, root: str) -> dict[str, tuple[dict, bytes]]:
    """What a reader following the manifests sees: partition dir -> (manifest, data bytes)."""
    out = {}
    for key in keys(endpoint, bucket, root + "/"):
        if key.endswith("/_manifest.json"):
            manifest = json.loads(get(endpoint, bucket, key))
            folder = key.rsplit("/", 1)[0]
            out[folder.rsplit("/", 1)[1]] = (manifest, get(endpoint, bucket, f"{folder}/{manifest['file']}"))
    return out


@pytest.fixture
def s3_folder(s3_endpoint, seeded_folder, monkeypatch):
    """A fresh ``s3://<bucket>/data`` data folder (connection ``aws_data`` from an
    ``AIRFLOW_CONN_AWS_DATA`` JSON with ``endpoint_url``), with the seeded landing zone."""
    return use_s3_folder(s3_endpoint, seeded_folder, monkeypatch)


def use_s3_folder(s3_endpoint, seeded_folder, monkeypatch):
    """Make a fresh bucket the data folder (see :func:`s3_folder`); returns its S3Path."""
    from dag_factory.datastore import S3Path
    from dag_factory.demo.s3server import connection_json
    from dag_factory.demo.seed import upload_tree

    bucket = f"dp-{uuid.uuid4().hex[:12]}"
    client(s3_endpoint).create_bucket(Bucket=bucket)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(s3_endpoint))
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_CONN_ID", CONN_ID)
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_FOLDER", f"s3://{bucket}/data")
    upload_tree(seeded_folder / "landing", S3Path(bucket, "data/landing"))
    return S3Path(bucket, "data")


def test_config_parses_s3_data_folders(monkeypatch):
    from dag_factory.config import data_conn_id, data_folder
    from dag_factory.datastore import S3Path, under

    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_FOLDER", "s3://bucket/some/prefix/")
    monkeypatch.delenv("AIRFLOW__DATAPRODUCTS__DATA_CONN_ID", raising=False)
    assert data_folder() == S3Path("bucket", "some/prefix")
    assert data_conn_id() == "aws_default"
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_CONN_ID", "aws_lake")
    assert data_conn_id() == "aws_lake"
    assert str(under(data_folder(), "landing/x/../y.csv")) == "s3://bucket/some/prefix/landing/y.csv"
    for escape in ("../other/y.csv", "landing/../../y.csv", "/etc/passwd"):
        with pytest.raises(ValueError, match="resolves outside the data folder s3://bucket/some/prefix"):
            under(data_folder(), escape, "input path")
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_FOLDER", "s3:///prefix")
    with pytest.raises(ValueError, match=r"\[dataproducts\] data_folder: .*bucket name"):
        data_folder()


def test_demo_seed_lands_the_same_files_in_an_s3_data_folder(s3_endpoint, seeded_folder, monkeypatch):
    from dag_factory.datastore import S3Path
    from dag_factory.demo.s3server import connection_json
    from dag_factory.demo.seed import seed_landing

    bucket = f"dp-{uuid.uuid4().hex[:12]}"
    client(s3_endpoint).create_bucket(Bucket=bucket)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(s3_endpoint))
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_CONN_ID", CONN_ID)
    result = seed_landing(S3Path(bucket, "lake"), *SEED_DAYS, log=lambda _: None)

    local = sorted(p for p in (seeded_folder / "landing").rglob("*") if p.is_file())
    assert result["folder"] == f"s3://{bucket}/lake/landing/nycflights13"
    assert keys(s3_endpoint, bucket, "lake/") == sorted(
        f"lake/landing/{p.relative_to(seeded_folder / 'landing').as_posix()}" for p in local)
    for path in local:
        key = f"lake/landing/{path.relative_to(seeded_folder / 'landing').as_posix()}"
        assert get(s3_endpoint, bucket, key) == path.read_bytes(), key


def _run_all(day: dt.date, timings: list, storage: str) -> None:
    for name in PRODUCTS:
        started = time.monotonic()
        summary = run(name, day)
        timings.append((storage, name, day, time.monotonic() - started))
        assert summary.state == "success", (storage, name, day, summary.tasks)
        assert summary.partitions == [day.isoformat()], (storage, name)


def _rows(parquet: bytes) -> list[dict]:
    """The rows of a Parquet file's bytes, in file order, as dicts."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.parquet"
        path.write_bytes(parquet)
        rel = duckdb.connect().sql("select * from read_parquet(?)", params=[str(path)])
        return [dict(zip(rel.columns, row)) for row in rel.fetchall()]


def test_demo_products_publish_the_same_bytes_on_s3_as_locally(data_folder, s3_endpoint,
                                                               seeded_folder, monkeypatch):
    """Every demo product for three days, on a local and on an S3 data folder.

    Every published file is byte-identical: publish writes each partition sorted by every
    column, so the order DuckDB's parallel ``GROUP BY`` happens to produce does not reach the
    bytes (``test_publish_writes_the_same_bytes_locally_and_on_s3`` also publishes one staged
    output both ways).
    """
    from dag_factory.demo.s3server import DEMO_CONN_ID
    from dag_factory.demo.seed import seed_s3

    seed_s3("s3://landing/nycflights13/planes.csv", DEMO_CONN_ID, log=lambda _: None)
    timings: list = []
    for day in DAYS:
        _run_all(day, timings, "local")
    s3 = use_s3_folder(s3_endpoint, seeded_folder, monkeypatch)
    for day in DAYS:
        _run_all(day, timings, "s3")

    bucket = s3.bucket
    for name in PRODUCTS:
        root = f"data/products/{name}/v1"
        remote = visible_partitions(s3_endpoint, bucket, root)
        local_root = data_folder / "products" / name / "v1"
        assert sorted(remote) == sorted(p.name for p in local_root.iterdir()), name
        for part, (manifest, data) in remote.items():
            local_manifest = json.loads((local_root / part / "_manifest.json").read_text())
            local_data = (local_root / part / "part-0.parquet").read_bytes()
            assert data == local_data, f"{name}/{part}: the S3 object differs from the local file"
            assert manifest["bytes"] == local_manifest["bytes"]
            assert manifest["file"].startswith("part-") and manifest["file"] != "part-0.parquet"
            for field in ("rows", "schema", "partition", "quality", "data_interval"):
                assert manifest[field] == local_manifest[field], (name, part, field)
            assert manifest["replaced_files"] == []
        # exactly one manifest and the one data file it names per partition: no orphans
        assert len(keys(s3_endpoint, bucket, root + "/")) == 2 * len(remote)
    assert keys(s3_endpoint, bucket, "data/_staging/") == [], "staging is cleaned on success"
    assert len(keys(s3_endpoint, bucket, "data/_quality/")) == len(PRODUCTS) * len(DAYS)
    assert not (data_folder / "_staging").exists() or not any(
        (data_folder / "_staging").rglob("*.parquet"))
    for storage in ("local", "s3"):
        runs = [t for t in timings if t[0] == storage]
        print(f"\nTIMING {storage}: {len(runs)} dag.test() runs (one partition each), median "
              f"{statistics.median(t[3] for t in runs):.2f} s, mean "
              f"{statistics.mean(t[3] for t in runs):.2f} s; " +
              ", ".join(f"{n} {d:%m-%d} {s:.2f}s" for _, n, d, s in runs))


def test_rerun_on_s3_replaces_the_data_file_and_readers_ignore_strays(s3_folder, s3_endpoint):
    bucket, day = s3_folder.bucket, DAYS[0]
    for name in ("flights_daily", "weather_daily"):
        assert run(name, day).state == "success"
    root = "data/products/flights_daily/v1"
    (first, data), = visible_partitions(s3_endpoint, bucket, root).values()

    # a stray data file no manifest names, e.g. an upload whose publish was killed
    client(s3_endpoint).put_object(Bucket=bucket, Key=f"{root}/flight_date={day}/part-x.parquet",
                                   Body=data)
    downstream = run("delays_weather_daily", day)
    assert downstream.state == "success"
    (_, joined), = visible_partitions(s3_endpoint, bucket, "data/products/delays_weather_daily/v1").values()
    flights = sum(row["flights"] for row in _rows(data))
    assert _rows(joined)[0]["flights"] == flights, "the stray data file is not read"

    from dag_factory.contract.baseline import published_baseline

    baseline = published_baseline(s3_folder)  # `validate --against published` on S3
    assert sorted(baseline.contracts) == ["delays_weather_daily", "flights_daily", "weather_daily"]
    assert baseline.sources["flights_daily"] == f"s3://{bucket}/{root}/flight_date={day}/_manifest.json"

    second = run("flights_daily", day)
    assert second.state == "success"
    (manifest, again), = visible_partitions(s3_endpoint, bucket, root).values()
    assert manifest["run_id"] == second.run_id and again == data
    assert manifest["replaced_files"] == [first["file"]]
    assert keys(s3_endpoint, bucket, root + "/") == sorted(
        [f"{root}/flight_date={day}/_manifest.json", f"{root}/flight_date={day}/{manifest['file']}",
         f"{root}/flight_date={day}/part-x.parquet"]), \
        "the replaced file is deleted; a foreign file younger than the grace period is kept"


def test_lineage_of_an_s3_data_folder_uses_s3_namespaces(s3_folder, spec):
    from dag_factory.lineage import datasets as ds

    bucket = s3_folder.bucket
    summary = run("weather_daily", DAYS[0])
    assert summary.state == "success"
    events = events_of(summary.run_id)
    for event in events:
        validate_event(event, spec)
    complete = by_task(events, "COMPLETE")
    s3ns = f"s3://{bucket}"
    assert names(complete["ingest.observations"]["inputs"]) == [
        (s3ns, f"data/landing/nycflights13/weather/{DAYS[0]}.csv")]
    assert names(complete["ingest.observations"]["outputs"]) == [
        (s3ns, "data/_staging/weather_daily/inputs/observations")]
    assert names(complete["publish.swap_partitions"]["outputs"]) == [
        (s3ns, "data/products/weather_daily/v1")]
    product = ds.product_naming("flights_daily", 1)
    assert (product.get_namespace(), product.get_name()) == (f"s3://{bucket}", "data/products/flights_daily/v1")
    staged = ds.staged_input_naming("flights_daily", "flights")
    assert (staged.get_namespace(), staged.get_name()) == (f"s3://{bucket}", "data/_staging/flights_daily/inputs/flights")
    landed = ds.source_namings({"type": "file", "path": "landing/nycflights13/airlines.csv"})[0]
    assert (landed.get_namespace(), landed.get_name()) == (f"s3://{bucket}", "data/landing/nycflights13/airlines.csv")
    upstream = ds.source_namings({"type": "product", "product_name": "flights_daily", "major": 1})[0]
    assert upstream.get_name() == product.get_name()


def test_missing_input_object_names_the_s3_uri(s3_folder):
    from dag_factory.ingest.errors import InputMissing
    from dag_factory.ingest.file import exists, fetch

    source = {"product": "flights_daily", "name": "flights", "type": "file", "format": "csv",
              "path": "landing/nycflights13/flights/2013-03-01.csv"}
    assert exists(source, {}) is False
    with pytest.raises(InputMissing) as caught:
        fetch(source, s3_folder / "unused", {})
    message = str(caught.value)
    assert "'flights_daily'" in message and "'flights'" in message
    assert f"s3://{s3_folder.bucket}/data/landing/nycflights13/flights/2013-03-01.csv" in message

    summary = run("flights_daily", dt.date(2013, 3, 1))
    assert summary.state == "failed" and summary.tasks["ingest.flights"][0] == "failed"
    assert keys_of(s3_folder, "products/") == []


def keys_of(folder, below: str) -> list[str]:
    from dag_factory.datastore import store_for

    return [f.relative for f in store_for(folder).list_files(folder / below)]


def test_missing_bucket_is_named_with_the_connection(s3_folder, monkeypatch):
    from dag_factory import datastore
    from dag_factory.datastore import S3Path, StorageError
    from dag_factory.datastore.workspace import Workspace

    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_FOLDER", "s3://no-such-bucket-dp/data")
    missing = S3Path("no-such-bucket-dp", "data/landing/a.csv")
    expected = r"bucket 'no-such-bucket-dp' does not exist \(connection 'aws_data'\)"
    with pytest.raises(StorageError, match=expected):
        datastore.exists(missing)
    with pytest.raises(StorageError, match=expected):
        datastore.read_text(missing)
    with pytest.raises(StorageError, match=expected), Workspace() as ws:
        ws.read(missing)
    with pytest.raises(StorageError, match=expected):
        datastore.write_text(missing, "x")
    with pytest.raises(StorageError, match=expected), Workspace() as ws:
        ws.write(missing).write_text("x")  # uploaded at the end of the block
    summary = run("weather_daily", DAYS[0])
    assert summary.state == "failed" and summary.tasks["ingest.observations"][0] == "failed"


@pytest.fixture
def strict_s3():
    """A second moto server that checks credentials (INITIAL_NO_AUTH_ACTION_COUNT=0): any
    key pair it has not issued is refused, as AWS does."""
    from dag_factory.demo.s3server import free_port

    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not _port_open("127.0.0.1", port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("moto server with authentication did not start")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def test_bad_credentials_are_reported_without_the_secret(strict_s3, monkeypatch):
    from dag_factory import datastore
    from dag_factory.datastore import S3Path, StorageError

    secret, key_id = "sup3r-s3cret-value", "AKIADATAPRODUCTSTEST"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_STRICT", json.dumps({
        "conn_type": "aws", "login": key_id, "password": secret,
        "extra": {"endpoint_url": strict_s3, "region_name": "us-east-1"}}))
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_CONN_ID", "aws_strict")
    location = S3Path("lake", "data/_quality/p/r.json")
    for action in (datastore.exists, datastore.read_text,
                   lambda loc: datastore.write_text(loc, "{}")):
        with pytest.raises(StorageError) as caught:
            action(location)
        message = str(caught.value)
        assert "access denied" in message and "connection 'aws_strict'" in message
        assert "s3://lake/data/_quality/p/r.json" in message
        assert secret not in message and key_id not in message and strict_s3 not in message


def test_exports_read_the_published_partitions_of_an_s3_data_folder(s3_folder, s3_endpoint, tmp_path):
    from helpers import demo_yaml, products_folder

    client(s3_endpoint).create_bucket(Bucket=f"{s3_folder.bucket}-out")
    text = demo_yaml("flights_daily").replace("slo:\n", (
        "  exports:\n"
        "    - {type: file, path: \"exports/flights_daily/{{ ds }}.csv\", format: csv}\n"
        f"    - {{type: s3, uri: \"s3://{s3_folder.bucket}-out/flights/{{{{ ds }}}}.parquet\", "
        "conn_id: aws_landing}\n"
        "slo:\n"), 1)
    folder = products_folder(tmp_path, [], {"flights_daily.yaml": text})

    summary = run("flights_daily", DAYS[0], folder)

    assert summary.state == "success", summary.tasks
    assert summary.tasks["export.file_0"][0] == summary.tasks["export.s3_1"][0] == "success"
    (_, data), = visible_partitions(s3_endpoint, s3_folder.bucket, "data/products/flights_daily/v1").values()
    published = _rows(data)
    csv_text = get(s3_endpoint, s3_folder.bucket, f"data/exports/flights_daily/{DAYS[0]}.csv").decode()
    assert len(csv_text.strip().splitlines()) == 1 + len(published)
    exported = _rows(get(s3_endpoint, f"{s3_folder.bucket}-out", f"flights/{DAYS[0]}.parquet"))
    assert sorted(map(repr, exported)) == sorted(map(repr, published))


def test_retire_removes_an_old_major_from_an_s3_data_folder(s3_folder, s3_endpoint, tmp_path,
                                                           monkeypatch):
    """``retire`` on S3: manifests go before data files, the other major is untouched, and a
    retire interrupted after the manifests can be finished by running it again."""
    from dag_factory.contract.retire import RetireRefused, plan_retirement, retire
    from dag_factory.datastore.s3 import S3Store
    from dag_factory.interval import DataInterval
    from dag_factory.publish.partitions import PublishRequest, publish_partitions
    from dag_factory.storage import RunPaths, product_root

    staged = RunPaths(tmp_path / "staging")
    staged.root.mkdir()
    duckdb.sql(f"copy (select date '2013-01-01' + (i % 3)::int as day, i as n from range(30) t(i)) "
               f"to '{staged.output_file}' (format parquet)")
    interval = DataInterval(dt.datetime(2013, 1, 1, tzinfo=dt.timezone.utc),
                            dt.datetime(2013, 1, 4, tzinfo=dt.timezone.utc))
    for major in (1, 2):
        publish_partitions(PublishRequest(
            product="p", version=f"{major}.0.0", root=product_root("p", major, s3_folder),
            partition_by="day", paths=staged, interval=interval, run_id=f"run-{major}",
            quality={"outcome": "pass", "counts": {}}))
    bucket = s3_folder.bucket
    v2_before = {k: get(s3_endpoint, bucket, k) for k in keys(s3_endpoint, bucket, "data/products/p/v2/")}
    v1_keys = keys(s3_endpoint, bucket, "data/products/p/v1/")
    assert len(v1_keys) == 6 and len(v2_before) == 6

    plan = plan_retirement("p", 1, {}, s3_folder)
    assert (plan.root, plan.partitions) == (product_root("p", 1, s3_folder), 3)
    assert plan.bytes == sum(len(get(s3_endpoint, bucket, k)) for k in v1_keys)

    deleted: list[list[str]] = []
    original = S3Store.delete

    def recording_delete(self, locations):
        deleted.append([loc.key for loc in locations])
        if len(deleted) == 2:
            raise OSError("connection lost")  # the retire dies after the manifests went
        return original(self, locations)

    monkeypatch.setattr(S3Store, "delete", recording_delete)
    with pytest.raises(OSError):
        retire(plan)
    assert deleted[0] and all(k.endswith("/_manifest.json") for k in deleted[0])
    assert visible_partitions(s3_endpoint, bucket, "data/products/p/v1") == {}
    monkeypatch.setattr(S3Store, "delete", original)

    again = plan_retirement("p", 1, {}, s3_folder)  # data files left, no manifest
    assert again.partitions == 0 and again.bytes > 0
    retire(again)
    assert keys(s3_endpoint, bucket, "data/products/p/v1/") == []
    assert {k: get(s3_endpoint, bucket, k) for k in keys(s3_endpoint, bucket, "data/products/p/v2/")} \
        == v2_before
    with pytest.raises(RetireRefused, match="nothing published at s3://"):
        plan_retirement("p", 1, {}, s3_folder)
