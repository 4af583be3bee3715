"""The plugin in a real Airflow API server: JSON API values against a hand count of the DAG
runs, authentication (401) and per-DAG authorization, the HTML page rendered by Chromium."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, missing
from dag_factory.demo.s3server import free_port
from helpers import demo_yaml, products_folder, run

pytestmark = [pytest.mark.airflow_run, pytest.mark.usefixtures("airflow_db")]
DAYS = [dt.date(2013, 1, 1), dt.date(2013, 1, 2)]


def request(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def token_for(base: str, user: str, password: str) -> str:
    body = json.dumps({"username": user, "password": password}).encode()
    req = urllib.request.Request(f"{base}/auth/token", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["access_token"]


def clear_history(dag_ids: list[str]) -> None:
    """Start from no history: other tests of the session ran these products too."""
    from airflow.models.asset import AssetEvent
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for model, column in ((XComModel, XComModel.dag_id), (TaskInstance, TaskInstance.dag_id),
                              (DagRun, DagRun.dag_id), (AssetEvent, AssetEvent.source_dag_id)):
            session.query(model).filter(column.in_(dag_ids)).delete(synchronize_session=False)


@pytest.fixture(scope="module")
def history(seeded_folder, tmp_path_factory):
    """Two days of every demo product plus one failing gate of flights_daily, in the test
    session's metadata DB; returns the data folder."""
    clear_history(["flights_daily", "weather_daily", "delays_weather_daily", "fleet_daily"])
    data = tmp_path_factory.mktemp("plugin-data")
    (data / "landing").symlink_to(seeded_folder / "landing")
    os.environ["AIRFLOW__DATAPRODUCTS__DATA_FOLDER"] = str(data)
    try:
        for day in DAYS:
            for name in ("flights_daily", "weather_daily", "delays_weather_daily"):
                assert run(name, day).state == "success"
        strict = demo_yaml("flights_daily").replace(
            "row_count: {threshold: {must_be_greater_than: 0}}",
            "row_count: {threshold: {must_be_greater_than: 100}}")
        broken = demo_yaml("weather_daily").replace("name: weather_daily", "name: weather_broken") \
            .replace("  - name: observations\n", "  - name: observations\n    formt: csv\n", 1)
        folder = products_folder(tmp_path_factory.mktemp("strict"),
                                 ["weather_daily", "delays_weather_daily", "fleet_daily"],
                                 {"flights_daily.yaml": strict, "weather_broken.yaml": broken})
        # the run also syncs this folder's DAGs, the broken file's placeholder included
        assert run("flights_daily", dt.date(2013, 1, 3), folder).state == "failed"
    finally:
        os.environ["AIRFLOW__DATAPRODUCTS__DATA_FOLDER"] = str(Path(os.environ["AIRFLOW_HOME"]).parent / "data")
    return data, folder


@pytest.fixture(scope="module")
def api(history):
    """An Airflow API server on the session's metadata DB with the plugin installed."""
    port = free_port()
    data, folder = history
    env = {**os.environ, "AIRFLOW__DATAPRODUCTS__DATA_FOLDER": str(data),
           "AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER": str(folder),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,outsider:viewer",
           "AIRFLOW__CORE__AUTH_MANAGER": "restricted_auth_manager.RestrictedAuthManager",
           "DATAPRODUCTS_TEST_DENIED_DAGS": "weather_daily",
           "PYTHONPATH": str(REPO / "tests") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = Path(os.environ["AIRFLOW_HOME"]) / "api-server.log"
    server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--port", str(port),
                               "--host", "127.0.0.1"], env=env, stdout=log.open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail("api-server exited:\n" + log.read_text()[-3000:])
            try:
                if request(f"{base}/api/v2/monitor/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        passwords = json.loads((Path(os.environ["AIRFLOW_HOME"]) /
                                "simple_auth_manager_passwords.json.generated").read_text())
        yield base, {user: token_for(base, user, pw) for user, pw in passwords.items()}, str(folder)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def hand_count(dag_id: str) -> tuple[int, int]:
    """Published and failed runs of a product, straight from the dag_run table."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        states = [str(s) for (s,) in session.query(DagRun.state).filter(DagRun.dag_id == dag_id)]
    return states.count("success"), states.count("failed")


def test_json_api_matches_a_hand_count_of_the_runs(api):
    base, tokens, _ = api
    status, body = request(f"{base}/dataproducts/products", tokens["admin"])
    assert status == 200, body
    products = {p["name"]: p for p in json.loads(body)["products"]}
    assert set(products) == {"delays_weather_daily", "fleet_daily", "flights_daily", "weather_daily"}
    good, bad = hand_count("flights_daily")
    flights = products["flights_daily"]["slo"]
    assert (flights["success_rate"]["good"], flights["success_rate"]["bad"]) == (good, bad) == (len(DAYS), 1)
    assert flights["quality_pass_rate"]["bad"] == 1
    assert flights["state"] == "BREACHED"  # 2 of 3 published against a 99% target
    assert flights["last_failure"]["failed_task"] == "quality_gate.verify_contract"
    assert "/runs/" in flights["last_failure"]["log_url"]
    weather = products["weather_daily"]["slo"]
    assert weather["success_rate"]["good"] == len(DAYS) and weather["quality_pass_rate"]["warned"] >= 1
    assert products["fleet_daily"]["slo"]["state"] == "NO DATA"
    invalid = json.loads(body)["invalid_specs"]
    assert [(i["file"], i["dag_id"]) for i in invalid] == [("weather_broken.yaml", "weather_broken")]
    assert any("inputs[0].formt: unknown key" in e for e in invalid[0]["errors"])

    status, body = request(f"{base}/dataproducts/products/flights_daily", tokens["admin"])
    detail = json.loads(body)
    assert status == 200 and len(detail["runs"]) == len(DAYS) + 1
    assert sorted(r["gate"] for r in detail["runs"]) == ["fail", "warn", "warn"]


@pytest.mark.parametrize("path", ["/dataproducts/products", "/dataproducts/products/flights_daily",
                                  "/dataproducts/", "/dataproducts/ui/flights_daily"])
def test_anonymous_requests_get_401(api, path):
    base, _, _ = api
    assert request(base + path)[0] == 401


def test_a_user_sees_only_products_whose_dag_they_may_read(api):
    base, tokens, _ = api
    status, body = request(f"{base}/dataproducts/products", tokens["outsider"])
    assert status == 200
    names = {p["name"] for p in json.loads(body)["products"]}
    assert "weather_daily" not in names and "flights_daily" in names
    assert request(f"{base}/dataproducts/products/weather_daily", tokens["outsider"])[0] == 404
    assert request(f"{base}/dataproducts/ui/weather_daily", tokens["outsider"])[0] == 404
    status, html = request(f"{base}/dataproducts/", tokens["outsider"])
    assert status == 200 and "data-product='weather_daily'" not in html
    status, html = request(f"{base}/dataproducts/", tokens["admin"])
    assert "data-invalid='weather_broken.yaml'" in html


def test_the_page_renders_every_product_status_in_a_browser(api, tmp_path):
    base, tokens, _ = api
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        missing("Debian's chromium (apt-get install chromium)")
    status, html = request(f"{base}/dataproducts/", tokens["admin"])
    assert status == 200
    page = tmp_path / "slo.html"
    page.write_text(html)  # self-contained: inline CSS and SVG, no script, no external request
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    states = json.loads(request(f"{base}/dataproducts/products", tokens["admin"])[1])["products"]
    for product in states:
        row = dom.split(f"data-product=\"{product['name']}\"", 1)
        assert len(row) == 2, product["name"]
        assert f"data-state=\"{product['slo']['state']}\"" in row[1].split("</tr>", 1)[0]
    shot = Path(os.environ.get("DATAPRODUCTS_SCREENSHOT_DIR", tmp_path)) / "slo-page.png"
    subprocess.run([chromium, *flags, "--window-size=1400,700", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_status_command_reads_the_api_and_the_local_db_alike(api, capsys, monkeypatch):
    from dag_factory.cli.main import main

    base, tokens, _ = api
    monkeypatch.setenv("DATAPRODUCTS_API_TOKEN", tokens["admin"])
    assert main(["status", "--json", "--api-url", base]) == 0
    through_api = {p["name"]: p["slo"]["state"] for p in json.loads(capsys.readouterr().out)}
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER", api[2])
    assert main(["status", "--json"]) == 0
    local = {p["name"]: p["slo"]["state"] for p in json.loads(capsys.readouterr().out)}
    assert through_api == local and through_api["flights_daily"] == "BREACHED"
    assert main(["status"]) == 0
    table = capsys.readouterr().out
    assert "flights_daily" in table and "BREACHED" in table and "quality_gate.verify_contract" in table
