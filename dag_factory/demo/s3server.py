"""A local S3 endpoint for the demo and tests: moto's server on 127.0.0.1 (a real S3 API)."""

from __future__ import annotations

import json
import socket
from contextlib import contextmanager
from typing import Iterator

DEMO_CONN_ID = "aws_landing"
# moto accepts any credentials; these are not secrets
_MOTO_KEY, _MOTO_SECRET = "testing", "testing"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connection_json(endpoint_url: str) -> str:
    """An Airflow AWS connection (for ``AIRFLOW_CONN_<ID>``) pointing at ``endpoint_url``."""
    return json.dumps({"conn_type": "aws", "login": _MOTO_KEY, "password": _MOTO_SECRET,
                       "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1"}})


@contextmanager
def moto_s3(port: int | None = None) -> Iterator[str]:
    """Run moto's S3 server on 127.0.0.1 in this process; yields its endpoint URL.

    Raises:
        ImportError: when ``moto[server]`` is not installed.
    """
    from moto.server import ThreadedMotoServer

    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
