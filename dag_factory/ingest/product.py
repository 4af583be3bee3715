"""``type: product`` inputs: the published partitions of an upstream product in this run's
data interval (partitions keyed by a date or timestamp), or all of them (other keys)."""

from __future__ import annotations

from pathlib import Path

from dag_factory.engines import duckdb as engine
from dag_factory.ingest.errors import InputMissing
from dag_factory.storage import PART_FILE, partition_value, product_root


def selected_partitions(source: dict, interval) -> list[Path]:
    """Published partition directories of the upstream product that this run reads, sorted."""
    root = product_root(source["product_name"], source["major"])
    if not root.is_dir():
        return []
    chosen = []
    for part_dir in sorted(p for p in root.iterdir() if p.is_dir() and "=" in p.name):
        _, value = partition_value(part_dir.name)
        inside = interval.contains_partition(value)
        if (inside is None or inside) and (part_dir / PART_FILE).is_file():
            chosen.append(part_dir)
    return chosen


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
    files = [str(p / PART_FILE) for p in parts]
    con = engine.connect()
    try:
        con.execute("create temp table _product as select * from read_parquet(?, union_by_name = true)",
                    [files])
        return engine.relation_to_parquet(con, "select * from _product", target)
    finally:
        con.close()
