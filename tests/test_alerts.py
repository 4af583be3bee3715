"""Failure alerts through real Airflow runs (dag.test), a real SMTP server (aiosmtpd on
loopback) and a real HTTP webhook receiver: one message per failed run, none on retries or on a
passing run, a lower-severity one for a warning gate, and no secrets in any of them."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import PRODUCTS, demo_yaml, products_folder, published, run

JAN1, JAN2 = dt.date(2013, 1, 1), dt.date(2013, 1, 2)
WEBHOOK_PASSWORD = "S3CRET-webhook-pw"
ALERTS_BLOCK = "alerts:\n  email: [ops-analytics-oncall@example.com]\n"
WITH_WEBHOOK = "alerts:\n  email: [oncall@example.com]\n  webhook_conn_id: oncall_webhook\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mailbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self):
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("html",)).get_content()
        text = html.unescape(re.sub(r"<[^>]+>", "", body))
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "subject": message["Subject"], "headers": dict(message.items()),
                              "html": body, "text": text})
        return "250 OK"


@pytest.fixture
def smtp_server(monkeypatch):
    """A real SMTP server on 127.0.0.1 (no TLS, no auth); connection ``smtp_default`` to it."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": controller.port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "airflow@example.com",
                  "timeout": 10, "retry_limit": 0}}))
    try:
        yield mailbox
    finally:
        controller.stop()


@pytest.fixture
def webhook_server(monkeypatch):
    """A real HTTP receiver on 127.0.0.1 at /hooks/oncall; connection ``oncall_webhook`` to it
    with basic-auth credentials (which must never appear in an alert)."""
    calls: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's hook name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            calls.append({"path": self.path, "headers": dict(self.headers),
                          "json": json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AIRFLOW_CONN_ONCALL_WEBHOOK", json.dumps({
        "conn_type": "http", "host": f"http://127.0.0.1:{server.server_port}/hooks/oncall",
        "login": "alert-bot", "password": WEBHOOK_PASSWORD}))
    try:
        yield calls
    finally:
        server.shutdown()
        server.server_close()


def flights_with_alerts(**replacements: str) -> str:
    """flights_daily with email + webhook alerts and the given text replacements."""
    text = demo_yaml("flights_daily")
    assert ALERTS_BLOCK in text
    text = text.replace(ALERTS_BLOCK, WITH_WEBHOOK)
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        assert WEBHOOK_PASSWORD not in text
        assert "alert-bot" not in text
        assert "AIRFLOW_CONN" not in text


# ---------------------------------------------------------------------------------------------
# real runs


@pytest.mark.airflow_run
@pytest.mark.usefixtures("airflow_db")
def test_failed_gate_sends_one_email_and_one_webhook_with_the_failing_check(
        data_folder, tmp_path, smtp_server, webhook_server):
    strict = flights_with_alerts(**{
        "row_count: {threshold: {must_be_greater_than: 0}}":
            "row_count: {threshold: {must_be_greater_than: 100}}"})
    folder = products_folder(tmp_path, [], {"flights_daily.yaml": strict})

    summary = run("flights_daily", JAN1, folder)

    assert summary.state == "failed"
    assert summary.tasks["quality_gate.verify_contract"][0] == "failed"
    assert len(smtp_server.messages) == 1, [m["subject"] for m in smtp_server.messages]
    assert len(webhook_server) == 1
    mail = smtp_server.messages[0]
    assert mail["to"] == ["oncall@example.com"] and mail["from"] == "airflow@example.com"
    assert mail["subject"] == "[FAIL] flights_daily: quality_gate failed for 2013-01-01"
    assert mail["headers"]["X-Dataproducts-Severity"] == "FAIL"
    text = mail["text"]
    assert "Product:  flights_daily v1.0.0 - NYC departures - daily carrier performance" in text
    assert "Stage:    quality_gate" in text
    assert "Task:     quality_gate.verify_contract, try 1 of 1" in text
    assert f"Run:      {summary.run_id}" in text
    assert "Interval: 2013-01-01T00:00:00+00:00 to 2013-01-02T00:00:00+00:00" in text
    assert "Quality gate: FAIL (" in text and "nothing was published" in text
    failing = re.search(r"Failing checks:\n  - (.*)\n", text).group(1)
    assert failing == ("Row count meets expected threshold [row_count, dataset]: measured 14, "
                       "threshold must be greater than: 100")
    assert "success rate (target 99%): counts against it" in text
    assert "quality pass rate (target 99%): counts against it" in text
    assert "freshness (target 26h): at risk" in text
    assert "Owner:    ops-analytics <ops-analytics@example.com>" in text
    assert "Runbook:  https://runbooks.example.com/flights_daily" in text
    log_url = re.search(r"Log:      (\S+)", text).group(1)
    assert log_url.startswith("http://localhost:8080/dags/flights_daily/runs/")
    assert log_url.endswith("/tasks/quality_gate.verify_contract?try_number=1")
    assert f'<a href="{log_url}">' in mail["html"], "links are clickable"

    call = webhook_server[0]
    assert call["path"] == "/hooks/oncall"
    assert call["headers"]["Content-Type"] == "application/json"
    assert call["headers"]["Authorization"].startswith("Basic "), "the connection's auth is used"
    payload = call["json"]
    assert payload["schema"] == "dataproducts.alert/v1" and payload["severity"] == "FAIL"
    assert payload["kind"] == "failure" and payload["subject"] == mail["subject"]
    assert payload["alert_id"] == \
        f"flights_daily/{summary.run_id}/quality_gate.verify_contract/failure"
    assert (payload["product"], payload["stage"], payload["task_id"], payload["run_id"]) == (
        "flights_daily", "quality_gate", "quality_gate.verify_contract", summary.run_id)
    assert (payload["try_number"], payload["max_tries"]) == (1, 1)
    assert payload["data_interval"] == {"start": "2013-01-01T00:00:00+00:00",
                                        "end": "2013-01-02T00:00:00+00:00"}
    [check] = payload["quality"]["failed"]
    assert check == {"name": "Row count meets expected threshold", "type": "row_count",
                     "column": None, "value": 14, "threshold": "must be greater than: 100",
                     "rows_tested": None, "percent": None}
    assert payload["error"] is None, "the failing checks replace the exception text"
    assert payload["owner"] == {"team": "ops-analytics", "email": "ops-analytics@example.com",
                                "runbook": "https://runbooks.example.com/flights_daily"}
    assert payload["log_url"] == log_url and payload["text"] == text.strip("\n")
    assert payload["slo"]["targets"] == {"freshness": "26h", "success_rate": "99%",
                                         "quality_pass_rate": "99%", "window": "30d"}
    assert_no_secrets(mail["html"], json.dumps(payload))


@pytest.mark.airflow_run
@pytest.mark.usefixtures("airflow_db")
def test_retried_ingest_alerts_once_after_the_last_try(data_folder, tmp_path, smtp_server,
                                                       webhook_server):
    missing = flights_with_alerts(**{
        "path: landing/nycflights13/flights/{{ ds }}.csv":
            "path: landing/nycflights13/not_landed/{{ ds }}.csv",
        'schedule: "@daily"\n': 'schedule: "@daily"\nretries: 1\nretry_delay: 1s\n'})
    folder = products_folder(tmp_path, [], {"flights_daily.yaml": missing})

    summary = run("flights_daily", JAN1, folder, retries=1)

    assert summary.state == "failed"
    assert summary.tasks["ingest.flights"][0] == "failed"
    assert summary.tasks["ingest.airlines"][0] == "success"
    assert len(smtp_server.messages) == 1, "the first try (up for retry) sends nothing"
    assert len(webhook_server) == 1
    text = smtp_server.messages[0]["text"]
    assert smtp_server.messages[0]["subject"] == \
        "[FAIL] flights_daily: ingest failed for 2013-01-01"
    assert "Stage:    ingest" in text
    assert "Task:     ingest.flights, try 2 of 2" in text
    assert ("Error:    InputMissing: product 'flights_daily': input 'flights' (file) not found at "
            f"{data_folder}/landing/nycflights13/not_landed/2013-01-01.csv") in text
    assert "Quality gate" not in text and "quality pass rate" not in text
    assert ("success rate (target 99%): counts against it; the partition 2013-01-01 is a miss"
            in text)
    assert re.search(r"Log:      \S+/tasks/ingest\.flights\?try_number=2\n?", text)
    payload = webhook_server[0]["json"]
    assert (payload["stage"], payload["task_id"], payload["try_number"], payload["max_tries"]) == (
        "ingest", "ingest.flights", 2, 2)
    assert payload["error"].startswith("InputMissing: product 'flights_daily'")
    assert payload["quality"] is None
    assert_no_secrets(text, json.dumps(payload))


@pytest.mark.airflow_run
@pytest.mark.usefixtures("airflow_db")
def test_warning_gate_sends_one_lower_severity_message(data_folder, tmp_path, smtp_server,
                                                       webhook_server):
    folder = products_folder(tmp_path, [], {"flights_daily.yaml": flights_with_alerts()})

    summary = run("flights_daily", JAN2, folder)  # 2 January trips the warn-level on-time floor

    assert summary.state == "success" and summary.quality["outcome"] == "warn"
    assert published(data_folder, "flights_daily")
    assert len(smtp_server.messages) == 1 and len(webhook_server) == 1
    mail = smtp_server.messages[0]
    assert mail["subject"].startswith("[WARN] flights_daily: quality gate warned for 2013-01-02")
    assert mail["subject"].endswith("(1 check); publishing")
    assert mail["headers"]["X-Dataproducts-Severity"] == "WARN"
    text = mail["text"]
    assert "Task:     quality_gate.verify_contract, try 1 of 1" in text
    assert "Quality gate: WARN (" in text and "the run goes on to publish" in text
    warned = re.search(r"Warned checks:\n  - (.*)\n", text).group(1)
    assert re.fullmatch(r"Carrier on-time rate at least 50% \[invalid, column on_time_pct\]: "
                        r"measured \d+ invalid of \d+ rows \([\d.]+%\), threshold must be: 0",
                        warned), warned
    assert "Failing checks" not in text
    assert "quality pass rate (target 99%): not affected" in text
    payload = webhook_server[0]["json"]
    assert (payload["severity"], payload["kind"]) == ("WARN", "quality_warn")
    assert payload["quality"]["outcome"] == "warn" and payload["quality"]["failed"] == []
    assert payload["quality"]["warned"][0]["name"] == "Carrier on-time rate at least 50%"


@pytest.mark.airflow_run
@pytest.mark.usefixtures("airflow_db")
def test_passing_run_sends_nothing(data_folder, tmp_path, smtp_server, webhook_server):
    passing = flights_with_alerts(**{"valid_min: 50": "valid_min: 0"})
    folder = products_folder(tmp_path, [], {"flights_daily.yaml": passing})

    summary = run("flights_daily", JAN1, folder)

    assert summary.state == "success" and summary.quality["outcome"] == "pass"
    assert smtp_server.messages == [] and webhook_server == []


# ---------------------------------------------------------------------------------------------
# wiring and delivery rules without a run


def test_products_without_alerts_get_no_callbacks():
    from dag_factory.alerts import EmailAlertNotifier
    from dag_factory.build.folder import build_dags

    dags = build_dags(PRODUCTS)
    fleet = dags["fleet_daily"]  # no alerts block
    assert "on_failure_callback" not in fleet.default_args
    assert all(not t.on_failure_callback and not t.on_success_callback
               and not t.on_retry_callback for t in fleet.tasks)
    flights = dags["flights_daily"]  # alerts: email
    for task in flights.tasks:
        assert [type(c) for c in task.on_failure_callback] == [EmailAlertNotifier]
        assert not task.on_retry_callback, "retries never alert"
        assert not task.email, "Airflow's own failure email would be a second message"
    gate = flights.task_dict["quality_gate.verify_contract"]
    assert [c.kind for c in gate.on_success_callback] == ["quality_warn"]
    assert all(not t.on_success_callback for t in flights.tasks if t is not gate)


def logged(capfd) -> str:
    """What was logged (Airflow's structlog writes to the process's stdout/stderr)."""
    out, err = capfd.readouterr()
    return out + err


def _message(**overrides):
    from dag_factory.alerts import AlertMessage, ProductProfile

    profile = ProductProfile(name="p", title="P", version="1.0.0", owner_team="t",
                             owner_email="t@example.com",
                             runbook="https://wiki.example.com/p?token=RUNBOOKSECRET")
    fields = dict(kind="failure", product=profile, stage="ingest", task_id="ingest.x",
                  run_id="r", try_number=1, max_tries=1, interval_start=None, interval_end=None,
                  error="E: boom", slo_impact=("x",))
    fields.update(overrides)
    return AlertMessage(**fields)


def test_error_texts_and_urls_are_redacted_and_trimmed():
    from dag_factory.alerts.message import format_error, safe_url

    error = RuntimeError("could not read https://bob:hunter2@feed.example.com/x.csv?api_key=K3Y "
                         "via postgresql://etl:pg-pass@db.internal:5432/warehouse")
    text = format_error(error)
    assert text == ("RuntimeError: could not read https://***@feed.example.com/x.csv?api_key=*** "
                    "via postgresql://***@db.internal:5432/warehouse")
    long = format_error(ValueError("x" * 5000))
    assert len(long) < 1600 and long.endswith("more characters in the log)")
    assert safe_url("http://h:8080/dags/p/runs/r%3A1/tasks/t?try_number=2&sig=abc") == \
        "http://h:8080/dags/p/runs/r%3A1/tasks/t?try_number=2&sig=***"
    message = _message()
    assert "RUNBOOKSECRET" not in message.text() and "token=***" in message.text()
    assert "RUNBOOKSECRET" not in json.dumps(message.payload())


def test_wrapped_deterministic_errors_name_the_original_exception():
    from airflow.sdk.exceptions import AirflowFailException

    from dag_factory.alerts.message import format_error
    from dag_factory.transform import ContractViolation

    try:
        try:
            raise ContractViolation("column x is missing")
        except ContractViolation as exc:
            raise AirflowFailException(f"ContractViolation: {exc}") from exc
    except AirflowFailException as wrapped:
        assert format_error(wrapped) == "ContractViolation: column x is missing"


def test_undefined_smtp_connection_is_skipped_with_a_warning(capfd):
    from dag_factory.alerts import EmailAlertNotifier

    notifier = EmailAlertNotifier(profile=_message().product, to=["a@example.com"],
                                  smtp_conn_id="no_such_smtp_connection")
    assert notifier.send(_message(), {}) is False
    assert "SMTP connection 'no_such_smtp_connection' is not defined" in logged(capfd)


def test_slack_connection_without_the_slack_provider_is_skipped(monkeypatch, webhook_server,
                                                                 capfd):
    from dag_factory.alerts import WebhookAlertNotifier, slack_available

    if slack_available():
        pytest.skip("apache-airflow-providers-slack is installed here")
    monkeypatch.setenv("AIRFLOW_CONN_ONCALL_SLACK", json.dumps({
        "conn_type": "slackwebhook", "password": "T000/B000/XXXX"}))
    notifier = WebhookAlertNotifier(profile=_message().product, conn_id="oncall_slack")
    assert notifier.send(_message(), {}) is False
    assert webhook_server == []
    assert "apache-airflow-providers-slack is not installed" in logged(capfd)


def test_unknown_alert_kind_is_refused():
    from dag_factory.alerts import WebhookAlertNotifier

    with pytest.raises(ValueError, match="unknown alert kind"):
        WebhookAlertNotifier(profile=_message().product, conn_id="x", kind="page")


def test_slo_impact_names_the_slis_each_failure_counts_against():
    from dag_factory.alerts.message import FAILURE, QUALITY_WARN, slo_impact

    profile = _message().product  # no SLO targets
    assert [line.split(" (")[0] for line in slo_impact(profile, FAILURE, "transform", "d")] == [
        "success rate", "freshness"]
    assert [line.split(" (")[0] for line in slo_impact(profile, FAILURE, "quality_gate", "d")] \
        == ["success rate", "quality pass rate", "freshness"]
    assert "no target set" in slo_impact(profile, FAILURE, "publish", "d")[0]
    [export] = slo_impact(profile, FAILURE, "export", "d")
    assert "not affected" in export and "export port is stale" in export
    assert all("not affected" in line
               for line in slo_impact(profile, QUALITY_WARN, "quality_gate", ""))


def test_a_callback_without_exception_or_interval_still_alerts():
    """The DAG processor runs the failure callback of a task that was killed or lost its
    worker: no exception in the context, and possibly no data interval."""
    from types import SimpleNamespace

    from dag_factory.alerts import failure_message

    ti = SimpleNamespace(task_id="publish.swap_partitions", run_id="r1", try_number=3,
                         log_url="https://airflow.example.com/dags/p/runs/r1/tasks/t?try_number=3")
    task = SimpleNamespace(task_id="publish.swap_partitions", retries=2, stage="publish")
    message = failure_message({"ti": ti, "task": task}, _message().product)
    assert (message.stage, message.try_number, message.max_tries) == ("publish", 3, 3)
    assert message.interval_start is None and "unknown interval" in message.subject
    assert message.error.startswith("no exception was passed to the callback")
    assert ("Log:      https://airflow.example.com/dags/p/runs/r1/tasks/t?try_number=3"
            in message.text())


def test_folder_build_uses_the_configured_sender_and_smtp_connection(monkeypatch):
    """build_dags reads the alert settings once for the folder; every notifier carries them."""
    from dag_factory.build.folder import build_dags

    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__ALERTS_SMTP_CONN_ID", "ops_smtp")
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__ALERTS_FROM_EMAIL", "alerts@example.com")
    flights = build_dags(PRODUCTS)["flights_daily"]
    notifiers = [c for t in flights.tasks for c in [*t.on_failure_callback, *(t.on_success_callback or [])]]
    assert len(notifiers) == len(flights.tasks) + 1
    assert {(n.smtp_conn_id, n.from_email) for n in notifiers} == {("ops_smtp", "alerts@example.com")}
