"""A small client for the plugin's JSON API (``/dataproducts/products``), for code that runs in
tasks and task callbacks, where Airflow 3 forbids the ORM: the SLO state comes from the API
server, which computes it from the metadata DB (docs/alerts.md, "SLO state").

Configuration, Airflow's ``[dataproducts]`` section (env ``AIRFLOW__DATAPRODUCTS__API_CONN_ID``):

- ``api_conn_id``: an Airflow connection (type ``http``) to the API server, read through the
  Task SDK (secrets backends, env ``AIRFLOW_CONN_<ID>``), never the ORM:

  * **host**: the API server's base URL, a full URL (``https://airflow.example.com``, a path
    prefix allowed) or a host name with ``schema`` (scheme, default ``http``) and ``port``;
    empty: Airflow's ``[api] base_url``;
  * **login + password**: exchanged for a JWT at ``POST {base}/auth/token`` (served by the
    SimpleAuthManager and by the FAB auth manager), once per client;
  * **password without login**: used as the bearer token itself (a JWT issued beforehand);
  * extras ``timeout`` (seconds per request, default 10) and ``retries`` (extra attempts on a
    connection error, a timeout or HTTP 502/503/504, default 1).

The API answers only for DAGs the user may read, so the user needs read access to every
product DAG and nothing more (a ``viewer``).

Secrets (password, token) never appear in a log line, an exception or a ``repr``: errors name
the method, the path and the HTTP status only, and a token obtained here is registered with
Airflow's secrets masker.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Iterable, Mapping
from urllib.parse import quote

from dag_factory.slo.history import RunRecord

SECTION = "dataproducts"
PRODUCTS_PATH = "/dataproducts/products"
TOKEN_PATH = "/auth/token"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 1
#: Seconds before the first retry; doubled for each further one.
DEFAULT_BACKOFF = 0.5
RETRY_STATUSES = frozenset({502, 503, 504})

log = logging.getLogger(__name__)


class ApiError(Exception):
    """The API could not answer. ``str()`` is safe to show (no secret, no response body).

    Attributes:
        reason: e.g. ``"HTTP 503 from GET /dataproducts/products"`` or
            ``"cannot reach http://airflow:8080 (ConnectionError)"``.
        status: the HTTP status, or None (no answer, or not configured).
    """

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class ApiNotConfigured(ApiError):
    """No ``[dataproducts] api_conn_id``, or its connection is missing or has no URL."""


def api_conn_id() -> str | None:
    """``[dataproducts] api_conn_id``, or None when unset or empty."""
    from airflow.sdk import conf

    return conf.get(SECTION, "api_conn_id", fallback=None) or None


def _default_base_url() -> str | None:
    from airflow.sdk import conf

    return conf.get("api", "base_url", fallback=None) or None


def _redacted(url: str) -> str:
    from dag_factory.ingest import redact_url

    try:
        return redact_url(url)
    except ValueError:
        return "<url redacted>"


def base_url_of(conn: Any) -> str | None:
    """The API base URL of an http connection (no trailing slash), None without a host.

    ``host`` may be a full URL (its scheme, port and path are kept) or a bare host name, then
    combined with ``schema`` (scheme, default ``http``) and ``port``.
    """
    host = (getattr(conn, "host", None) or "").strip()
    if not host:
        return None
    if "://" not in host:
        scheme = (getattr(conn, "schema", None) or "http").strip() or "http"
        port = getattr(conn, "port", None)
        host = f"{scheme}://{host}" + (f":{port}" if port and ":" not in host else "")
    return host.rstrip("/")


class DataProductsApi:
    """A client of the plugin's JSON API with a timeout and retries.

    Args:
        base_url: the API server's base URL (``http://airflow:8080``), no ``/dataproducts``.
        username, password: exchanged for a JWT at ``POST {base_url}/auth/token`` on the first
            call; token: a bearer token to send as is (then no exchange). Neither: no
            ``Authorization`` header (every plugin route answers 401).
        timeout: seconds per request (connect and read); retries: extra attempts after a
            connection error, a timeout or HTTP 502/503/504; backoff: seconds before the first
            retry, doubled for each further one.

    Secrets are kept out of ``repr`` and of every exception.
    """

    def __init__(self, base_url: str, *, username: str | None = None,
                 password: str | None = None, token: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 backoff: float = DEFAULT_BACKOFF) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self._username = username
        self._password = password
        self._token = token
        self._exchanged = False  # whether _token came from /auth/token (re-fetched on a 401)
        self._session = None

    def __repr__(self) -> str:
        auth = ("login" if self._username and self._password
                else "token" if self._token else "none")
        return f"DataProductsApi(base_url={_redacted(self.base_url)!r}, auth={auth})"

    @classmethod
    def from_connection(cls, conn_id: str) -> "DataProductsApi":
        """The client of an Airflow http connection (see the module docstring).

        Raises:
            ApiNotConfigured: the connection is not defined, or has no host while
                ``[api] base_url`` is unset, or has a malformed ``timeout``/``retries`` extra.
        """
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise ApiNotConfigured(f"connection {conn_id!r} ([dataproducts] api_conn_id) is "
                                   "not defined") from None
        base = base_url_of(conn) or _default_base_url()
        if not base:
            raise ApiNotConfigured(f"connection {conn_id!r} has no host and [api] base_url "
                                   "is not set")
        extra = getattr(conn, "extra_dejson", None) or {}
        try:
            timeout = float(extra.get("timeout", DEFAULT_TIMEOUT))
            retries = int(extra.get("retries", DEFAULT_RETRIES))
        except (TypeError, ValueError):
            raise ApiNotConfigured(f"connection {conn_id!r}: the extras timeout and retries "
                                   "must be numbers") from None
        login, password = conn.login or None, conn.password or None
        if login and password:
            return cls(base, username=login, password=password, timeout=timeout,
                       retries=retries)
        return cls(base, token=password, timeout=timeout, retries=retries)

    @classmethod
    def from_config(cls) -> "DataProductsApi":
        """The client of ``[dataproducts] api_conn_id``.

        Raises:
            ApiNotConfigured: the setting is missing (reason ``no [dataproducts] api_conn_id
                configured``) or its connection is unusable (see :meth:`from_connection`).
        """
        conn_id = api_conn_id()
        if not conn_id:
            raise ApiNotConfigured("no [dataproducts] api_conn_id configured")
        return cls.from_connection(conn_id)

    # -- routes -------------------------------------------------------------------------------

    def list_products(self) -> dict[str, Any]:
        """``GET /dataproducts/products``: ``{"evaluated_at", "products": [status...],
        "invalid_specs": [...]}``, every readable product's SLO status without its runs.

        Raises:
            ApiError: no answer after the retries, a non-2xx status, or a body that is not a
                JSON object.
        """
        return self._get_json(PRODUCTS_PATH)

    def get_product(self, name: str) -> dict[str, Any]:
        """``GET /dataproducts/products/{name}``: the product's status with ``runs`` (the run
        records of its SLO window, newest first; shape: :func:`record_from_json`).

        Raises:
            ApiError: as :meth:`list_products`; status 404 when the product is unknown or not
                readable by the API user.
        """
        return self._get_json(f"{PRODUCTS_PATH}/{quote(name, safe='')}")

    # -- plumbing -----------------------------------------------------------------------------

    def _get_json(self, path: str) -> dict[str, Any]:
        response = self._request("GET", path, auth=True)
        if response.status_code == 401 and self._exchanged:
            self._token, self._exchanged = None, False  # expired: log in again, once
            response = self._request("GET", path, auth=True)
        return self._json(response, "GET", path)

    def _json(self, response, method: str, path: str) -> dict[str, Any]:
        if not 200 <= response.status_code < 300:
            raise ApiError(f"HTTP {response.status_code} from {method} {path}",
                           response.status_code)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(f"{method} {path} did not answer with a JSON object",
                           response.status_code)
        return body

    def _headers(self, auth: bool) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if auth:
            token = self._bearer()
            if token:
                headers["Authorization"] = f"Bearer {token}"
        return headers

    def _bearer(self) -> str | None:
        if self._token or not (self._username and self._password):
            return self._token
        response = self._request("POST", TOKEN_PATH, auth=False,
                                 json={"username": self._username, "password": self._password})
        if response.status_code in (401, 403):
            raise ApiError(f"HTTP {response.status_code} from POST {TOKEN_PATH}: the API "
                           "connection's login or password was refused", response.status_code)
        token = self._json(response, "POST", TOKEN_PATH).get("access_token")
        if not isinstance(token, str) or not token:
            raise ApiError(f"POST {TOKEN_PATH} answered without an access_token",
                           response.status_code)
        _mask(token)
        self._token, self._exchanged = token, True
        return token

    def _request(self, method: str, path: str, *, auth: bool, json: Any = None):
        import requests

        if self._session is None:
            self._session = requests.Session()
        url = self.base_url + path
        attempts = 1 + self.retries
        for attempt in range(attempts):
            last, status = attempt == attempts - 1, None
            try:
                response = self._session.request(method, url, headers=self._headers(auth),
                                                 json=json, timeout=self.timeout,
                                                 allow_redirects=False)
            except requests.Timeout:
                problem = (f"no answer from {_redacted(self.base_url)} within {self.timeout:g}s "
                           f"({method} {path})")
            except requests.RequestException as exc:
                problem = f"cannot reach {_redacted(self.base_url)} ({type(exc).__name__})"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                problem = f"HTTP {response.status_code} from {method} {path}"
                status = response.status_code
            if last:
                raise ApiError(problem + (f" after {attempts} attempts" if attempts > 1 else ""),
                               status)
            log.info("dataproducts API: %s; retrying", problem)
            time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _mask(secret: str) -> None:
    """Register ``secret`` with Airflow's secrets masker (task logs show ``***``)."""
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
    except Exception:  # noqa: BLE001 - outside a task there may be no masker: nothing to mask
        pass


# -- JSON -> engine records ---------------------------------------------------------------------


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 timestamp of the API as an aware datetime (naive ones taken as UTC);
    None for None or an empty string.

    Raises:
        ValueError: a malformed timestamp.
    """
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}")
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def record_from_json(data: Mapping[str, Any]) -> RunRecord:
    """One run of ``GET /dataproducts/products/{name}`` (``runs[i]``) as a :class:`RunRecord`.

    Args:
        data: ``{"run_id", "partition_start", "partition_end", "due_at", "state", "gate",
            "published_at", "started_at", "failed_stage", "failed_task", "error",
            "failing_checks", "log_url"}``, timestamps in ISO 8601.

    Raises:
        ValueError: a missing key, a malformed timestamp, an unknown state or gate.
    """
    try:
        return RunRecord(
            run_id=str(data["run_id"]), partition_start=parse_time(data["partition_start"]),
            partition_end=parse_time(data["partition_end"]), due_at=parse_time(data["due_at"]),
            state=data["state"], gate=data.get("gate"),
            published_at=parse_time(data.get("published_at")),
            started_at=parse_time(data.get("started_at")),
            failed_stage=data.get("failed_stage"), failed_task=data.get("failed_task"),
            error=data.get("error"), failing_checks=data.get("failing_checks"),
            log_url=data.get("log_url"))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a run record: {type(exc).__name__}: {exc}") from None


def records_from_json(runs: Iterable[Mapping[str, Any]]) -> tuple[list[RunRecord], int]:
    """The run records of a product's ``runs``, leaving out malformed ones.

    Returns:
        (records in input order, number of runs left out).
    """
    records, skipped = [], 0
    for run in runs or ():
        try:
            records.append(record_from_json(run))
        except ValueError:
            skipped += 1
    return records, skipped
