"""S3 publish killed (SIGKILL, a real separate process) between each of its steps: a reader
following the manifests sees every partition old or fully new, and the retry (same run id)
publishes correctly and leaves no orphan object."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import boto3
import duckdb
import pytest

from dag_factory.interval import DataInterval

CONN_ID = "aws_data"
OLD_DAYS = ["2013-01-01", "2013-01-02", "2013-01-03", "2013-01-04"]
NEW_DAYS = OLD_DAYS[:3]  # the re-run no longer has 2013-01-04: a stale partition to remove
ROWS_PER_DAY = 20_000
QUALITY = {"outcome": "pass", "counts": {"passed": 1, "warned": 0, "failed": 0, "not_evaluated": 0}}
INTERVAL = DataInterval(dt.datetime(2013, 1, 1, tzinfo=dt.timezone.utc),
                        dt.datetime(2013, 1, 5, tzinfo=dt.timezone.utc))

# The child publishes with the real S3Store, wrapped to SIGKILL itself at one step.
CHILD = textwrap.dedent("""
    import datetime as dt, json, os, signal, sys
    from dag_factory.datastore import S3Path
    from dag_factory.datastore.s3 import S3Store
    from dag_factory.interval import DataInterval
    from dag_factory.publish.partitions import PublishRequest, publish_partitions
    from dag_factory.storage import MANIFEST, RunPaths

    args = json.loads(sys.argv[1])
    step, manifests = args["step"], []
    upload, write_bytes, delete = S3Store.upload, S3Store.write_bytes, S3Store.delete

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def killing_upload(self, local, location):
        upload(self, local, location)
        if step == "after_data_upload" and location.name.startswith("part-"):
            die()

    def killing_write(self, location, data):
        write_bytes(self, location, data)
        if location.name == MANIFEST:
            manifests.append(location)
            if step == "after_manifest_put" and len(manifests) == 2:
                die()

    def killing_delete(self, locations):
        data = [l for l in locations if l.name != MANIFEST]
        if step == "before_old_delete" and any("day=2013-01-03/" in l.key for l in data):
            die()
        if step == "during_stale_removal" and any("day=2013-01-04/" in l.key for l in data):
            die()
        delete(self, locations)

    S3Store.upload, S3Store.write_bytes, S3Store.delete = killing_upload, killing_write, killing_delete
    request = PublishRequest(
        product="crash", version="1.0.0", root=S3Path.parse(args["root"]), partition_by="day",
        paths=RunPaths(S3Path.parse(args["staging"])), quality=args["quality"],
        interval=DataInterval(dt.datetime.fromisoformat(args["start"]),
                              dt.datetime.fromisoformat(args["end"])),
        run_id=args["run_id"])
    publish_partitions(request)
    print("done", flush=True)
""")

# partition -> generation a reader sees after the kill (None: no partition)
AFTER_KILL = {
    "after_data_upload": {"2013-01-01": "old", "2013-01-02": "old", "2013-01-03": "old", "2013-01-04": "old"},
    "after_manifest_put": {"2013-01-01": "new", "2013-01-02": "new", "2013-01-03": "old", "2013-01-04": "old"},
    "before_old_delete": {"2013-01-01": "new", "2013-01-02": "new", "2013-01-03": "new", "2013-01-04": "old"},
    "during_stale_removal": {"2013-01-01": "new", "2013-01-02": "new", "2013-01-03": "new", "2013-01-04": None},
}


@pytest.fixture
def bucket(s3_endpoint, monkeypatch) -> str:
    from dag_factory.demo.s3server import connection_json

    name = f"crash-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(s3_endpoint))
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_CONN_ID", CONN_ID)
    s3(s3_endpoint).create_bucket(Bucket=name)
    return name


def s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def stage(bucket: str, generation: str, days: list[str]):
    """Stage an output of ROWS_PER_DAY rows per day in S3, every row tagged ``generation``."""
    from dag_factory.datastore import S3Path, store_for
    from dag_factory.storage import RunPaths

    paths = RunPaths(S3Path(bucket, f"data/_staging/crash/{generation}-{uuid.uuid4().hex[:8]}"))
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "output.parquet"
        duckdb.connect().execute(f"""
            copy (select cast(d as date) as day, i as n, '{generation}' as generation,
                         md5(i::varchar) as payload
                  from unnest(?::date[]) t(d), range({ROWS_PER_DAY}) r(i))
            to '{local}' (format parquet)""", [days])
        store_for(paths.output_file).upload(local, paths.output_file)
    return paths


def request(bucket: str, paths, run_id: str):
    from dag_factory.datastore import S3Path
    from dag_factory.publish.partitions import PublishRequest

    return PublishRequest(product="crash", version="1.0.0",
                          root=S3Path(bucket, "data/products/crash/v1"), partition_by="day",
                          paths=paths, quality=QUALITY, interval=INTERVAL, run_id=run_id)


def seen_by_reader(endpoint: str, bucket: str) -> dict[str, str]:
    """Follow every manifest (independently of the code under test); check that the data file
    it names is whole and of one generation. Returns partition value -> generation."""
    client, seen = s3(endpoint), {}
    listing = client.list_objects_v2(Bucket=bucket, Prefix="data/products/crash/v1/")
    for obj in listing.get("Contents", []):
        if not obj["Key"].endswith("/_manifest.json"):
            continue
        manifest = json.loads(client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        folder = obj["Key"].rsplit("/", 1)[0]
        data = client.get_object(Bucket=bucket, Key=f"{folder}/{manifest['file']}")["Body"].read()
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "p.parquet").write_bytes(data)
            rows, generations, generation = duckdb.connect().execute(
                "select count(*), count(distinct generation), min(generation) from read_parquet(?)",
                [str(Path(tmp) / "p.parquet")]).fetchone()
        assert rows == manifest["rows"] == ROWS_PER_DAY, folder
        assert generations == 1, f"{folder} mixes generations"
        assert len(data) == manifest["bytes"]
        seen[manifest["partition"]["value"]] = generation
    return seen


def objects(endpoint: str, bucket: str) -> list[str]:
    listing = s3(endpoint).list_objects_v2(Bucket=bucket, Prefix="data/products/crash/v1/")
    return sorted(o["Key"] for o in listing.get("Contents", []))


@pytest.mark.parametrize("step", list(AFTER_KILL))
def test_s3_publish_killed_between_steps_leaves_whole_partitions(bucket, s3_endpoint, step):
    from dag_factory.publish.partitions import publish_partitions

    publish_partitions(request(bucket, stage(bucket, "old", OLD_DAYS), "old-run"))
    assert seen_by_reader(s3_endpoint, bucket) == dict.fromkeys(OLD_DAYS, "old")

    staging = stage(bucket, "new", NEW_DAYS)
    args = json.dumps({"root": f"s3://{bucket}/data/products/crash/v1", "step": step,
                       "staging": str(staging.root), "quality": QUALITY, "run_id": "new-run",
                       "start": INTERVAL.start.isoformat(), "end": INTERVAL.end.isoformat()})
    child = subprocess.run([sys.executable, "-c", CHILD, args], capture_output=True, text=True,
                           env=os.environ.copy(), timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]

    expected = {day: gen for day, gen in AFTER_KILL[step].items() if gen is not None}
    assert seen_by_reader(s3_endpoint, bucket) == expected
    if step != "after_data_upload":
        assert len(objects(s3_endpoint, bucket)) > 2 * len(expected), "the kill left an orphan"

    result = publish_partitions(request(bucket, staging, "new-run"))  # the task's retry
    assert seen_by_reader(s3_endpoint, bucket) == dict.fromkeys(NEW_DAYS, "new")
    assert result.partitions == NEW_DAYS
    assert result.removed == ["2013-01-04"]  # also after the kill left only its data object
    # no orphans: each partition holds its manifest and the one data file it names
    names = {m["partition"]["value"]: m["file"] for m in result.manifests}
    assert objects(s3_endpoint, bucket) == sorted(
        f"data/products/crash/v1/day={day}/{name}"
        for day in NEW_DAYS for name in ("_manifest.json", names[day]))


def test_s3_partitions_outside_the_interval_are_never_touched(bucket, s3_endpoint):
    from dag_factory.publish.partitions import publish_partitions

    client = s3(s3_endpoint)
    for day in ("2012-12-31", "2013-01-05"):
        client.put_object(Bucket=bucket, Key=f"data/products/crash/v1/day={day}/_manifest.json",
                          Body=b"untouched")
    publish_partitions(request(bucket, stage(bucket, "new", NEW_DAYS), "r"))
    for day in ("2012-12-31", "2013-01-05"):
        key = f"data/products/crash/v1/day={day}/_manifest.json"
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"untouched"


def test_publish_writes_the_same_bytes_locally_and_on_s3(bucket, s3_endpoint, tmp_path):
    """The storage path is byte-transparent: one staged output, published to a local and to
    an S3 data folder, gives identical data files."""
    from dag_factory.publish.partitions import PublishRequest, publish_partitions
    from dag_factory.storage import RunPaths

    staging = stage(bucket, "same", OLD_DAYS)
    remote = publish_partitions(request(bucket, staging, "run"))
    local_paths = RunPaths(tmp_path / "staging")
    local_paths.root.mkdir()
    s3(s3_endpoint).download_file(bucket, staging.output_file.key, str(local_paths.output_file))
    local = publish_partitions(PublishRequest(
        product="crash", version="1.0.0", root=tmp_path / "products/crash/v1", partition_by="day",
        paths=local_paths, quality=QUALITY, interval=INTERVAL, run_id="run"))

    assert [m["bytes"] for m in remote.manifests] == [m["bytes"] for m in local.manifests]
    for manifest in remote.manifests:
        day = manifest["partition"]["value"]
        key = f"data/products/crash/v1/day={day}/{manifest['file']}"
        data = s3(s3_endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
        assert data == (tmp_path / f"products/crash/v1/day={day}/part-0.parquet").read_bytes()


def test_superseded_data_files():
    """Which objects of a partition a new manifest replaces (no S3 needed: listing as data)."""
    from dag_factory.datastore import S3Path
    from dag_factory.datastore.stored import StoredFile
    from dag_factory.publish.object_swap import superseded

    now = dt.datetime(2013, 1, 10, tzinfo=dt.timezone.utc)
    final = S3Path("b", "data/products/p/v1/day=2013-01-01")
    token = "0123456789abcdef" * 2

    def stored(name: str, age_hours: float) -> StoredFile:
        return StoredFile(final / name, name, 1, now - dt.timedelta(hours=age_hours))

    existing = [
        stored("_manifest.json", 1),
        stored(f"part-old-run-{token}.parquet", 1),        # the previous manifest's file
        stored(f"part-older-run-{token}.parquet", 1),      # its replaced_files, not yet deleted
        stored(f"part-this-run-{token}.parquet", 0.1),     # our killed attempt
        stored(f"part-abandoned-{token}.parquet", 25),     # unreferenced for over a day
        stored(f"part-concurrent-{token}.parquet", 0.1),   # someone else's fresh upload
        stored("part-x.parquet", 100),                     # not a factory data file
        stored("notes.txt", 100),
    ]
    previous = {"file": f"part-old-run-{token}.parquet",
                "replaced_files": [f"part-older-run-{token}.parquet"]}
    chosen = superseded(existing, final, previous, "this-run", now)
    assert sorted(f.relative for f in chosen) == sorted([
        f"part-old-run-{token}.parquet", f"part-older-run-{token}.parquet",
        f"part-this-run-{token}.parquet", f"part-abandoned-{token}.parquet"])
    assert superseded(existing, final, {}, "other", now) == [existing[4]]
