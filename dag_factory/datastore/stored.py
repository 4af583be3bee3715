"""``StoredFile``: one file or object found by listing a folder of the data folder."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from dag_factory.datastore.s3path import S3Path


@dataclass(frozen=True)
class StoredFile:
    """A listed file.

    Attributes:
        location: where it is (local path or S3Path).
        relative: its path below the listed folder, ``/``-separated (``a=1/part-0.parquet``).
        size: bytes; modified: last modification time (aware, UTC).
    """

    location: Path | S3Path
    relative: str
    size: int
    modified: dt.datetime
