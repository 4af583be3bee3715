"""Errors of the data folder's storage: what was expected, where, and with which connection
(never its credentials)."""

from __future__ import annotations


class StorageError(OSError):
    """Reading or writing the data folder failed: a missing bucket, denied access, an
    unreachable endpoint. The message names the location, the operation and the connection id."""


class NotFound(FileNotFoundError):
    """A file or object of the data folder is not there.

    Attributes:
        location: where it was expected (a local path or ``s3://`` URI, as text).
    """

    def __init__(self, location: str, detail: str = ""):
        self.location = location
        super().__init__(f"not found: {location}" + (f" ({detail})" if detail else ""))
