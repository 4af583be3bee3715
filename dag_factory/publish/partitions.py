"""Publish audited output as partitions: write-audit-publish's last step, without Airflow."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from dag_factory.datastore import Location, S3Path, store_for
from dag_factory.datastore.workspace import Workspace
from dag_factory.engines import duckdb as engine
from dag_factory.interval import DataInterval
from dag_factory.publish.local_swap import LocalSwap
from dag_factory.publish.object_swap import ObjectSwap
from dag_factory.storage import (
    MANIFEST, NULL_PARTITION, RunPaths, manifest_text, partition_dir_name, partition_value,
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


PARTITION_INDEX = "__dataproducts_partition"  # the COPY's partition column, not in the files


def _build_partitions(request: PublishRequest, output: Path, build_dir: Path,
                      data_file: str) -> list[tuple[Path, dict]]:
    """Build every partition of the staged output under ``build_dir`` with one DuckDB
    ``COPY ... PARTITION_BY`` (a plain COPY when there is only one), then a manifest each;
    returns ``(partition dir, manifest)`` in partition order.

    Raises:
        RuntimeError: DuckDB did not write exactly one file for a partition.
    """
    con = engine.connect()
    try:
        con.execute(f"create temp table _out as select * from read_parquet('{engine.sql_string(output)}')")
        schema = [{"name": n, "type": t} for n, t, *_ in con.execute("describe _out").fetchall()]
        key = engine.quote_ident(request.partition_by)
        # in the order _indexed_output numbers them: value i is in folder <index column>=i
        partitions = con.execute(f"select cast({key} as varchar) as v, count(*) from _out "
                                 f"group by v order by v nulls last").fetchall()
        if not partitions:
            return []
        if len(partitions) == 1:
            return [_build_single(con, request, partitions[0], schema, build_dir, data_file)]
        written = build_dir / "_copy"  # no "=" in the name: never a partition's name
        _copy_partitioned(con, _indexed_output(request.partition_by), written)
        built = []
        for index, (value, rows) in enumerate(partitions):
            text = NULL_PARTITION if value is None else value
            part_dir = build_dir / partition_dir_name(request.partition_by, text)
            _move_partition_file(written / f"{PARTITION_INDEX}={index}", part_dir, data_file)
            built.append((part_dir, _write_manifest(request, part_dir, text, rows, schema, data_file)))
        written.rmdir()
        return built
    finally:
        con.close()


def _build_single(con, request: PublishRequest, partition: tuple, schema: list, build_dir: Path,
                  data_file: str) -> tuple[Path, dict]:
    """The one partition of a run that has one (a daily run's usual case): a plain COPY, which
    keeps the sorted order on every DuckDB thread (1.7x faster than the one-thread partitioned
    COPY on 2,000,000 rows here; the two writers' files differ in bytes, not in rows)."""
    value, rows = partition
    text = NULL_PARTITION if value is None else value
    part_dir = build_dir / partition_dir_name(request.partition_by, text)
    engine.relation_to_parquet(con, "select * from _out order by all", part_dir / data_file)
    return part_dir, _write_manifest(request, part_dir, text, rows, schema, data_file)


def _indexed_output(partition_by: str) -> str:
    """The staged output with each row's partition number (0, 1, ... in the order of the
    partition values as text, NULL last): the partition folders' names during the COPY, so
    DuckDB never has to spell a value in a path."""
    key = engine.quote_ident(partition_by)
    return (f"select *, dense_rank() over (order by cast({key} as varchar) nulls last) - 1 "
            f"as {PARTITION_INDEX} from _out")


def _copy_partitioned(con, indexed: str, target: Path) -> None:
    """One COPY writing every partition's Parquet file under ``target/<index column>=<n>/``.

    Rows are sorted by every column, so the same output gives the same bytes whatever order
    the transform's threads produced it in (re-runs; the embedded vs distributed setups). The
    COPY runs on one thread: a partitioned COPY on several threads interleaves their sorted
    chunks, which changes a file's bytes from run to run.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    con.execute("SET threads TO 1")
    con.execute(f"copy ({indexed} order by all) to '{engine.sql_string(target)}' "
                f"(format parquet, compression zstd, partition_by ({PARTITION_INDEX}))")


def _move_partition_file(written: Path, part_dir: Path, data_file: str) -> None:
    files = list(written.iterdir())
    if len(files) != 1:
        raise RuntimeError(f"publish expected DuckDB to write one Parquet file in {written}, "
                           f"found {len(files)}: {sorted(f.name for f in files)}")
    written.rename(part_dir)
    (part_dir / files[0].name).rename(part_dir / data_file)


def _write_manifest(request: PublishRequest, part_dir: Path, text: str, rows: int,
                    schema: list, data_file: str) -> dict:
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
    (part_dir / MANIFEST).write_text(manifest_text(manifest))
    return manifest


def _remove_stale(request: PublishRequest, swap, kept: set[str]) -> list[str]:
    removed: list[str] = []
    for name in swap.partition_names():
        key, value = partition_value(name)
        if key == request.partition_by and name not in kept \
                and request.interval.contains_partition(value):
            swap.remove(name)
            removed.append(value)
    return removed
