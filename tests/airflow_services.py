"""A real Airflow deployment for tests: api-server, scheduler (LocalExecutor), dag-processor
and triggerer as separate processes on a fresh Postgres metadata database.

The API server is started and healthy before the scheduler, so no task starts while the
execution API cannot answer (``airflow standalone`` starts them together, and early tasks
then fail with a read timeout and wait out their retry delay).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy


@dataclass
class AirflowServices:
    """Handle on the running services.

    Attributes:
        env: the environment every component runs with; db_url: its metadata DB;
        api_url: the API server's base URL; logs: folder with one log file per component.
    """

    env: dict[str, str]
    db_url: str
    api_url: str
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run an ``airflow`` CLI command with the services' environment."""
        done = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env,
                              capture_output=True, text=True, timeout=300)
        if check and done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        return done

    def query(self, sql: str, **params) -> list[tuple]:
        """Rows of a read-only query on the metadata DB."""
        engine = sqlalchemy.create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sqlalchemy.text(sql), params)]
        finally:
            engine.dispose()

    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("w")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args], env=self.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes["api-server"].poll() is not None:
                raise RuntimeError("api-server exited:\n" + (self.logs / "api-server.log").read_text()[-4000:])
            try:
                with urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"api-server not healthy within {timeout}s")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of every component's log, for assertion messages."""
        return "\n".join(f"--- {p.name}\n{p.read_text()[-chars:]}" for p in sorted(self.logs.glob("*.log")))


def start_airflow(home: Path, products: Path, data: Path, admin_db_url: str, port: int,
                  extra_env: dict[str, str] | None = None) -> AirflowServices:
    """Create a fresh Postgres database and start Airflow on it.

    Args:
        home: AIRFLOW_HOME (created); products: the dags/products folder; data: the data folder;
        admin_db_url: a SQLAlchemy URL of the Postgres server (for CREATE DATABASE);
        port: the API server's port; extra_env: more environment (e.g. connections).

    Returns:
        the running :class:`AirflowServices` (call ``stop()``).
    """
    name = f"dp_it_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(admin_db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'create database "{name}"'))
    admin.dispose()
    db_url = admin_db_url.rsplit("/", 1)[0] + f"/{name}"
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    api_url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_FOLDER": str(products),
        "AIRFLOW__DATAPRODUCTS__DATA_FOLDER": str(data),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url.replace("postgresql://", "postgresql+psycopg2://"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
        "SODA_CORE_TELEMETRY_ENABLED": "false",
        **(extra_env or {}),
    }
    services = AirflowServices(env=env, db_url=db_url, api_url=api_url, logs=home / "logs")
    services.airflow("db", "migrate")
    services.start("api-server", "api-server", "--port", str(port), "--host", "127.0.0.1")
    try:
        services.wait_healthy()
        services.start("scheduler", "scheduler")
        services.start("dag-processor", "dag-processor")
        services.start("triggerer", "triggerer")
    except Exception:
        services.stop()
        raise
    return services


def drop_database(admin_db_url: str, db_url: str) -> None:
    """Drop the test's metadata database (after the services stopped)."""
    name = db_url.rsplit("/", 1)[1]
    admin = sqlalchemy.create_engine(admin_db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()
