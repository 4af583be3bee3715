"""The SLO state in failure alerts and the freshness watchdog, end to end: a real Airflow API
server with the plugin on this test session's metadata DB, products run with dag.test(), a real
SMTP server and a real HTTP webhook receiver (tests/test_alerts.py's fixtures).

- a failure message carries the SLO state after this failure, computed in the callback from
  the plugin's JSON API, matching a hand count of the runs;
- without the API the message still goes out, with the impact lines and the reason;
- the watchdog alerts once per staleness episode, then resolves;
- neither the API password nor its token appears in a message or a log.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airflow_services import api_server, http_get, token_for
from helpers import demo_yaml, products_folder, run
from test_alerts import (  # noqa: F401 - fixtures
    ALERTS_BLOCK, WITH_WEBHOOK, assert_no_secrets, free_port, smtp_server,
    webhook_server,
)

JAN1, JAN2 = dt.date(2013, 1, 1), dt.date(2013, 1, 2)
API_CONN_ID = "dataproducts_api"
API_USER = "slo-watch"
API_PASSWORD = "S3CRET-api-pw-5d41402a"
STRICT_GATE = {"row_count: {threshold: {must_be_greater_than: 0}}":
               "row_count: {threshold: {must_be_greater_than: 100}}"}
MISSING_INPUT = {"path: landing/nycflights13/flights/{{ ds }}.csv":
                 "path: landing/nycflights13/not_landed/{{ ds }}.csv"}


def product_yaml(name: str, **replacements: str) -> str:
    """flights_daily renamed ``name``, with email + webhook alerts and the replacements."""
    text = demo_yaml("flights_daily").replace("name: flights_daily", f"name: {name}", 1)
    text = text.replace(ALERTS_BLOCK, WITH_WEBHOOK)
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


# ---------------------------------------------------------------------------------------------
# a real API server with the plugin


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The products folder the runs and the API server share: ``slo_gate`` (a), ``slo_offline``
    (b) and ``slo_stale`` (c, 1h freshness target); names no other test module runs."""
    return products_folder(tmp_path_factory.mktemp("slo-state"), [], {
        "slo_gate.yaml": product_yaml("slo_gate"),
        "slo_offline.yaml": product_yaml("slo_offline", **MISSING_INPUT),
        "slo_stale.yaml": product_yaml("slo_stale", **{"freshness: 26h": "freshness: 1h"}),
    })


@pytest.fixture(scope="module")
def api_base(folder, tmp_path_factory, airflow_db):
    """An Airflow API server on the session's metadata DB with the plugin, the products folder
    above, and one SimpleAuthManager user with the ``viewer`` role (least privilege: it may
    read DAGs, nothing else) whose password is :data:`API_PASSWORD`. Returns the base URL."""
    home = tmp_path_factory.mktemp("slo-api")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({API_USER: API_PASSWORD}))
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__AUTH_MANAGER"}
    env.update({"AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER": str(folder),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{API_USER}:viewer",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                # the watchdog test moves publish times in place (set_publish_time), which no
                # change log shows: read the history whole on every call (no history cache)
                "AIRFLOW__DATAPRODUCTS__SLO_FULL_REFRESH_SECONDS": "0"})
    log = home / "api-server.log"
    with api_server(env, log, free_port()) as base:
        yield base
    assert API_PASSWORD not in log.read_text()


@pytest.fixture
def api_conn(api_base, monkeypatch) -> str:
    """``[dataproducts] api_conn_id`` -> an http connection to the API server with the API
    user's login and password (exchanged for a JWT)."""
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__API_CONN_ID", API_CONN_ID)
    monkeypatch.setenv(f"AIRFLOW_CONN_{API_CONN_ID.upper()}", json.dumps({
        "conn_type": "http", "host": api_base, "login": API_USER, "password": API_PASSWORD,
        "extra": {"timeout": 30, "retries": 1}}))
    return api_base


def task_logs() -> str:
    """Every file under the session's Airflow log folder."""
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file())


def assert_no_api_secrets(*texts: str, token: str | None = None) -> None:
    for text in texts:
        assert API_PASSWORD not in text
        assert "eyJ" not in text, "no JWT (base64 of '{\"') in messages or logs"
        if token:
            assert token not in text


def hand_count(dag_id: str) -> tuple[int, int]:
    """Published (successful) and failed runs of a product, straight from the dag_run table."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        states = [str(s) for (s,) in session.query(DagRun.state).filter(DagRun.dag_id == dag_id)]
    return states.count("success"), states.count("failed")


# ---------------------------------------------------------------------------------------------
# (a) the SLO state after this failure


@pytest.mark.airflow_run
def test_failure_message_carries_the_slo_state_after_this_failure(
        api_conn, folder, data_folder, smtp_server, webhook_server, capfd):
    assert run("slo_gate", JAN1, folder).state == "success"
    (folder / "slo_gate.yaml").write_text(product_yaml("slo_gate", **STRICT_GATE))
    try:
        summary = run("slo_gate", JAN2, folder)
    finally:
        (folder / "slo_gate.yaml").write_text(product_yaml("slo_gate"))
    output = capfd.readouterr()

    assert summary.state == "failed"
    [mail] = [m for m in smtp_server.messages if m["subject"].startswith("[FAIL]")]
    [payload] = [c["json"] for c in webhook_server if c["json"]["kind"] == "failure"]
    published, failed = hand_count("slo_gate")
    assert (published, failed) == (1, 1)
    # the callback ran before the DAG run was marked failed, and counted it as failed
    state = payload["slo_state"]
    assert state["unavailable"] is None and state["runs_counted"] == 2
    assert state["state"] == "BREACHED"
    success = state["success_rate"]
    assert (success["good"], success["bad"], success["pending"], success["late"]) == (
        published, failed, 0, 0)
    assert success["rate"] == 0.5 and success["target"] == 0.99 and success["met"] is False
    assert success["error_budget"] == {"allowed": 0.02, "misses": 1, "remaining": -0.98,
                                       "remaining_fraction": -49.0}
    # all runs are due now: the 30d, 5d and 1d windows hold the same 2 partitions
    assert [success["burn_rates"][w]["rate"] for w in ("window", "long", "short")] == [50.0] * 3
    assert success["fast_burn"] is True
    quality = state["quality_pass_rate"]
    assert (quality["good"], quality["bad"]) == (1, 1), "JAN1's gate passed (or warned), JAN2's not"
    freshness = state["freshness"]
    assert freshness["met"] is True and freshness["target_seconds"] == 26 * 3600
    assert 0 <= freshness["age_seconds"] < 600, "JAN1 published minutes ago"
    assert state["reasons"] == ["success rate: 50% below the 99% target (1 of 2 missed)",
                                "quality pass rate: 50% below the 99% target (1 of 2 missed)"]
    assert state["last_failure"]["run_id"] == summary.run_id
    assert state["last_failure"]["failed_task"] == "quality_gate.verify_contract"

    text = mail["text"]
    assert payload["text"] == text.strip("\n")
    assert "SLO state after this failure: BREACHED (window 30d)" in text
    assert ("  - success rate 50% (1 of 2 partitions published; target 99%): error budget 0.02 "
            "misses, 1 used, -0.98 left; burn rate 50x over 30d, 50x over 5d, 50x over 1d "
            "(fast burn)") in text
    assert "  - quality pass rate 50% (1 of 2 gates passed" in text
    assert "  - freshness: last publish " in text and "(target 26h): met" in text
    assert "  - why: success rate: 50% below the 99% target (1 of 2 missed)" in text
    # the impact lines stay
    assert "success rate (target 99%): counts against it" in text
    assert "freshness (target 26h): at risk" in text

    # the API, now that the run is marked failed, agrees with the callback's count
    status, body = http_get(f"{api_conn}/dataproducts/products/slo_gate",
                            token_for(api_conn, API_USER, API_PASSWORD))
    after = json.loads(body)["slo"]
    assert status == 200 and after["state"] == state["state"]
    for sli in ("success_rate", "quality_pass_rate"):
        assert (after[sli]["good"], after[sli]["bad"]) == (state[sli]["good"], state[sli]["bad"])
        assert after[sli]["error_budget"] == state[sli]["error_budget"]
    # (d) no secret anywhere: messages, and the task logs (dag.test prints them)
    logged = output.out + output.err
    assert f"alert slo_gate/{summary.run_id}/quality_gate.verify_contract/failure sent by " \
        "webhook" in logged, "the callback's log lines are in the captured output"
    assert_no_secrets(mail["html"], json.dumps(payload))
    assert_no_api_secrets(mail["html"], text, json.dumps(webhook_server), logged, task_logs())


# ---------------------------------------------------------------------------------------------
# (b) without the API


@pytest.mark.airflow_run
def test_unreachable_api_still_alerts_with_the_impact_and_the_reason(
        api_conn, folder, data_folder, smtp_server, webhook_server, monkeypatch, capfd):
    closed = free_port()
    monkeypatch.setenv(f"AIRFLOW_CONN_{API_CONN_ID.upper()}", json.dumps({
        "conn_type": "http", "host": f"http://127.0.0.1:{closed}", "login": API_USER,
        "password": API_PASSWORD, "extra": {"timeout": 5, "retries": 1}}))

    summary = run("slo_offline", JAN1, folder)

    output = capfd.readouterr()
    assert summary.state == "failed" and summary.tasks["ingest.flights"][0] == "failed"
    assert len(smtp_server.messages) == 1 and len(webhook_server) == 1
    text = smtp_server.messages[0]["text"]
    reason = (f"API error: cannot reach http://127.0.0.1:{closed} (ConnectionError) after 2 "
              "attempts")
    assert f"SLO state unavailable: {reason}" in text
    assert "SLO state after this failure" not in text
    assert ("success rate (target 99%): counts against it; the partition 2013-01-01 is a miss"
            in text)
    assert "freshness (target 26h): at risk" in text
    payload = webhook_server[0]["json"]
    assert payload["slo_state"] == {"state": None, "unavailable": reason}
    assert payload["slo"]["impact"] and payload["error"].startswith("InputMissing")
    assert_no_api_secrets(text, json.dumps(payload), output.out + output.err)


def test_without_api_conn_id_the_message_says_so(monkeypatch):
    from types import SimpleNamespace

    from dag_factory.alerts import ProductProfile, failure_message

    monkeypatch.delenv("AIRFLOW__DATAPRODUCTS__API_CONN_ID", raising=False)
    profile = ProductProfile(name="p", title="P", version="1.0.0", owner_team="t",
                             owner_email="t@example.com", success_rate="99%", freshness="26h")
    ti = SimpleNamespace(task_id="transform.run_sql", run_id="r-no-api", try_number=1,
                         log_url=None)
    message = failure_message({"ti": ti, "task": SimpleNamespace(retries=0, stage="transform")},
                              profile)
    assert message.slo_state is None
    assert message.slo_state_unavailable == "no [dataproducts] api_conn_id configured"
    assert ("SLO state unavailable: no [dataproducts] api_conn_id configured"
            in message.text())
    assert "success rate (target 99%): counts against it" in message.text()
    assert message.payload()["slo_state"] == {
        "state": None, "unavailable": "no [dataproducts] api_conn_id configured"}


# ---------------------------------------------------------------------------------------------
# (c) the freshness watchdog


def set_publish_time(dag_id: str, moment: dt.datetime) -> None:
    """Move every publish (asset event) of ``dag_id`` to ``moment``: the product's newest
    data is then as old as if nothing had been published since."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(AssetEvent).filter(AssetEvent.source_dag_id == dag_id).update(
            {AssetEvent.timestamp: moment}, synchronize_session=False)


def run_watchdog(folder: Path):
    from dag_factory.build.folder import build_dags
    from dag_factory.build.watchdog import WATCHDOG_DAG_ID
    from dag_factory.runner import dags_folder

    dag = build_dags(folder)[WATCHDOG_DAG_ID]
    with dags_folder(folder):
        dag_run = dag.test()
    return dag_run


@pytest.mark.airflow_run
def test_watchdog_alerts_once_per_staleness_episode_then_resolves(
        api_base, folder, data_folder, smtp_server, webhook_server, monkeypatch, capfd):
    from airflow.models.variable import Variable

    # token mode: the connection's password is a JWT issued beforehand (no login)
    token = token_for(api_base, API_USER, API_PASSWORD)
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__API_CONN_ID", API_CONN_ID)
    monkeypatch.setenv(f"AIRFLOW_CONN_{API_CONN_ID.upper()}", json.dumps({
        "conn_type": "http", "host": api_base, "password": token}))
    first = run("slo_stale", JAN1, folder)
    assert first.state == "success"
    smtp_server.messages.clear(), webhook_server.clear()  # the gate's [WARN], if any
    stale_since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3)
    set_publish_time("slo_stale", stale_since)

    runs = [run_watchdog(folder), run_watchdog(folder)]

    output = capfd.readouterr()
    assert [str(r.state) for r in runs] == ["success", "success"]
    mails = [m for m in smtp_server.messages if m["subject"].startswith("[FRESHNESS]")]
    hooks = [c["json"] for c in webhook_server if c["json"]["kind"] == "freshness"]
    assert len(mails) == 1 and len(hooks) == 1, [m["subject"] for m in smtp_server.messages]
    assert len(smtp_server.messages) == 1 and len(webhook_server) == 1, "nothing else was sent"
    mail, payload = mails[0], hooks[0]
    assert mail["subject"] == \
        "[FRESHNESS] slo_stale: newest data 3h old, over the 1h freshness target"
    assert mail["to"] == ["oncall@example.com"]
    assert mail["headers"]["X-Dataproducts-Severity"] == "FAIL"
    assert mail["headers"]["X-Dataproducts-Kind"] == "freshness"
    text = mail["text"]
    assert f"Freshness: last publish 3h ago, at {stale_since.isoformat()} (target 1h): BREACHED" \
        in text
    assert f"Newest:    partition 2013-01-01 (run {first.run_id})" in text
    assert "Failure:   none on record" in text
    assert "SLO state: BREACHED (window 30d)" in text
    assert "  - why: freshness: last publish 3h ago, over the 1h target" in text
    assert "Owner:    ops-analytics <ops-analytics@example.com>" in text
    assert "Runbook:  https://runbooks.example.com/flights_daily" in text
    assert "DAG:      http://localhost:8080/dags/slo_stale" in text
    assert "SLO page: http://localhost:8080/dataproducts/ui/slo_stale" in text
    assert payload["severity"] == "FAIL" and payload["stage"] == "freshness"
    assert payload["alert_id"] == f"slo_stale/freshness/{stale_since.isoformat()}"
    assert payload["freshness"]["target_seconds"] == 3600
    assert 3 * 3600 <= payload["freshness"]["age_seconds"] < 3 * 3600 + 600
    assert payload["freshness"]["newest_partition"]["run_id"] == first.run_id
    assert payload["slo_state"]["state"] == "BREACHED"
    assert payload["slo_state"]["freshness"]["met"] is False
    remembered = json.loads(Variable.get("dataproducts_slo_watchdog"))["products"]
    assert remembered["slo_stale"]["episode"] == stale_since.isoformat()
    assert set(remembered) == {"slo_stale"}, "fresh or never-run products are not alerted"
    # (d) the token and the password appear nowhere
    assert '"alerted": ["slo_stale"]' in output.out + output.err, "the task's log is captured"
    assert_no_secrets(mail["html"], json.dumps(payload))
    assert_no_api_secrets(mail["html"], text, json.dumps(payload), output.out + output.err,
                          task_logs(), token=token)

    # fresh again: one [RESOLVED] with the same alert_id, and the episode is forgotten
    set_publish_time("slo_stale", dt.datetime.now(dt.timezone.utc))
    run_watchdog(folder)
    resolved = [m for m in smtp_server.messages if m["subject"].startswith("[RESOLVED]")]
    assert len(resolved) == 1 and len(smtp_server.messages) == 2
    assert resolved[0]["subject"].startswith("[RESOLVED] slo_stale: fresh again, newest data ")
    assert resolved[0]["headers"]["X-Dataproducts-Alert"] == payload["alert_id"]
    assert webhook_server[-1]["json"]["kind"] == "freshness_resolved"
    assert "slo_stale" not in json.loads(Variable.get("dataproducts_slo_watchdog"))["products"]

    # stale again: a new episode (another newest publish time) alerts again, once
    set_publish_time("slo_stale", stale_since - dt.timedelta(hours=2))
    run_watchdog(folder), run_watchdog(folder)
    again = [m for m in smtp_server.messages if m["subject"].startswith("[FRESHNESS]")]
    assert len(again) == 2 and "newest data 5h old" in again[1]["subject"]
    assert len(webhook_server) == 3
    assert_no_api_secrets(*(m["html"] for m in smtp_server.messages),
                          json.dumps(webhook_server), capfd.readouterr().out, token=token)


# ---------------------------------------------------------------------------------------------
# units: the watchdog's wiring and decisions, the client, the rendering


def test_watchdog_dag_is_built_only_with_a_watched_product_and_the_api(tmp_path, monkeypatch):
    from dag_factory.build.folder import build_dags
    from dag_factory.build.watchdog import WATCHDOG_DAG_ID

    folder = products_folder(tmp_path, ["fleet_daily"], {
        "slo_stale.yaml": product_yaml("slo_stale"),
        "no_freshness.yaml": product_yaml("no_freshness", **{"  freshness: 26h\n": ""})})
    monkeypatch.delenv("AIRFLOW__DATAPRODUCTS__API_CONN_ID", raising=False)
    assert WATCHDOG_DAG_ID not in build_dags(folder), "no API: a watchdog could only fail"
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__API_CONN_ID", API_CONN_ID)
    dag = build_dags(folder)[WATCHDOG_DAG_ID]
    assert (dag.catchup, dag.max_active_runs) == (False, 1)
    assert dag.timetable.expression == "*/15 * * * *"
    [task] = dag.tasks
    assert list(task.products) == ["slo_stale"], "fleet_daily has no alerts, no_freshness no target"
    assert task.products["slo_stale"].webhook_conn_id == "oncall_webhook"
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__WATCHDOG_SCHEDULE", "@hourly")
    assert build_dags(folder)[WATCHDOG_DAG_ID].timetable.expression == "0 * * * *"
    (tmp_path / "fleet").mkdir()
    alone = products_folder(tmp_path / "fleet", ["fleet_daily"])
    assert WATCHDOG_DAG_ID not in build_dags(alone), "no product has alerts and freshness"


def test_watchdog_without_the_api_fails_its_task(monkeypatch):
    from airflow.sdk.exceptions import AirflowException

    from dag_factory.alerts.freshness import FreshnessWatchdogOperator

    monkeypatch.delenv("AIRFLOW__DATAPRODUCTS__API_CONN_ID", raising=False)
    task = FreshnessWatchdogOperator(task_id="check_freshness", products=[])
    with pytest.raises(AirflowException,
                       match=r"^dataproducts API: no \[dataproducts\] api_conn_id configured$"):
        task.execute({})


def test_watchdog_decides_once_per_episode():
    from dag_factory.alerts.freshness import ALERT, FORGET, KEEP, RESOLVE, decide

    def status(met, published):
        return {"slo": {"freshness": {"met": met, "last_published_at": published}}}

    statuses = {"a": status(False, "t1"), "b": status(False, "t1"), "c": status(True, "t2"),
                "d": status(True, "t3"), "e": status(None, None), "f": status(False, None)}
    remembered = {"a": {"episode": "t1"}, "b": {"episode": "t0"}, "c": {"episode": "t1"},
                  "gone": {"episode": "t0"}}
    decisions = {d.name: (d.action, d.episode)
                 for d in decide(list("abcdefg"), statuses, remembered)}
    assert decisions == {
        "a": (KEEP, "t1"),      # alerted for this episode already
        "b": (ALERT, "t1"),     # a newer publish went stale again: a new episode
        "c": (RESOLVE, "t1"),   # fresh again after an alert (same alert_id as the breach)
        "d": (KEEP, "t3"),      # fresh, never alerted
        "e": (KEEP, "never"),   # not measured
        "f": (ALERT, "never"),  # never published, past the target
        "g": (KEEP, None),      # not returned by the API
        "gone": (FORGET, None),
    }


class _Stub:
    """A local HTTP server answering each (method, path) with a queued (status, JSON body)."""

    def __init__(self):
        self.answers: dict[tuple[str, str], list[tuple[int, object]]] = {}
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                stub.requests.append({"method": self.command, "path": self.path,
                                      "headers": dict(self.headers),
                                      "body": self.rfile.read(length).decode()})
                queue = stub.answers.get((self.command, self.path)) or [(404, {})]
                code, body = queue.pop(0) if len(queue) > 1 else queue[0]
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    server = _Stub()
    yield server
    server.close()


def test_client_exchanges_login_for_a_token_and_retries_then_reports_the_status(stub):
    from dag_factory.slo.api_client import ApiError, DataProductsApi

    stub.answers[("POST", "/auth/token")] = [(201, {"access_token": "eyJ-stub-token"})]
    stub.answers[("GET", "/dataproducts/products")] = [(503, {}), (200, {"products": []})]
    stub.answers[("GET", "/dataproducts/products/p")] = [(503, {"detail": API_PASSWORD})]
    client = DataProductsApi(stub.url + "/", username=API_USER, password=API_PASSWORD,
                             backoff=0.01)
    assert client.list_products() == {"products": []}, "one retry after a 503"
    [login, *gets] = stub.requests
    assert (login["method"], login["path"]) == ("POST", "/auth/token")
    assert json.loads(login["body"]) == {"username": API_USER, "password": API_PASSWORD}
    assert [g["headers"]["Authorization"] for g in gets] == ["Bearer eyJ-stub-token"] * 2
    with pytest.raises(ApiError) as failure:
        client.get_product("p")
    assert str(failure.value) == "HTTP 503 from GET /dataproducts/products/p after 2 attempts"
    assert len(stub.requests) == 5, "the token is fetched once"
    assert API_PASSWORD not in repr(client) and "eyJ" not in repr(client)


def test_client_refused_login_and_bad_connections_never_show_the_password(stub, monkeypatch):
    from dag_factory.slo.api_client import ApiError, ApiNotConfigured, DataProductsApi

    stub.answers[("POST", "/auth/token")] = [(401, {"detail": "Invalid credentials"})]
    monkeypatch.setenv("AIRFLOW_CONN_DP_STUB", json.dumps({
        "conn_type": "http", "host": stub.url, "login": API_USER, "password": API_PASSWORD}))
    client = DataProductsApi.from_connection("dp_stub")
    with pytest.raises(ApiError, match=r"HTTP 401 from POST /auth/token: .*refused") as refused:
        client.list_products()
    assert API_PASSWORD not in str(refused.value) and API_USER not in str(refused.value)
    with pytest.raises(ApiNotConfigured, match="'dp_missing' .* is not defined"):
        DataProductsApi.from_connection("dp_missing")
    monkeypatch.setenv("AIRFLOW_CONN_DP_HOSTLESS", json.dumps({
        "conn_type": "http", "password": "x"}))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    assert DataProductsApi.from_connection("dp_hostless").base_url == "https://airflow.example.com"
    monkeypatch.setenv("AIRFLOW_CONN_DP_PARTS", json.dumps({
        "conn_type": "http", "host": "airflow.internal", "schema": "https", "port": 8443,
        "password": "x"}))
    assert DataProductsApi.from_connection("dp_parts").base_url == "https://airflow.internal:8443"


def test_state_after_failure_replaces_this_runs_record_and_renders(stub):
    from dag_factory.alerts import ProductProfile
    from dag_factory.alerts.slo_state import FailedRun, state_after_failure, state_lines
    from dag_factory.slo.api_client import DataProductsApi

    now = dt.datetime(2026, 3, 31, 12, tzinfo=dt.timezone.utc)
    day = dt.timedelta(days=1)
    runs = []
    for i in range(30):  # 30 daily partitions due in the window, all published ...
        start = now.replace(hour=0) - (30 - i) * day
        runs.append({"run_id": f"r{i}", "partition_start": start.isoformat(),
                     "partition_end": (start + day).isoformat(),
                     "due_at": (start + day).isoformat(), "state": "success", "gate": "pass",
                     "published_at": (start + day).isoformat(),
                     "started_at": (start + day).isoformat()})
    runs[-1].update(state="running", gate=None, published_at=None)  # ... but the last: running
    stub.answers[("GET", "/dataproducts/products/p")] = [(200, {
        "runs": runs, "slo": {"freshness": {"last_published_at": runs[-2]["published_at"]}}})]
    profile = ProductProfile(name="p", title="P", version="1.0.0", owner_team="t",
                             owner_email="t@example.com", freshness="26h", success_rate="99%",
                             quality_pass_rate="99%")
    failed = FailedRun(run_id="r29", task_id="ingest.x", stage="ingest", try_number=1)
    state, reason = state_after_failure(profile, failed, now=now,
                                        client=DataProductsApi(stub.url, token="t"))
    assert reason is None and state["state"] == "BREACHED" and state["runs_counted"] == 30
    success = state["success_rate"]
    assert (success["good"], success["bad"]) == (29, 1), "r29 counts as failed, not pending"
    assert success["error_budget"]["allowed"] == 0.3
    assert state["quality_pass_rate"]["good"] == 29 and state["quality_pass_rate"]["bad"] == 0
    lines = state_lines(state)
    assert lines[0] == ("  - success rate 96.7% (29 of 30 partitions published; target 99%): "
                        "error budget 0.3 misses, 1 used, -0.7 left; burn rate 3.33x over 30d, "
                        "20x over 5d, 100x over 1d (fast burn)")
    assert lines[2] == "  - freshness: last publish 36h ago (target 26h): BREACHED"
    assert lines[3] == "  - why: freshness: last publish 36h ago, over the 26h target"
