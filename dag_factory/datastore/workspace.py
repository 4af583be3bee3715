"""``Workspace``: a task's local files of the data folder.

DuckDB reads and writes local files only. A task opens a workspace, asks it for a local path
of each stored file it reads (:meth:`Workspace.read`) and of each file it produces
(:meth:`Workspace.write`), and the workspace uploads the produced files when the block ends
without an error. For a local data folder both are the stored path itself: no copy, no upload.
For an S3 data folder they live in a scratch directory on the worker that is deleted at the
end, so tasks of one run can run on different machines (CeleryExecutor).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from dag_factory.datastore import Location, store_for
from dag_factory.datastore.s3path import S3Path


class Workspace:
    """Context manager: ``with Workspace() as ws: local = ws.read(location)``; or call
    :meth:`flush` on success and :meth:`close` in a ``finally``.

    Raises (from read/flush): NotFound, StorageError.
    """

    def __init__(self) -> None:
        self._scratch: Path | None = None
        self._count = 0
        self._pending: list[tuple[Path, S3Path]] = []

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()

    def close(self) -> None:
        """Delete the scratch directory; files not yet flushed are dropped (not stored)."""
        self._pending.clear()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def read(self, location: Location) -> Path:
        """A local path with the content of ``location`` (downloaded for S3).

        Raises:
            NotFound: the file or object is absent (S3; a local path is returned as is).
        """
        if not isinstance(location, S3Path):
            return location
        local = self._new_path(location.name)
        store_for(location).download(location, local)
        return local

    def write(self, location: Location) -> Path:
        """A local path to write ``location``'s new content to; stored at :meth:`flush` (or
        the end of the block). For a local data folder: ``location`` itself."""
        if not isinstance(location, S3Path):
            location.parent.mkdir(parents=True, exist_ok=True)
            return location
        local = self._new_path(location.name)
        self._pending.append((local, location))
        return local

    def scratch(self, name: str) -> Path:
        """A fresh local directory for intermediate files (deleted at the end)."""
        folder = self._new_path(name)
        folder.mkdir()
        return folder

    def flush(self) -> None:
        """Upload the files written so far (in the order they were asked for)."""
        while self._pending:
            local, location = self._pending[0]
            store_for(location).upload(local, location)
            self._pending.pop(0)

    def _new_path(self, name: str) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="dataproducts-"))
        self._count += 1
        folder = self._scratch / str(self._count)
        folder.mkdir()
        return folder / (name or "object")
