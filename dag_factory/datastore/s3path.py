"""``S3Path``: a location in an S3 bucket, joined like a path (``root / "products" / name``)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

SCHEME = "s3://"


@dataclass(frozen=True)
class S3Path:
    """An S3 location: ``bucket`` and ``key`` (no leading or trailing ``/``; ``""`` = the
    bucket's root). A pure value: it never touches the network, and it has no ``__fspath__``,
    so handing one to code that expects a local file fails loudly.

    ``S3Path("b", "data") / "products/x"`` -> ``s3://b/data/products/x``.
    """

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, uri: str) -> "S3Path":
        """``s3://bucket[/key]`` -> S3Path.

        Raises:
            ValueError: when ``uri`` is not ``s3://`` followed by a bucket name.
        """
        if not uri.startswith(SCHEME):
            raise ValueError(f"expected an s3://bucket/prefix URI, got {uri!r}")
        bucket, _, key = uri[len(SCHEME):].partition("/")
        if not bucket:
            raise ValueError(f"expected an s3://bucket/prefix URI with a bucket name, got {uri!r}")
        return cls(bucket, key.strip("/"))

    def __truediv__(self, part: str) -> "S3Path":
        part = str(part).strip("/")
        if not part:
            return self
        return S3Path(self.bucket, f"{self.key}/{part}" if self.key else part)

    @property
    def name(self) -> str:
        """The last segment of the key (``""`` for the bucket's root)."""
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> "S3Path":
        return S3Path(self.bucket, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    @property
    def prefix(self) -> str:
        """The key as a listing prefix of what lies below: ``key/`` (``""`` for the root)."""
        return f"{self.key}/" if self.key else ""

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}" if self.key else f"{SCHEME}{self.bucket}"

    def normalized(self) -> "S3Path":
        """The key with ``.`` and ``..`` segments resolved (``a/../b`` -> ``b``)."""
        if not self.key:
            return self
        key = posixpath.normpath("/" + self.key).lstrip("/")
        return S3Path(self.bucket, key)

    def is_relative_to(self, other: "S3Path") -> bool:
        """True when this location lies below ``other`` (or is it)."""
        return self.bucket == other.bucket and (
            not other.key or self.key == other.key or self.key.startswith(other.prefix))

    def __str__(self) -> str:
        return self.uri
