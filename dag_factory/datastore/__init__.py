"""Storage backends of the data folder: a local directory or ``s3://bucket/prefix``.

A *location* is a ``pathlib.Path`` (local data folder) or an :class:`S3Path` (S3 data folder);
the layout functions of :mod:`dag_factory.storage` build both the same way. The functions here
act on either; DuckDB only reads local files, so tasks reach stored files through a
:class:`~dag_factory.datastore.workspace.Workspace` (a local path of each file they read or
write; for a local data folder, the file itself).

| backend | module      | atomic write                  | reached through                    |
|---------|-------------|-------------------------------|------------------------------------|
| local   | ``local.py``| ``<file>.partial`` + rename   | the filesystem                     |
| S3      | ``s3.py``   | one PUT (or multipart upload) | ``S3Hook``, ``[dataproducts] data_conn_id`` |
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from dag_factory.datastore.errors import NotFound, StorageError
from dag_factory.datastore.local import LocalStore
from dag_factory.datastore.s3path import S3Path

Location = Union[Path, S3Path]

__all__ = ["Location", "NotFound", "S3Path", "StorageError", "exists", "parse_location",
           "read_text", "store_for", "under", "write_text"]

_LOCAL = LocalStore()
_S3_STORES: dict[str, object] = {}


def store_for(location: Location):
    """The store of a location: :class:`LocalStore` for paths, an
    :class:`~dag_factory.datastore.s3.S3Store` on ``[dataproducts] data_conn_id`` for S3Path
    (one per connection id and process)."""
    if isinstance(location, S3Path):
        from dag_factory.config import data_conn_id
        from dag_factory.datastore.s3 import S3Store

        conn_id = data_conn_id()
        if conn_id not in _S3_STORES:
            _S3_STORES[conn_id] = S3Store(conn_id)
        return _S3_STORES[conn_id]
    return _LOCAL


def parse_location(text: str | Path | S3Path) -> Location:
    """``"s3://b/k"`` -> S3Path, anything else -> Path (the inverse of ``str(location)``)."""
    if isinstance(text, (Path, S3Path)):
        return text
    return S3Path.parse(text) if text.startswith("s3://") else Path(text)


def under(root: Location, relative: str, what: str = "path") -> Location:
    """``root / relative``, refusing results outside ``root`` (``..`` segments).

    Args:
        root: the data folder (or a folder in it); relative: a ``/``-separated relative path.
        what: the name of the setting, for the error (``"input path"``).

    Raises:
        ValueError: when ``relative`` resolves outside ``root``.
    """
    if isinstance(root, S3Path):
        location = (root / relative).normalized()
        if location == root or not location.is_relative_to(root) \
                or relative.startswith("/"):
            raise ValueError(f"{what} {relative!r} resolves outside the data folder {root}")
        return location
    base = Path(os.path.abspath(root))
    path = Path(os.path.abspath(base / relative))  # normalises '..', keeps symlinks
    if base not in path.parents:
        raise ValueError(f"{what} {relative!r} resolves outside the data folder {base}")
    return path


def exists(location: Location) -> bool:
    """True when the file or object exists. Raises StorageError (S3: missing bucket, access)."""
    return store_for(location).exists(location)


def read_text(location: Location) -> str:
    """The UTF-8 text of a file or object. Raises NotFound / StorageError."""
    return store_for(location).read_bytes(location).decode("utf-8")


def write_text(location: Location, text: str) -> None:
    """Write a file or object atomically (rename locally, one PUT on S3)."""
    store_for(location).write_bytes(location, text.encode("utf-8"))


def delete_tree(location: Location) -> None:
    """Delete a folder (a key prefix on S3) and everything below it; absent is fine."""
    store_for(location).delete_tree(location)
