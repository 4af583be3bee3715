"""Publish audited output as partitions: write-audit-publish's last step, without Airflow."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from dag_factory.datastore import Location, S3Path, store_for
from dag_factory.datastore.workspace import Workspace
from dag_factory.engines import duckdb as engine
from dag_factory.interval import DataInterval
from dag_factory.publish.local_swap import LocalSwap
from dag_factory.publish.object_swap import ObjectSwap
from dag_factory.storage import (
    MANIFEST, NULL_PARTITION, RunPaths, partition_dir_name, partition_value,
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
        run_id: the Airflow run id; contract: the output contract the partitions are
        published under (partition_by, Soda columns and checks), recorded in each manifest
        so a later spec can be checked against it (``dataproducts validate --against
        published``); None leaves it out.
    """

    product: str
    version: str
    root: Location
    partition_by: str
    paths: RunPaths
    quality: dict
    interval: DataInterval
    run_id: str
    contract: dict | None = None


def publish_partitions(request: PublishRequest) -> PublishResult:
    """Replace the partitions of the request's interval with the staged output.

    Each partition is built completely (data file, then manifest) and swapped in atomically:
    a directory swap in a local data folder (:class:`.local_swap.LocalSwap`), manifest last
    on S3 (:class:`.object_swap.ObjectSwap`); partitions of the interval the output no longer
    holds are removed. A kill at any point leaves every partition either as it was or fully
    new; a retry finishes the job.

    Raises:
        OSError (StorageError, NotFound) / duckdb errors: nothing is left half-published.
    """
    with Workspace() as workspace:
        output = workspace.read(request.paths.output_file)
        swap = _swap_for(request, workspace)
        built = _build_partitions(request, output, swap.build_dir, swap.data_file)
        result = PublishResult()
        for part_dir, manifest in built:
            result.manifests.append(swap.replace(part_dir, manifest))
        kept = {part_dir.name for part_dir, _ in built}
        result.removed = _remove_stale(request, swap, kept)
    return result


def _swap_for(request: PublishRequest, workspace: Workspace):
    if isinstance(request.root, S3Path):
        return ObjectSwap(store_for(request.root), request.root, request.run_id,
                          workspace.scratch("publish"))
    return LocalSwap(request.root, request.paths.publish_dir, request.paths.root / "trash")


def _build_partitions(request: PublishRequest, output: Path, build_dir: Path,
                      data_file: str) -> list[tuple[Path, dict]]:
    con = engine.connect()
    try:
        staged = str(output).replace("'", "''")
        con.execute(f"create temp table _out as select * from read_parquet('{staged}')")
        schema = [{"name": n, "type": t} for n, t, *_ in con.execute("describe _out").fetchall()]
        key = engine.quote_ident(request.partition_by)
        values = [r[0] for r in con.execute(f"select distinct cast({key} as varchar) from _out").fetchall()]
        return [_build_one(con, request, value, schema, build_dir, data_file)
                for value in sorted(values, key=str)]
    finally:
        con.close()


def _build_one(con, request: PublishRequest, value: str | None, schema: list, build_dir: Path,
               data_file: str) -> tuple[Path, dict]:
    text = NULL_PARTITION if value is None else value
    part_dir = build_dir / partition_dir_name(request.partition_by, text)
    part_dir.mkdir(parents=True)
    key = engine.quote_ident(request.partition_by)
    where = f"{key} is null" if value is None else f"cast({key} as varchar) = $v"
    # rows sorted by every column: the same output gives the same bytes, whatever order the
    # transform's threads produced it in (re-runs, and the embedded vs distributed setups)
    rows = engine.relation_to_parquet(con, f"select * from _out where {where} order by all",
                                      part_dir / data_file, {} if value is None else {"v": value})
    manifest = {
        "product": request.product,
        "version": request.version,
        "partition": {"key": request.partition_by, "value": text},
        "rows": rows,
        "bytes": (part_dir / data_file).stat().st_size,
        "file": data_file,
        "schema": schema,
        "run_id": request.run_id,
        "data_interval": {"start": request.interval.start.isoformat(),
                          "end": request.interval.end.isoformat()},
        "quality": {"outcome": request.quality["outcome"], **request.quality["counts"]},
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    if request.contract is not None:
        manifest["contract"] = request.contract
    (part_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return part_dir, manifest


def _remove_stale(request: PublishRequest, swap, kept: set[str]) -> list[str]:
    removed: list[str] = []
    for name in swap.partition_names():
        key, value = partition_value(name)
        if key == request.partition_by and name not in kept \
                and request.interval.contains_partition(value):
            swap.remove(name)
            removed.append(value)
    return removed
