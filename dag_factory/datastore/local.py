"""The local-filesystem store: the data folder is a directory (the default)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from dag_factory.datastore.errors import NotFound
from dag_factory.datastore.stored import StoredFile


def _partial(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".partial")


class LocalStore:
    """Files of a local data folder. Writes go to ``<name>.partial`` and are renamed into
    place (atomic on POSIX), so a reader sees the old file or the complete new one."""

    def exists(self, location: Path) -> bool:
        """True when ``location`` is a regular file."""
        return location.is_file()

    def read_bytes(self, location: Path) -> bytes:
        """The file's content. Raises NotFound when it is absent."""
        try:
            return location.read_bytes()
        except FileNotFoundError:
            raise NotFound(str(location)) from None

    def write_bytes(self, location: Path, data: bytes) -> None:
        """Replace the file's content atomically, creating parent folders."""
        partial = _partial(location)
        partial.write_bytes(data)
        partial.replace(location)

    def upload(self, local: Path, location: Path) -> None:
        """Copy a local file to ``location`` atomically (a no-op when they are the same file)."""
        if local.resolve() == location.resolve():
            return
        partial = _partial(location)
        shutil.copyfile(local, partial)
        partial.replace(location)

    def download(self, location: Path, local: Path) -> None:
        """Copy ``location`` to ``local``. Raises NotFound when it is absent."""
        if not location.is_file():
            raise NotFound(str(location))
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(location, local)

    def list_files(self, location: Path) -> list[StoredFile]:
        """Every file below the folder ``location`` (recursively), sorted; [] when absent."""
        if not location.is_dir():
            return []
        out = []
        for path in sorted(p for p in location.rglob("*") if p.is_file()):
            stat = path.stat()
            out.append(StoredFile(path, path.relative_to(location).as_posix(), stat.st_size,
                                  dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc)))
        return out

    def delete(self, locations: list[Path]) -> None:
        """Delete files; absent ones are skipped."""
        for location in locations:
            location.unlink(missing_ok=True)

    def delete_tree(self, location: Path) -> None:
        """Delete a folder and everything below it; absent is fine."""
        shutil.rmtree(location, ignore_errors=True)
