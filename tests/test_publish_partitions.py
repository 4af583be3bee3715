"""Building partitions with one partitioned COPY: folder names for awkward values and NULL,
files holding exactly their partition's rows and the staged columns, the same bytes whatever
order the staged rows came in, and an empty output."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb

from dag_factory.interval import DataInterval
from dag_factory.publish.partitions import PublishRequest, publish_partitions
from dag_factory.storage import MANIFEST, NULL_PARTITION, PART_FILE, RunPaths, partition_dir_name

QUALITY = {"outcome": "pass", "counts": {"passed": 1, "warned": 0, "failed": 0, "not_evaluated": 0}}
INTERVAL = DataInterval(dt.datetime(2013, 1, 1, tzinfo=dt.timezone.utc),
                        dt.datetime(2013, 1, 2, tzinfo=dt.timezone.utc))
AWKWARD = ["a/b", "it's", "100%", "naïve", "with space", "x=y", "2013-01-01T00:00:00+00:00", None]


def stage(folder: Path, select: str) -> RunPaths:
    """Stage the rows of ``select`` as the run's output file."""
    paths = RunPaths(folder)
    folder.mkdir(parents=True)
    duckdb.sql(f"copy ({select}) to '{paths.output_file}' (format parquet)")
    return paths


def publish(root: Path, paths: RunPaths, key: str = "label"):
    return publish_partitions(PublishRequest(
        product="p", version="1.0.0", root=root, partition_by=key, paths=paths, quality=QUALITY,
        interval=INTERVAL, run_id="r"))


def test_every_value_gets_its_own_folder_with_exactly_its_rows(tmp_path):
    values = ", ".join("NULL" if v is None else "'" + v.replace("'", "''") + "'" for v in AWKWARD)
    rows = f"select label, i as n from unnest([{values}]) t(label), range(3 + len(coalesce(label, ''))) r(i)"
    root = tmp_path / "published"
    result = publish(root, stage(tmp_path / "staging", rows))

    texts = [NULL_PARTITION if v is None else v for v in AWKWARD]
    assert result.partitions == sorted(v for v in AWKWARD if v is not None) + [NULL_PARTITION]
    assert sorted(p.name for p in root.iterdir()) == sorted(partition_dir_name("label", t) for t in texts)
    con = duckdb.connect()
    for value, text in zip(AWKWARD, texts):
        folder = root / partition_dir_name("label", text)
        assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, PART_FILE]
        data = f"read_parquet('{str(folder / PART_FILE).replace(chr(39), chr(39) * 2)}')"
        assert [c[0] for c in con.execute(f"describe select * from {data}").fetchall()] == ["label", "n"]
        expected = f"select * from ({rows}) where label is not distinct from $v"
        differ = con.execute(f"select count(*) from (({expected}) except all (select * from {data})"
                             f" union all ((select * from {data}) except all ({expected})))",
                             {"v": value}).fetchone()[0]
        assert differ == 0, f"partition {text!r} does not hold exactly its rows"
        manifest = json.loads((folder / MANIFEST).read_text())
        assert manifest["partition"] == {"key": "label", "value": text}
        assert manifest["rows"] == 3 + len(value or "")
        assert manifest["bytes"] == (folder / PART_FILE).stat().st_size
    assert not (tmp_path / "staging" / "publish").exists() or \
        not any((tmp_path / "staging" / "publish").iterdir()), "the build folder was left behind"


def test_the_same_rows_in_any_order_give_the_same_bytes(tmp_path):
    rows = ("select date '2013-01-01' + (i % 5)::int as day, 'c' || (i % 13) as carrier, "
            "i % 1000 as n, md5(i::varchar) as payload from range(200000) t(i)")
    first = publish(tmp_path / "a", stage(tmp_path / "sa", f"{rows} order by payload"), "day")
    second = publish(tmp_path / "b", stage(tmp_path / "sb", f"{rows} order by n desc, payload"), "day")
    assert first.partitions == second.partitions and len(first.partitions) == 5
    for part in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / part / PART_FILE).read_bytes() == \
            (tmp_path / "b" / part / PART_FILE).read_bytes(), part


def test_a_single_partition_gives_the_same_bytes_in_any_order(tmp_path):
    rows = "select date '2013-01-01' as day, i % 97 as n, md5(i::varchar) as payload from range(300000) t(i)"
    first = publish(tmp_path / "a", stage(tmp_path / "sa", f"{rows} order by payload"), "day")
    second = publish(tmp_path / "b", stage(tmp_path / "sb", f"{rows} order by n desc, payload"), "day")
    assert first.partitions == second.partitions == ["2013-01-01"] and first.rows == 300000
    part = "day=2013-01-01"
    assert sorted(p.name for p in (tmp_path / "a" / part).iterdir()) == [MANIFEST, PART_FILE]
    assert (tmp_path / "a" / part / PART_FILE).read_bytes() == (tmp_path / "b" / part / PART_FILE).read_bytes()


def test_an_empty_output_publishes_nothing(tmp_path):
    result = publish(tmp_path / "published", stage(tmp_path / "s", "select 'x' as label, 1 as n where false"))
    assert result.manifests == [] and result.removed == []
    assert not (tmp_path / "published").exists() or not any((tmp_path / "published").iterdir())
