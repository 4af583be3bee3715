"""Publishing partitions into an S3 data folder: data under a unique key, manifest last.

S3 has no rename, but a single PUT is atomic: a reader gets the old object or the complete new
one. So a partition ``<root>/<key>=<value>/`` is its ``_manifest.json``, which names the data
file (``"file"``) in the same prefix. Replacing a partition:

1. upload the data file under a new, unique key ``part-<run>-<token>.parquet`` (no reader
   looks at it: no manifest names it yet);
2. PUT ``_manifest.json`` naming it: the switch, one atomic write;
3. delete the data files it replaced (listed in the manifest as ``replaced_files``).

Removing a stale partition deletes its manifest first (it disappears for readers at once),
then its data files. Readers must follow manifests, never list data files
(:mod:`dag_factory.publish.reader`). A kill at any point leaves the partition old or fully new:

| killed                         | readers see | left behind          | cleaned up by                    |
|--------------------------------|-------------|----------------------|----------------------------------|
| after 1 (data uploaded)        | old         | the new data file    | the retry (same run's file)      |
| after 2 (manifest PUT)         | new         | the replaced file    | the retry (``replaced_files``)   |
| during 3 / stale removal       | new / gone  | some replaced files  | the retry                        |

Any later publish of the partition also deletes the files its manifest lists in
``replaced_files``, files of its own run, and unreferenced data files older than
:data:`ORPHAN_GRACE` (an abandoned run's upload; a live upload waits seconds, not a day, for
its manifest).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path

from dag_factory.datastore import NotFound, S3Path
from dag_factory.datastore.stored import StoredFile
from dag_factory.storage import MANIFEST, manifest_text, safe_run_id

ORPHAN_GRACE = dt.timedelta(hours=24)
_DATA_FILE = re.compile(r"^part-(?P<run>.+)-(?P<token>[0-9a-f]{32})\.parquet$")


def data_file_name(run_id: str) -> str:
    """A unique data file name for one publish attempt of ``run_id``."""
    return f"part-{safe_run_id(run_id)}-{uuid.uuid4().hex}.parquet"


class ObjectSwap:
    """Swap built partitions into ``root`` on S3 (see the module docstring).

    Args:
        store: the :class:`~dag_factory.datastore.s3.S3Store`; root: the product's published
        prefix; run_id: the Airflow run id; build_dir: a local scratch directory to build in.
    """

    def __init__(self, store, root: S3Path, run_id: str, build_dir: Path):
        self.store, self.root, self.build_dir = store, root, build_dir
        self.run = safe_run_id(run_id)
        self.data_file = data_file_name(run_id)
        self._listing: dict[str, list[StoredFile]] | None = None

    def replace(self, part_dir: Path, manifest: dict) -> dict:
        """Publish the built ``part_dir`` (data file + manifest) as the partition of the same
        name: upload data, PUT the manifest, delete what it replaced. Returns the manifest
        written (with ``replaced_files``).

        Raises:
            StorageError: from S3; the partition stays old or fully new.
        """
        final = self.root / part_dir.name
        existing = self._files().get(part_dir.name, [])
        garbage = self._replaced(final, existing)
        manifest = {**manifest, "replaced_files": sorted(f.location.name for f in garbage)}
        self.store.upload(part_dir / self.data_file, final / self.data_file)
        self.store.write_bytes(final / MANIFEST, manifest_text(manifest).encode())
        self.store.delete([f.location for f in garbage])
        return manifest

    def partition_names(self) -> list[str]:
        """Names (``key=value``) of the partition prefixes holding any object, sorted."""
        return sorted(self._files())

    def remove(self, name: str) -> None:
        """Remove a partition: its manifest first, then every other object in its prefix."""
        files = self._files().get(name, [])
        self.store.delete([self.root / name / MANIFEST])
        self.store.delete([f.location for f in files if f.location.name != MANIFEST])

    def _files(self) -> dict[str, list[StoredFile]]:
        if self._listing is None:
            self._listing = {}
            for stored in self.store.list_files(self.root):
                name, _, rest = stored.relative.partition("/")
                if rest and "=" in name:
                    self._listing.setdefault(name, []).append(stored)
        return self._listing

    def _replaced(self, final: S3Path, existing: list[StoredFile]) -> list[StoredFile]:
        previous = {}
        if any(f.location.name == MANIFEST for f in existing):
            try:
                previous = json.loads(self.store.read_bytes(final / MANIFEST))
            except NotFound:  # removed meanwhile
                previous = {}
        return superseded(existing, final, previous, self.run, dt.datetime.now(dt.timezone.utc))


def superseded(existing: list[StoredFile], final: S3Path, previous: dict, run: str,
               now: dt.datetime) -> list[StoredFile]:
    """The data files of partition ``final`` that a new manifest of run ``run`` replaces.

    Args:
        existing: the objects listed under the partition; previous: its current manifest
            (``{}`` when none); run: this run's id as in keys (:func:`safe_run_id`);
            now: the current time (aware).

    Returns:
        ``part-<run>-<token>.parquet`` files that the previous manifest names or lists in
        ``replaced_files``, that this run uploaded in an earlier attempt, or that no one has
        touched for :data:`ORPHAN_GRACE`. Other files (a concurrent publisher's fresh upload,
        foreign objects) are kept.
    """
    listed = set(previous.get("replaced_files") or []) | {previous.get("file")}
    garbage = []
    for stored in existing:
        name = stored.location.name
        match = _DATA_FILE.match(name)
        if stored.location.parent != final or not match:
            continue
        if name in listed or match["run"] == run or now - stored.modified > ORPHAN_GRACE:
            garbage.append(stored)
    return garbage
