"""Reading published partitions: follow the manifests, never list data files.

A partition ``<root>/<key>=<value>/`` exists for readers when its ``_manifest.json`` exists;
its data is the one file the manifest names (``"file"``). In a local data folder that is
always ``part-0.parquet``; in an S3 data folder it is a unique ``part-<run>-<token>.parquet``,
and the prefix may briefly hold a data file no manifest names (being published, or replaced and
about to be deleted), so "glob ``*/*.parquet``" would read duplicates there. If the named file
is gone when read (the partition was replaced meanwhile), the manifest is read again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dag_factory.datastore import Location, NotFound, S3Path, store_for
from dag_factory.datastore.workspace import Workspace
from dag_factory.storage import MANIFEST, partition_value

_ATTEMPTS = 3  # manifest reads per partition when its data file is replaced while read


@dataclass(frozen=True)
class PublishedPartition:
    """One visible partition.

    Attributes:
        location: its folder (``<root>/<key>=<value>``); key / value: the partition;
        manifest: its ``_manifest.json`` as a dict.
    """

    location: Location
    key: str
    value: str
    manifest: dict

    @property
    def data_location(self) -> Location:
        """Where the data file the manifest names is."""
        return self.location / self.manifest["file"]


def read_partition(location: Location) -> PublishedPartition | None:
    """The partition at ``location`` (a partition folder), or None when it has no manifest."""
    try:
        text = store_for(location).read_bytes(location / MANIFEST)
    except NotFound:
        return None
    key, value = partition_value(location.name)
    return PublishedPartition(location, key, value, json.loads(text))


def published_partitions(root: Location, select: Callable[[str], bool] | None = None
                         ) -> list[PublishedPartition]:
    """The visible partitions of a product's published tree, sorted by folder name.

    Args:
        root: ``products/<name>/v<major>``; select: keep only partitions whose value
            (unescaped text) passes it; only those manifests are read.

    Raises:
        StorageError: S3 access failed.
    """
    names = sorted({f.relative.partition("/")[0] for f in store_for(root).list_files(root)
                    if f.relative.endswith("/" + MANIFEST) and f.relative.count("/") == 1})
    partitions = []
    for name in names:
        if "=" not in name or (select is not None and not select(partition_value(name)[1])):
            continue
        partition = read_partition(root / name)
        if partition is not None:
            partitions.append(partition)
    return partitions


def local_data_file(partition: PublishedPartition, workspace: Workspace) -> Path:
    """A local path of the partition's data (downloaded from S3), following its manifest.

    Raises:
        NotFound: the partition was removed while being read.
    """
    for _ in range(_ATTEMPTS):
        try:
            local = workspace.read(partition.data_location)
            if not isinstance(partition.location, S3Path) and not local.is_file():
                raise NotFound(str(local))
            return local
        except NotFound:
            fresh = read_partition(partition.location)
            if fresh is None:
                raise
            partition = fresh
    raise NotFound(str(partition.data_location), "replaced repeatedly while being read")
