"""Publish killed at random moments (SIGKILL, a real separate process) never leaves a partial
or mixed partition, and a retry finishes the job."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from dag_factory.interval import DataInterval
from dag_factory.publish.partitions import PublishRequest, publish_partitions
from dag_factory.storage import MANIFEST, PART_FILE, RunPaths

DAYS = ["2013-01-01", "2013-01-02", "2013-01-03", "2013-01-04"]
ROWS_PER_DAY = 50_000
QUALITY = {"outcome": "pass", "counts": {"passed": 1, "warned": 0, "failed": 0, "not_evaluated": 0}}
INTERVAL = DataInterval(dt.datetime(2013, 1, 1, tzinfo=dt.timezone.utc),
                        dt.datetime(2013, 1, 5, tzinfo=dt.timezone.utc))

CHILD = textwrap.dedent("""
    import datetime as dt, json, sys
    from pathlib import Path
    from dag_factory.interval import DataInterval
    from dag_factory.publish.partitions import PublishRequest, publish_partitions
    from dag_factory.storage import RunPaths
    args = json.loads(sys.argv[1])
    request = PublishRequest(
        product="crash", version="1.0.0", root=Path(args["root"]), partition_by="day",
        paths=RunPaths(Path(args["staging"])), quality=args["quality"],
        interval=DataInterval(dt.datetime.fromisoformat(args["start"]),
                              dt.datetime.fromisoformat(args["end"])),
        run_id=args["run_id"])
    print("ready", flush=True)
    publish_partitions(request)
    print("done", flush=True)
""")


def stage(staging: Path, generation: str) -> RunPaths:
    """Stage an output of ROWS_PER_DAY rows per day, every row tagged with ``generation``."""
    paths = RunPaths(staging)
    paths.root.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"""copy (select cast(d as date) as day, i as n, '{generation}' as generation,
                                 md5(i::varchar) as payload
                          from unnest(?::date[]) t(d), range({ROWS_PER_DAY}) r(i))
                    to '{paths.output_file}' (format parquet)""", [DAYS])
    return paths


def request(root: Path, paths: RunPaths, run_id: str) -> PublishRequest:
    return PublishRequest(product="crash", version="1.0.0", root=root, partition_by="day",
                          paths=paths, quality=QUALITY, interval=INTERVAL, run_id=run_id)


def assert_every_partition_whole(root: Path) -> dict[str, str]:
    """Each visible partition has data + manifest that agree and one generation only.

    Returns:
        partition dir name -> generation.
    """
    generations = {}
    for entry in sorted(root.iterdir()):
        assert entry.is_dir() and entry.name.startswith("day="), f"stray entry {entry.name}"
        assert sorted(p.name for p in entry.iterdir()) == [MANIFEST, PART_FILE], entry
        manifest = json.loads((entry / MANIFEST).read_text())
        rows = duckdb.connect().execute(f"select count(*), count(distinct generation), min(generation) "
                          f"from read_parquet('{entry / PART_FILE}')").fetchone()
        assert rows[0] == manifest["rows"] == ROWS_PER_DAY, entry
        assert rows[1] == 1, f"{entry.name} mixes generations"
        generations[entry.name] = rows[2]
    return generations


def test_publish_killed_at_random_moments_leaves_whole_partitions(tmp_path):
    root = tmp_path / "products/crash/v1"
    publish_partitions(request(root, stage(tmp_path / "old", "old"), "old-run"))
    assert set(assert_every_partition_whole(root).values()) == {"old"}

    started = time.monotonic()
    publish_partitions(request(tmp_path / "probe", stage(tmp_path / "probe-stage", "probe"), "p"))
    duration = time.monotonic() - started

    rng = random.Random(20130101)
    kills = 0
    for attempt in range(12):
        staging = stage(tmp_path / f"new-{attempt}", "new")
        args = json.dumps({"root": str(root), "staging": str(staging.root), "quality": QUALITY,
                           "start": INTERVAL.start.isoformat(), "end": INTERVAL.end.isoformat(),
                           "run_id": f"new-{attempt}"})
        child = subprocess.Popen([sys.executable, "-c", CHILD, args], stdout=subprocess.PIPE,
                                 text=True, env=os.environ.copy())
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, duration * 1.1))
        child.send_signal(signal.SIGKILL)
        if child.wait() == -signal.SIGKILL:
            kills += 1
        seen = assert_every_partition_whole(root)
        assert set(seen) == {f"day={d}" for d in DAYS}, "a partition went missing"

        publish_partitions(request(root, staging, f"retry-{attempt}"))  # the task's retry
        assert set(assert_every_partition_whole(root).values()) == {"new"}
        publish_partitions(request(root, stage(tmp_path / f"back-{attempt}", "old"), "old-again"))
    assert kills >= 8, f"only {kills} of 12 publishes were killed mid-way; raise the data size"


def test_rerun_with_fewer_partitions_removes_the_stale_ones(tmp_path):
    root = tmp_path / "products/crash/v1"
    publish_partitions(request(root, stage(tmp_path / "all", "old"), "a"))
    paths = RunPaths(tmp_path / "fewer")
    paths.root.mkdir()
    duckdb.sql(f"copy (select date '2013-01-02' as day, 1 as n, 'new' as generation, 'x' as payload) "
               f"to '{paths.output_file}' (format parquet)")
    result = publish_partitions(request(root, paths, "b"))
    assert result.partitions == ["2013-01-02"]
    assert result.removed == ["2013-01-01", "2013-01-03", "2013-01-04"]
    assert sorted(p.name for p in root.iterdir()) == ["day=2013-01-02"]


@pytest.mark.parametrize("outside", ["2012-12-31", "2013-01-05"])
def test_partitions_outside_the_interval_are_never_removed(tmp_path, outside):
    root = tmp_path / "products/crash/v1"
    keep = root / f"day={outside}"
    keep.mkdir(parents=True)
    (keep / PART_FILE).write_bytes(b"untouched")
    publish_partitions(request(root, stage(tmp_path / "s", "new"), "r"))
    assert (keep / PART_FILE).read_bytes() == b"untouched"
