"""``type: file`` inputs: a file under the data folder."""

from __future__ import annotations

import os
from pathlib import Path

from dag_factory.config import data_folder
from dag_factory.engines import duckdb as engine
from dag_factory.ingest.errors import InputMissing


def resolve(source: dict) -> Path:
    """Absolute path of a (rendered) file input: ``<data_folder>/<path>``.

    Raises:
        ValueError: when the rendered path escapes the data folder.
    """
    root = Path(os.path.abspath(data_folder()))
    path = Path(os.path.abspath(root / source["path"]))  # normalises '..', keeps symlinks
    if root not in path.parents:
        raise ValueError(f"input path {source['path']!r} resolves outside the data folder {root}")
    return path


def exists(source: dict, context) -> bool:
    return resolve(source).is_file()


def fetch(source: dict, target: Path, context) -> int:
    """Copy the file into staging as Parquet. Raises InputMissing when it is absent."""
    path = resolve(source)
    if not path.is_file():
        raise InputMissing(source["product"], source["name"], "file", str(path),
                           "has the producer landed it? set `wait:` on the input to wait for it")
    con = engine.connect()
    try:
        return engine.file_to_parquet(con, path, source["format"], target, source.get("csv"))
    finally:
        con.close()
