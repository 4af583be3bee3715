"""``type: product`` inputs: the published partitions of an upstream product in this run's
data interval (partitions keyed by a date or timestamp), or all of them (other keys).
Partitions are found and read through their manifests (:mod:`dag_factory.publish.reader`)."""

from __future__ import annotations

from pathlib import Path

from dag_factory.datastore.workspace import Workspace
from dag_factory.engines import duckdb as engine
from dag_factory.ingest.errors import InputMissing
from dag_factory.publish.reader import PublishedPartition, local_data_file, published_partitions
from dag_factory.storage import product_root


def selected_partitions(source: dict, interval) -> list[PublishedPartition]:
    """Published partitions of the upstream product that this run reads, sorted."""
    root = product_root(source["product_name"], source["major"])
    return published_partitions(root, lambda value: interval.contains_partition(value) is not False)


def exists(source: dict, context) -> bool:
    from dag_factory.interval import resolve_data_interval

    return bool(selected_partitions(source, resolve_data_interval(context)))


def fetch(source: dict, target: Path, context) -> int:
    """Stage the selected upstream partitions as one Parquet file.

    Raises:
        InputMissing: when no partition of the upstream product falls in the interval.
    """
    from dag_factory.interval import resolve_data_interval

    interval = resolve_data_interval(context)
    parts = selected_partitions(source, interval)
    if not parts:
        root = product_root(source["product_name"], source["major"])
        raise InputMissing(source["product"], source["name"], "product", str(root),
                           f"no published partition of {source['product_name']!r} in "
                           f"[{interval.start.isoformat()}, {interval.end.isoformat()})")
    con = engine.connect()
    try:
        with Workspace() as workspace:
            files = [str(local_data_file(p, workspace)) for p in parts]
            con.execute("create temp table _product as select * from "
                        "read_parquet(?, union_by_name = true)", [files])
        return engine.relation_to_parquet(con, "select * from _product", target)
    finally:
        con.close()
