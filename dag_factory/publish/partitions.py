"""Publish audited output as partitions: write-audit-publish's last step, without Airflow."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dag_factory.engines import duckdb as engine
from dag_factory.interval import DataInterval
from dag_factory.publish.atomic import recover, remove_dir, replace_dir
from dag_factory.storage import (
    MANIFEST, NULL_PARTITION, PART_FILE, RunPaths, partition_dir_name, partition_value,
)


@dataclass
class PublishResult:
    """What a publish did.

    Attributes:
        manifests: the manifest of every partition published, in partition order.
        removed: partition values in the interval that the new output no longer has.
    """

    manifests: list[dict] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(m["rows"] for m in self.manifests)

    @property
    def partitions(self) -> list[str]:
        return [m["partition"]["value"] for m in self.manifests]


@dataclass(frozen=True)
class PublishRequest:
    """Everything a publish needs.

    Attributes:
        product / version: the product and its semver; root: its published tree
        (``products/<name>/v<major>``); partition_by: the partition column;
        paths: the run's staging paths (output file, publish and trash folders);
        quality: the gate record (outcome, counts); interval: the run's data interval;
        run_id: the Airflow run id.
    """

    product: str
    version: str
    root: Path
    partition_by: str
    paths: RunPaths
    quality: dict
    interval: DataInterval
    run_id: str


def publish_partitions(request: PublishRequest) -> PublishResult:
    """Replace the partitions of the request's interval with the staged output.

    Each partition is built completely in staging (data file, then manifest) and swapped in
    atomically; partitions of the interval the output no longer holds are removed. A kill at
    any point leaves every partition either as it was or fully new; a retry finishes the job.

    Raises:
        OSError / duckdb errors: nothing is left half-published.
    """
    trash = request.paths.root / "trash"
    shutil.rmtree(request.paths.publish_dir, ignore_errors=True)
    built = _build_partitions(request)
    result = PublishResult()
    for part_dir, manifest in built:
        final = request.root / part_dir.name
        recover(final, trash)
        replace_dir(part_dir, final, trash)
        result.manifests.append(manifest)
    kept = {part_dir.name for part_dir, _ in built}
    result.removed = _remove_stale(request, kept, trash)
    return result


def _build_partitions(request: PublishRequest) -> list[tuple[Path, dict]]:
    con = engine.connect()
    try:
        staged = str(request.paths.output_file).replace("'", "''")
        con.execute(f"create temp table _out as select * from read_parquet('{staged}')")
        schema = [{"name": n, "type": t} for n, t, *_ in con.execute("describe _out").fetchall()]
        key = engine.quote_ident(request.partition_by)
        values = [r[0] for r in con.execute(f"select distinct cast({key} as varchar) from _out").fetchall()]
        return [_build_one(con, request, value, schema) for value in sorted(values, key=str)]
    finally:
        con.close()


def _build_one(con, request: PublishRequest, value: str | None, schema: list) -> tuple[Path, dict]:
    text = NULL_PARTITION if value is None else value
    part_dir = request.paths.publish_dir / partition_dir_name(request.partition_by, text)
    part_dir.mkdir(parents=True)
    key = engine.quote_ident(request.partition_by)
    where = f"{key} is null" if value is None else f"cast({key} as varchar) = $v"
    rows = engine.relation_to_parquet(con, f"select * from _out where {where}",
                                      part_dir / PART_FILE, {} if value is None else {"v": value})
    manifest = {
        "product": request.product,
        "version": request.version,
        "partition": {"key": request.partition_by, "value": text},
        "rows": rows,
        "bytes": (part_dir / PART_FILE).stat().st_size,
        "file": PART_FILE,
        "schema": schema,
        "run_id": request.run_id,
        "data_interval": {"start": request.interval.start.isoformat(),
                          "end": request.interval.end.isoformat()},
        "quality": {"outcome": request.quality["outcome"], **request.quality["counts"]},
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    (part_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return part_dir, manifest


def _remove_stale(request: PublishRequest, kept: set[str], trash: Path) -> list[str]:
    removed: list[str] = []
    if not request.root.is_dir():
        return removed
    for part_dir in sorted(p for p in request.root.iterdir() if p.is_dir() and "=" in p.name):
        key, value = partition_value(part_dir.name)
        if key == request.partition_by and part_dir.name not in kept \
                and request.interval.contains_partition(value):
            remove_dir(part_dir, trash)
            removed.append(value)
    return removed
