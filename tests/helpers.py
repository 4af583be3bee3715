"""Shared helpers of the end-to-end tests: run a product through dag.test(), read what it
published, and lay out temporary products folders."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
PRODUCTS = REPO / "products"


def run(name: str, day: dt.date, folder: Path = PRODUCTS, retries: int = 0):
    """Run product ``name`` for the data interval starting at ``day``; returns RunSummary.

    ``retries``: retries of every task for this run (default 0: fail fast)."""
    import io

    from dag_factory.build.folder import build_dags
    from dag_factory.runner import run_product
    from dag_factory.spec.loading import load_products

    specs = load_products(folder).products
    dag = build_dags(folder)[name]
    return run_product(dag, specs[name].spec.schedule, day, retries=retries, stream=io.StringIO(),
                       folder=None if folder == PRODUCTS else folder)


def published(data: Path, product: str, major: int = 1) -> list[dict]:
    """Every published row of ``product`` (all partitions), as dicts sorted by all columns."""
    files = sorted(str(p) for p in (data / "products" / product / f"v{major}").glob("*/part-0.parquet"))
    if not files:
        return []
    con = duckdb.connect()
    rel = con.sql("select * from read_parquet(?, hive_partitioning = false) order by all", params=[files])
    columns = rel.columns
    return [dict(zip(columns, row)) for row in rel.fetchall()]


def manifest(data: Path, product: str, partition_dir: str, major: int = 1) -> dict:
    """The manifest of one published partition directory (e.g. ``flight_date=2013-01-01``)."""
    path = data / "products" / product / f"v{major}" / partition_dir / "_manifest.json"
    return json.loads(path.read_text())


def products_folder(tmp_path: Path, names: list[str], extra: dict[str, str] | None = None) -> Path:
    """A products folder with the loader module, copies of the named demo products
    (+ transforms/) and extra files ``{file name: YAML text}``."""
    folder = tmp_path / "products"
    folder.mkdir()
    for name in names:
        shutil.copyfile(PRODUCTS / f"{name}.yaml", folder / f"{name}.yaml")
    shutil.copytree(PRODUCTS / "transforms", folder / "transforms")
    for loader_file in ("load_products.py", ".airflowignore"):
        shutil.copyfile(PRODUCTS / loader_file, folder / loader_file)
    for file_name, text in (extra or {}).items():
        (folder / file_name).write_text(text)
    return folder


def demo_yaml(name: str) -> str:
    """The text of a demo product file."""
    return (PRODUCTS / f"{name}.yaml").read_text()
