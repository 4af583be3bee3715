"""A real Airflow deployment for tests on a fresh Postgres metadata database (LocalExecutor).

Two ways to start one:

- :func:`start_airflow`: api-server, scheduler, dag-processor and triggerer as separate
  processes; the API server is healthy before the scheduler starts, so no task starts while
  the execution API cannot answer;
- :func:`start_standalone`: ``airflow standalone`` itself (what ``make up`` runs). It starts
  every component at once, and early tasks then fail with a read timeout, so its DAGs are
  created paused and the test unpauses them once the API server answers
  (:meth:`AirflowServices.unpause`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
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
    health_process: str = "api-server"  # the process whose exit fails wait_healthy()
    passwords: dict[str, str] = field(default_factory=dict)  # user -> password (default: the name)

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

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """Start ``airflow *args`` as component ``name`` (log ``logs/<name>.log``), with the
        services' environment plus ``env``."""
        log = (self.logs / f"{name}.log").open("w")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args], env={**self.env, **(env or {})}, stdout=log,
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
        """Wait until the API server answers (see :func:`wait_until_healthy`)."""
        name = self.health_process
        wait_until_healthy(self.api_url, self.processes[name], self.logs / f"{name}.log", timeout)

    def token(self, user: str = "admin", password: str = "admin") -> str:
        """A JWT of ``user`` from ``POST /auth/token`` (SimpleAuthManager users of the env)."""
        import json

        body = json.dumps({"username": user, "password": password}).encode()
        request = urllib.request.Request(f"{self.api_url}/auth/token", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def api(self, method: str, path: str, body: dict | None = None, user: str = "admin"):
        """Call the REST API as ``user`` (whose password is in ``passwords``, else their
        name); returns the JSON.

        Raises:
            urllib.error.HTTPError: a status >= 400 (its body has Airflow's detail).
        """
        import json

        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.api_url}{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {self.token(user, self.passwords.get(user, user))}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def unpause(self, dag_id: str) -> None:
        """Unpause a DAG through the REST API."""
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None, logical_date: str | None = None,
                run_id: str | None = None) -> dict:
        """Trigger a manual run through ``POST /api/v2/dags/{dag_id}/dagRuns``.

        Args:
            dag_id: the DAG; conf: the run conf; logical_date: ISO timestamp, or None for a
            run without a logical date (Airflow 3); run_id: the run id (default: Airflow's).

        Returns:
            the created DAG run (Airflow's JSON).
        """
        body: dict = {"logical_date": logical_date, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)

    def wait_for(self, condition, timeout: float, what: str, period: float = 2.0):
        """Poll ``condition()`` until it returns something truthy, and return that.

        Raises:
            TimeoutError: naming ``what`` did not happen, with the end of every log.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what} within {timeout:.0f}s\n{self.log_tail()}")
            time.sleep(period)

    def wait_runs_ended(self, expected: dict[str, int], timeout: float = 600,
                        period: float = 2.0) -> dict[str, list[tuple[str, str, str]]]:
        """Wait until each DAG of ``expected`` has at least that many runs and none of its
        runs is queued or running.

        Returns:
            dag_id -> its runs as ``(run_id, run_type, state)``, in ``dag_run.id`` order.

        Raises:
            TimeoutError: with the runs seen last and the end of every log.
        """
        seen: dict[str, list[tuple[str, str, str]]] = {}

        def ended() -> bool:
            seen.clear()
            for dag_id, run_id, run_type, state in self.query(
                    "select dag_id, run_id, run_type, state from dag_run "
                    "where dag_id = any(:dag_ids) order by id",
                    dag_ids=list(expected)) if expected else []:
                seen.setdefault(dag_id, []).append((run_id, str(run_type), str(state)))
            return all(len(seen.get(dag_id, [])) >= n and
                       not any(state in ("queued", "running") for _, _, state in seen.get(dag_id, []))
                       for dag_id, n in expected.items())

        try:
            self.wait_for(ended, timeout, "the runs did not all end", period)
        except TimeoutError as exc:
            raise TimeoutError(f"runs seen: {seen}\n{exc}") from None
        return {dag_id: list(runs) for dag_id, runs in seen.items()}

    def log_tail(self, chars: int = 3000) -> str:
        """The end of every component's log, for assertion messages."""
        return "\n".join(f"--- {p.name}\n{p.read_text()[-chars:]}" for p in sorted(self.logs.glob("*.log")))


@dataclass
class Sampler:
    """Samples the metadata DB every ``period`` seconds in a thread until stopped: per DAG the
    running backfill runs, running and deferred task instances, and per pool the running or
    queued task instances (what counts against a pool)."""

    services: AirflowServices
    period: float = 1.0
    samples: list[dict] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> dict:
        """One sample: ``{"at": aware datetime, "runs": {dag_id: n}, "pools": {pool: n},
        "running_tis": {dag_id: n}, "deferred": {dag_id: n}}``."""
        q = self.services.query
        by_dag = "select dag_id, count(*) from task_instance where state = '{}' group by dag_id"
        return {
            "at": dt.datetime.now(dt.timezone.utc),
            "runs": dict(q("select dag_id, count(*) from dag_run where run_type = 'backfill' "
                           "and state = 'running' group by dag_id")),
            "pools": dict(q("select pool, count(*) from task_instance where state in "
                            "('running', 'queued') group by pool")),
            "running_tis": dict(q(by_dag.format("running"))),
            "deferred": dict(q(by_dag.format("deferred"))),
        }

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.sample())
            except Exception as exc:  # noqa: BLE001 - a failed sample is skipped, not fatal
                print(f"sample failed: {exc}", file=sys.stderr)
            self._stop.wait(self.period)

    def start(self) -> "Sampler":
        threading.Thread(target=self._loop, daemon=True, name="metadata-sampler").start()
        return self

    def stop(self) -> None:
        self._stop.set()


def http_get(url: str, token: str | None = None) -> tuple[int, str]:
    """``GET url`` (with a bearer token if given): ``(status, body text)``, also for 4xx/5xx."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_until_healthy(base_url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait until ``{base_url}/api/v2/monitor/health`` answers 200.

    Raises:
        RuntimeError: ``process`` (the API server, or standalone) exited, with its log's end;
        TimeoutError: no healthy answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited:\n" + log.read_text()[-4000:])
        try:
            with urllib.request.urlopen(f"{base_url}/api/v2/monitor/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"api-server not healthy within {timeout:.0f}s:\n" + log.read_text()[-3000:])
        time.sleep(1)


def token_for(base_url: str, user: str, password: str) -> str:
    """A JWT of ``user`` from ``POST {base_url}/auth/token``."""
    body = json.dumps({"username": user, "password": password}).encode()
    request = urllib.request.Request(f"{base_url}/auth/token", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


@contextlib.contextmanager
def api_server(env: dict[str, str], log: Path, port: int, timeout: float = 120):
    """Run ``airflow api-server`` on 127.0.0.1:``port`` with ``env`` (output to ``log``) until
    the block ends; yields its base URL once ``/api/v2/monitor/health`` answers 200.

    Raises:
        RuntimeError: the server exited; TimeoutError: not healthy within ``timeout`` s.
    """
    server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--port", str(port),
                               "--host", "127.0.0.1"], env=env, stdout=log.open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, server, log, timeout)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _deployment_env(home: Path, products: Path, data: Path, db_url: str, port: int) -> dict[str, str]:
    """The environment every component of a test deployment runs with: this process's
    environment without its ``AIRFLOW*`` settings, plus a fresh home, LocalExecutor with
    parallelism 4, the Postgres DB, the API on 127.0.0.1:``port`` and short scheduler loops."""
    api_url = f"http://127.0.0.1:{port}"
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_FOLDER": str(products),
        "AIRFLOW__DATAPRODUCTS__DATA_FOLDER": str(data),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url.replace("postgresql://", "postgresql+psycopg2://"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        "SODA_CORE_TELEMETRY_ENABLED": "false",
    }


@dataclass(frozen=True)
class Celery:
    """CeleryExecutor settings of a test deployment.

    Attributes:
        broker_url: the Redis broker, e.g. ``redis://127.0.0.1:6379/5`` (see :func:`free_redis_db`);
        workers: how many ``airflow celery worker`` processes to start;
        concurrency: task slots per worker (``[celery] worker_concurrency``).
    """

    broker_url: str
    workers: int = 2
    concurrency: int = 2


WORKER_NAME_VARIABLE = "DATAPRODUCTS_TEST_WORKER"


def worker_env(index: int) -> dict[str, str]:
    """Environment of Celery worker ``index`` (1-based) on top of the common one: its own
    log-server port (several workers share this host) and a host name of its own in
    ``task_instance.hostname`` (through ``[core] hostname_callable``, see tests/worker_hostname.py),
    so a test can tell which worker ran which task."""
    return {
        WORKER_NAME_VARIABLE: f"worker{index}",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_hostname.hostname",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                    os.environ.get("PYTHONPATH")])),
    }


def _celery_env(celery: Celery, db_url: str) -> dict[str, str]:
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": celery.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(celery.concurrency),
    }


def start_airflow(home: Path, products: Path, data: Path, admin_db_url: str, port: int,
                  extra_env: dict[str, str] | None = None,
                  celery: Celery | None = None) -> AirflowServices:
    """Create a fresh Postgres database and start Airflow on it.

    Args:
        home: AIRFLOW_HOME (created); products: the dags/products folder; data: the data folder
        (a path, or an ``s3://`` URI); admin_db_url: a SQLAlchemy URL of the Postgres server
        (for CREATE DATABASE); port: the API server's port; extra_env: more environment (e.g.
        connections); celery: run CeleryExecutor with these workers instead of LocalExecutor.

    Returns:
        the running :class:`AirflowServices` (call ``stop()``); components are named
        ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and ``worker1``...
    """
    db_url = _create_database(admin_db_url)
    api_url = f"http://127.0.0.1:{port}"
    env = {**_deployment_env(home, products, data, db_url, port),
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
           **(_celery_env(celery, db_url) if celery else {}), **(extra_env or {})}
    services = AirflowServices(env=env, db_url=db_url, api_url=api_url, logs=home / "logs")
    services.airflow("db", "migrate")
    services.start("api-server", "api-server", "--port", str(port), "--host", "127.0.0.1")
    try:
        services.wait_healthy()
        for index in range(1, (celery.workers if celery else 0) + 1):
            services.start(f"worker{index}", "celery", "worker", "--celery-hostname",
                           f"worker{index}@%h", env=worker_env(index))
        services.start("scheduler", "scheduler")
        services.start("dag-processor", "dag-processor")
        services.start("triggerer", "triggerer")
    except Exception:
        services.stop()
        raise
    return services


def free_redis_db(host: str = "127.0.0.1", port: int = 6379) -> str:
    """The URL of an empty Redis database (1-15) for a test's Celery broker.

    Raises:
        RuntimeError: when every database holds keys (another deployment uses them).
    """
    import redis

    for number in range(15, 0, -1):
        client = redis.Redis(host=host, port=port, db=number)
        try:
            if client.dbsize() == 0:
                return f"redis://{host}:{port}/{number}"
        finally:
            client.close()
    raise RuntimeError(f"no empty Redis database on {host}:{port} for the Celery broker")


def flush_redis_db(url: str) -> None:
    """Empty the broker database a test used (:func:`free_redis_db`)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _create_database(admin_db_url: str) -> str:
    name = f"dp_it_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(admin_db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'create database "{name}"'))
    admin.dispose()
    return admin_db_url.rsplit("/", 1)[0] + f"/{name}"


def start_standalone(home: Path, products: Path, data: Path, admin_db_url: str, port: int,
                     extra_env: dict[str, str] | None = None, *,
                     passwords: dict[str, str] | None = None,
                     component_env: dict[str, str] | None = None) -> AirflowServices:
    """Create a fresh Postgres database and run ``airflow standalone`` on it (LocalExecutor,
    parallelism 4, user ``admin``/``admin``, DAGs paused at creation: see the module docstring).

    Args:
        home, products, data, admin_db_url, port, extra_env: as :func:`start_airflow`.
        passwords: more SimpleAuthManager users' passwords (user -> password), written to the
            passwords file next to admin's; list the users themselves in ``extra_env``'s
            ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS``.
        component_env: environment the components (api-server, scheduler, dag-processor,
            triggerer) get even where ``standalone`` sets its own: it forces
            ``[core] auth_manager`` to SimpleAuthManager, so a test's own auth manager goes
            here. Standalone starts the components as ``airflow`` from PATH: a shim of that
            name in ``home/bin``, first on PATH, exports these and runs this Python's Airflow.

    Returns:
        the running :class:`AirflowServices` (one process, ``standalone``; call ``stop()``).
    """
    db_url = _create_database(admin_db_url)
    api_url = f"http://127.0.0.1:{port}"
    env = {
        **_deployment_env(home, products, data, db_url, port),
        # standalone starts `airflow` from PATH
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        **(extra_env or {}),
        **(component_env or {}),
    }
    if component_env:
        shim = home / "bin" / "airflow"
        shim.parent.mkdir(exist_ok=True)
        exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in component_env.items())
        shim.write_text(f"#!/bin/sh\n{exports}exec {shlex.quote(sys.executable)} -m airflow \"$@\"\n")
        shim.chmod(0o755)
        env["PATH"] = str(shim.parent) + os.pathsep + env["PATH"]
    # SimpleAuthManager keeps the passwords it finds here and generates only missing ones
    users = {"admin": "admin", **(passwords or {})}
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps(users))
    services = AirflowServices(env=env, db_url=db_url, api_url=api_url, logs=home / "logs",
                               passwords=users)
    services.start("standalone", "standalone")
    services.health_process = "standalone"
    try:
        services.wait_healthy(timeout=240)
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
