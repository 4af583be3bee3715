"""``type: http`` inputs: a file downloaded with requests, with a timeout and retries."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dag_factory.engines import duckdb as engine
from dag_factory.ingest import redact_url
from dag_factory.ingest.errors import InputMissing


def _session(retries: int):
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=retries, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=("GET", "HEAD"))
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def exists(source: dict, context) -> bool:
    response = _session(0).head(source["url"], timeout=source.get("timeout", 30),
                                allow_redirects=True)
    return response.status_code < 400


def fetch(source: dict, target: Path, context) -> int:
    """Download the URL (streamed) and stage it as Parquet.

    Raises:
        InputMissing: on 404/410 (the URL in the message is redacted).
        requests.HTTPError: on other error statuses, after the retries.
    """
    url = source["url"]
    with _session(source.get("retries", 3)) as session, \
            session.get(url, timeout=source.get("timeout", 30), stream=True) as response:
        if response.status_code in (404, 410):
            raise InputMissing(source["product"], source["name"], "http", redact_url(url),
                               f"HTTP {response.status_code}")
        response.raise_for_status()
        with tempfile.TemporaryDirectory(prefix="dataproducts-http-") as tmp:
            local = Path(tmp) / f"download.{source['format']}"
            with local.open("wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    out.write(chunk)
            con = engine.connect()
            try:
                return engine.file_to_parquet(con, local, source["format"], target,
                                              source.get("csv"))
            finally:
                con.close()
