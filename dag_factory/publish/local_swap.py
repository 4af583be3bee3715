"""Publishing partitions into a local data folder: directory swaps (see :mod:`.atomic`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from dag_factory.publish.atomic import recover, remove_dir, replace_dir
from dag_factory.storage import PART_FILE


class LocalSwap:
    """Swap built partition directories into ``root`` with :func:`.atomic.replace_dir`.

    Args:
        root: the product's published tree; build_dir: where partitions are built (the run's
        ``_staging/.../publish``, on the same filesystem; emptied first); trash: where replaced
        and removed directories go before deletion (outside the published tree).
    """

    data_file = PART_FILE  # the data file's name in every partition directory

    def __init__(self, root: Path, build_dir: Path, trash: Path):
        self.root, self.build_dir, self.trash = root, build_dir, trash
        shutil.rmtree(build_dir, ignore_errors=True)

    def replace(self, part_dir: Path, manifest: dict) -> dict:
        """Make the built directory ``part_dir`` (data file + manifest) the published partition
        of the same name, atomically; returns the manifest."""
        final = self.root / part_dir.name
        recover(final, self.trash)
        replace_dir(part_dir, final, self.trash)
        return manifest

    def partition_names(self) -> list[str]:
        """Names (``key=value``) of the partition directories under the root, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and "=" in p.name)

    def remove(self, name: str) -> None:
        """Remove a published partition atomically (renamed into the trash, then deleted)."""
        remove_dir(self.root / name, self.trash)
