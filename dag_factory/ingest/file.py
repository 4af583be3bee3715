"""``type: file`` inputs: a file under the data folder (a local folder or ``s3://`` prefix)."""

from __future__ import annotations

from pathlib import Path

from dag_factory.config import data_folder
from dag_factory import datastore
from dag_factory.datastore import Location, under
from dag_factory.datastore.workspace import Workspace
from dag_factory.engines import duckdb as engine
from dag_factory.ingest.errors import InputMissing


def resolve(source: dict) -> Location:
    """Location of a (rendered) file input: ``<data_folder>/<path>`` (a local path, or an
    S3Path for an S3 data folder).

    Raises:
        ValueError: when the rendered path escapes the data folder.
    """
    return under(data_folder(), source["path"], "input path")


def exists(source: dict, context) -> bool:
    return datastore.exists(resolve(source))


def fetch(source: dict, target: Path, context) -> int:
    """Copy the file into staging as Parquet. Raises InputMissing when it is absent
    (naming the resolved path or ``s3://`` URI), StorageError when S3 cannot be read."""
    location = resolve(source)
    if not datastore.exists(location):
        raise InputMissing(source["product"], source["name"], "file", str(location),
                           "has the producer landed it? set `wait:` on the input to wait for it")
    con = engine.connect()
    try:
        with Workspace() as workspace:
            local = workspace.read(location)
            return engine.file_to_parquet(con, local, source["format"], target, source.get("csv"))
    finally:
        con.close()
