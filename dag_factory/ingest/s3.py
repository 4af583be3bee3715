"""``type: s3`` inputs: one object read through the amazon provider's S3Hook."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dag_factory.engines import duckdb as engine
from dag_factory.ingest.errors import InputMissing


def _hook(source: dict):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=source.get("conn_id") or "aws_default")


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook.parse_s3_url(uri)


def exists(source: dict, context) -> bool:
    bucket, key = split_uri(source["uri"])
    return _hook(source).check_for_key(key, bucket_name=bucket)


def fetch(source: dict, target: Path, context) -> int:
    """Download the object to a temp file and stage it as Parquet.

    Raises:
        InputMissing: when the bucket or key does not exist.
    """
    bucket, key = split_uri(source["uri"])
    hook = _hook(source)
    if not hook.check_for_key(key, bucket_name=bucket):
        raise InputMissing(source["product"], source["name"], "s3", source["uri"],
                           f"connection {source.get('conn_id')!r}")
    with tempfile.TemporaryDirectory(prefix="dataproducts-s3-") as tmp:
        local = Path(tmp) / Path(key).name
        hook.get_conn().download_file(bucket, key, str(local))
        con = engine.connect()
        try:
            return engine.file_to_parquet(con, local, source["format"], target, source.get("csv"))
        finally:
            con.close()
