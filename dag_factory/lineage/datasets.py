"""OpenLineage dataset names of everything a product run reads and writes.

Names follow the OpenLineage naming conventions, built with ``openlineage.client.naming``:
local files ``file`` + absolute path, S3 ``s3://<bucket>`` + key, Postgres
``postgres://<host>:<port>`` + ``<database>.<schema>.<table>``.

A **published product** is the dataset ``file`` + ``<data_folder>/products/<name>/v<major>``:
the directory of its partitions; on the postgres engine it is its product table,
``postgres://<host>:<port>`` + ``<database>.<schema>.<name>_v<major>``, and its staged output
the run-independent ``<database>.<schema>._stg_<name>_v<major>`` (docs/engines.md). One name per product and major version, the same in the
producer's publish event (output) and in every consumer's ingest event (input), so a lineage
backend draws one connected graph. A new major version is a new dataset.

**Staged data** (between ingest, transform, gate and publish) is named without the run:
``<data_folder>/_staging/<product>/inputs/<input>`` and ``.../output``; the files live in a
per-run folder below, but a per-run name would add a dataset to the backend for every run.

With an ``s3://bucket/prefix`` data folder every such dataset (products, staged data,
``type: file`` inputs and exports) is named ``s3://<bucket>`` + key instead of ``file`` + path.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.naming.dataset import S3, LocalFileSystem, Postgres

from dag_factory.config import data_folder
from dag_factory.datastore import Location, S3Path, under
from dag_factory.engines import warehouse_engine


def _local(path: Path | str) -> LocalFileSystem:
    return LocalFileSystem(path=os.path.abspath(path))


def location_naming(location: Location) -> LocalFileSystem | S3:
    """A data-folder location: ``file`` + absolute path, or ``s3://<bucket>`` + key."""
    if isinstance(location, S3Path):
        return S3(bucket_name=location.bucket, object_key=location.key)
    return _local(location)


def product_naming(product: str, major: int, engine: dict | None = None):
    """Naming of a published product version (see the module docstring); on a warehouse
    engine (``engine``: the operator's engine dict), its product table."""
    warehouse = warehouse_engine(engine)
    if warehouse is not None:
        return warehouse.product_naming(product, major)
    return location_naming(data_folder() / "products" / product / f"v{major}")


def staged_input_naming(product: str, input_name: str) -> LocalFileSystem | S3:
    return location_naming(data_folder() / "_staging" / product / "inputs" / input_name)


def staged_output_naming(product: str, engine: dict | None = None):
    """Naming of the staged output; on a warehouse engine, its staging tables (one name for
    every run, like the files')."""
    warehouse = warehouse_engine(engine)
    if warehouse is not None:
        return warehouse.staged_naming(product, int(engine.get("major", 1)))
    return location_naming(data_folder() / "_staging" / product / "output")


def s3_naming(uri: str) -> S3:
    """``s3://bucket/key`` -> S3 naming (namespace ``s3://bucket``, name ``key``)."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    return S3(bucket_name=bucket, object_key=key)


def file_naming(relative_path: str) -> LocalFileSystem | S3:
    """A path relative to the data folder."""
    root = data_folder()
    if isinstance(root, S3Path):
        return location_naming(under(root, relative_path))
    return _local(root / relative_path)


def postgres_namings(conn_id: str, query: str) -> list[Postgres]:
    """The tables a query reads, named ``postgres://host:port`` + ``db.schema.table``.

    Tables are found with openlineage-sql; a query it cannot parse gives no dataset rather
    than a wrong one. The connection's password is never read into a name.
    """
    from openlineage_sql import parse

    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    if conn.conn_type not in ("postgres", "postgresql"):
        return []
    try:
        meta = parse([query], dialect="postgres")
    except Exception:  # noqa: BLE001 - unparsable SQL: no lineage rather than wrong lineage
        return []
    if meta is None:
        return []
    database = conn.schema or "postgres"
    return [Postgres(host=conn.host or "localhost", port=str(conn.port or 5432),
                     database=table.database or database, schema=table.schema or "public",
                     table=table.name)
            for table in meta.in_tables]


def source_namings(source: dict) -> list:
    """Namings of what an input port (rendered ``source`` dict) reads."""
    kind = source["type"]
    if kind == "file":
        return [file_naming(source["path"])]
    if kind == "s3":
        return [s3_naming(source["uri"])]
    if kind == "http":
        from dag_factory.ingest import redact_url

        parts = urlsplit(redact_url(source["url"]))
        return [_HttpNaming(f"{parts.scheme}://{parts.netloc}", parts.path or "/")]
    if kind == "sql":
        return postgres_namings(source["conn_id"], source["query"])
    if kind == "product":
        return [product_naming(source["product_name"], source["major"])]
    raise ValueError(f"unknown input type {kind!r}")


class _HttpNaming:
    """HTTP resources: namespace ``<scheme>://<host>[:port]``, name the path (no query)."""

    def __init__(self, namespace: str, name: str):
        self._namespace, self._name = namespace, name

    def get_namespace(self) -> str:
        return self._namespace

    def get_name(self) -> str:
        return self._name


def input_dataset(naming, facets: dict | None = None, input_facets: dict | None = None) -> InputDataset:
    """An OpenLineage input dataset from a naming and facets."""
    return InputDataset(namespace=naming.get_namespace(), name=naming.get_name(),
                        facets=facets or {}, inputFacets=input_facets or {})


def output_dataset(naming, facets: dict | None = None, output_facets: dict | None = None) -> OutputDataset:
    """An OpenLineage output dataset from a naming and facets."""
    return OutputDataset(namespace=naming.get_namespace(), name=naming.get_name(),
                         facets=facets or {}, outputFacets=output_facets or {})
