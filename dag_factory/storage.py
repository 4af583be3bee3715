"""Where a product's files live under the data folder (write-audit-publish layout).

```
<data_folder>/landing/...                                   inputs as producers land them
<data_folder>/_staging/<product>/<run>/inputs/<input>.parquet   ingested inputs
<data_folder>/_staging/<product>/<run>/output.parquet           transform output (audited)
<data_folder>/_staging/<product>/<run>/quality.json             quality gate results
<data_folder>/products/<product>/v<major>/<key>=<value>/        published partitions
    part-0.parquet, _manifest.json
<data_folder>/_quality/<product>/<run>.json                     gate results history (SLO engine)
```
Staging and published trees share one filesystem, so publish is a rename, not a copy.

With an ``s3://bucket/prefix`` data folder the layout is the same under the prefix (the
functions below return :class:`~dag_factory.datastore.S3Path` locations), except that a
partition's data file has a unique name, ``part-<run>-<token>.parquet``, named by its
``_manifest.json`` (see :mod:`dag_factory.publish.object_swap`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from dag_factory.config import data_folder
from dag_factory.datastore import Location

MANIFEST = "_manifest.json"
PART_FILE = "part-0.parquet"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # Hive's name for the NULL partition


def manifest_text(manifest: dict) -> str:
    """A partition manifest as JSON text, on one line: an indented dump goes through the
    pure-Python encoder, which took ~1 ms per manifest once manifests carried the contract
    (0.4 s of a 365-partition publish, cProfile in docs/benchmarks.md)."""
    return json.dumps(manifest)


def safe_run_id(run_id: str) -> str:
    """A run id made safe as one path segment (``manual__2013-01-01T00:00:00+00:00`` -> ...)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:200]


@dataclass(frozen=True)
class RunPaths:
    """Staging paths of one DAG run of one product (local paths or S3 locations)."""

    root: Location

    def input_file(self, name: str) -> Location:
        return self.root / "inputs" / f"{name}.parquet"

    @property
    def output_file(self) -> Location:
        return self.root / "output.parquet"

    @property
    def quality_file(self) -> Location:
        return self.root / "quality.json"

    @property
    def publish_dir(self) -> Location:
        return self.root / "publish"


def run_paths(product: str, run_id: str, folder: Location | None = None) -> RunPaths:
    """Staging paths for ``product``'s run ``run_id`` under the data folder."""
    return RunPaths((folder or data_folder()) / "_staging" / product / safe_run_id(run_id))


def product_root(product: str, major: int, folder: Location | None = None) -> Location:
    """The published tree of one product version: ``products/<product>/v<major>``."""
    return (folder or data_folder()) / "products" / product / f"v{major}"


def quality_history_file(product: str, run_id: str, folder: Location | None = None) -> Location:
    """Where the gate result of a run is kept for the SLO engine."""
    return (folder or data_folder()) / "_quality" / product / f"{safe_run_id(run_id)}.json"


def partition_dir_name(key: str, value: str) -> str:
    """Hive-style directory name ``key=value`` with the value percent-escaped."""
    return f"{key}={quote(value, safe='-_.:~ ')}".replace(":", "%3A")


def partition_value(dir_name: str) -> tuple[str, str]:
    """Inverse of :func:`partition_dir_name`: ``"flight_date=2013-01-01"`` -> (key, value)."""
    key, _, value = dir_name.partition("=")
    return key, unquote(value)
