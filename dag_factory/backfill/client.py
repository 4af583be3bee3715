"""Airflow's REST API for backfills (``/api/v2``), as one user: what ``dataproducts backfill``
and tests call. The API decides what the user may do; nothing here reads the metadata DB.

Credentials: a JWT (``DATAPRODUCTS_API_TOKEN``), or a user name and password exchanged for
one at ``POST /auth/token`` (what Airflow's SimpleAuthManager and FAB auth manager serve).
Tokens and passwords never appear in errors or output.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

TIMEOUT = (5, 60)  # seconds: connect, read
REPROCESS = ("none", "failed", "completed")


class ApiError(RuntimeError):
    """An API call failed: ``status`` (HTTP status, 0 when unreachable) and Airflow's detail."""

    def __init__(self, what: str, status: int, detail: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {detail}" if status else f"{what}: {detail}")
        self.status = status
        self.detail = detail


def _session() -> requests.Session:
    session = requests.Session()
    retry = Retry(total=3, backoff_factor=0.5, status_forcelist=(502, 503, 504),
                  allowed_methods=frozenset({"GET"}))  # never repeat a create
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def token_for(base_url: str, username: str, password: str) -> str:
    """A JWT for ``username`` from ``POST {base_url}/auth/token``.

    Raises:
        ApiError: wrong credentials (401/403) or an unreachable server.
    """
    try:
        response = _session().post(f"{base_url.rstrip('/')}/auth/token",
                                   json={"username": username, "password": password},
                                   timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise ApiError("login", 0, f"cannot reach {base_url}: {type(exc).__name__}") from None
    if response.status_code >= 400:
        raise ApiError(f"login as {username!r}", response.status_code, _detail(response))
    return response.json()["access_token"]


def _detail(response: requests.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    return str(detail)[:500]


@dataclass
class AirflowApi:
    """Airflow's public REST API at ``base_url`` (e.g. ``http://localhost:8080``) with ``token``."""

    base_url: str
    token: str

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._http = _session()

    def __repr__(self) -> str:  # the token stays out of reprs and tracebacks
        return f"AirflowApi({self.base_url!r})"

    def call(self, method: str, path: str, what: str, **kwargs) -> Any:
        """One request; returns the decoded JSON (None for 204).

        Raises:
            ApiError: a status >= 400 (with Airflow's ``detail``) or an unreachable server.
        """
        try:
            response = self._http.request(method, f"{self.base_url}{path}", timeout=TIMEOUT,
                                          headers={"Authorization": f"Bearer {self.token}"},
                                          **kwargs)
        except requests.RequestException as exc:
            raise ApiError(what, 0, f"cannot reach {self.base_url}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise ApiError(what, response.status_code, _detail(response))
        return response.json() if response.content else None

    def _body(self, dag_id: str, start: dt.date, end: dt.date, reprocess: str,
              max_active_runs: int) -> dict:
        if reprocess not in REPROCESS:
            raise ValueError(f"reprocess must be one of {REPROCESS}, got {reprocess!r}")
        return {"dag_id": dag_id, "from_date": _midnight(start), "to_date": _midnight(end),
                "reprocess_behavior": reprocess, "max_active_runs": max_active_runs}

    def dry_run(self, dag_id: str, start: dt.date, end: dt.date, reprocess: str = "none",
                max_active_runs: int = 1) -> list[str]:
        """Logical dates (ISO) a backfill of ``[start, end]`` would run (``/backfills/dry_run``)."""
        body = self._body(dag_id, start, end, reprocess, max_active_runs)
        result = self.call("POST", "/api/v2/backfills/dry_run", f"dry run of {dag_id}", json=body)
        return [b.get("logical_date") or b.get("partition_key") for b in result["backfills"]]

    def create(self, dag_id: str, start: dt.date, end: dt.date, reprocess: str = "none",
               max_active_runs: int = 1) -> dict:
        """Create the backfill (``POST /backfills``); returns Airflow's BackfillResponse."""
        body = self._body(dag_id, start, end, reprocess, max_active_runs)
        return self.call("POST", "/api/v2/backfills", f"backfill of {dag_id}", json=body)

    def backfill(self, backfill_id: int) -> dict:
        """``GET /backfills/{id}``."""
        return self.call("GET", f"/api/v2/backfills/{backfill_id}", f"backfill {backfill_id}")

    def active_backfills(self, dag_id: str) -> list[dict]:
        """The DAG's backfills not completed yet (Airflow allows one at a time)."""
        result = self.call("GET", "/api/v2/backfills", f"backfills of {dag_id}",
                           params={"dag_id": dag_id, "limit": 100})
        return [b for b in result["backfills"] if not b.get("completed_at")]

    def control(self, backfill_id: int, action: str) -> dict:
        """``pause``, ``unpause`` or ``cancel`` the backfill."""
        if action not in ("pause", "unpause", "cancel"):
            raise ValueError(f"unknown action {action!r}")
        return self.call("PUT", f"/api/v2/backfills/{backfill_id}/{action}",
                         f"{action} backfill {backfill_id}")

    def backfill_runs(self, backfill: dict) -> list[dict]:
        """The backfill's DAG runs: runs of type ``backfill`` with a logical date in its range."""
        runs, offset = [], 0
        while True:
            page = self.call("GET", f"/api/v2/dags/{backfill['dag_id']}/dagRuns",
                             f"runs of {backfill['dag_id']}",
                             params={"run_type": "backfill", "limit": 100, "offset": offset,
                                     "logical_date_gte": backfill["from_date"],
                                     "logical_date_lte": backfill["to_date"]})
            runs.extend(page["dag_runs"])
            offset += len(page["dag_runs"])
            if not page["dag_runs"] or offset >= page["total_entries"]:
                return runs


def _midnight(day: dt.date) -> str:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).isoformat()


@dataclass(frozen=True)
class Progress:
    """A backfill's runs by state, and its expected end.

    Attributes:
        total, done, running, queued, failed: run counts (``done`` = success);
        eta: aware UTC estimate of the end, or None when nothing has finished yet.
    """

    total: int
    done: int
    running: int
    queued: int
    failed: int
    eta: dt.datetime | None

    @property
    def finished(self) -> bool:
        """Every run ended (success or failed)."""
        return self.done + self.failed >= self.total


def progress(runs: list[dict], started_at: dt.datetime, now: dt.datetime) -> Progress:
    """Count ``runs`` (REST DagRun objects) by state; the ETA extrapolates the pace so far
    (ended runs per second since ``started_at``) over the runs not ended."""
    states = [r.get("state") for r in runs]
    done, failed = states.count("success"), states.count("failed")
    running, queued = states.count("running"), states.count("queued")
    ended = done + failed
    eta = None
    if ended and ended < len(runs):
        elapsed = (now - started_at).total_seconds()
        eta = now + dt.timedelta(seconds=elapsed / ended * (len(runs) - ended))
    elif runs and ended == len(runs):
        eta = now
    return Progress(total=len(runs), done=done, running=running, queued=queued, failed=failed,
                    eta=eta)
