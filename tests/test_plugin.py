"""The plugin in a real ``airflow standalone`` (LocalExecutor, Postgres) whose own scheduler
made the history: JSON API values against a hand count of the metadata DB, authentication (401)
and per-DAG authorization, the HTML page rendered by Chromium, ``dataproducts status``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_services import AirflowServices, drop_database, start_standalone
from airflow_services import http_get as request
from conftest import REPO, missing
from dag_factory.demo.s3server import free_port
from dag_factory.demo.seed import LANDING, seed_landing
from helpers import demo_yaml, products_folder

pytestmark = pytest.mark.scheduler
DAYS = [dt.date(2013, 1, 1), dt.date(2013, 1, 2)]
FAILING_DAY = dt.date(2013, 1, 3)  # flights_daily only: its landing file fails the gate
PRODUCTS = ["delays_weather_daily", "fleet_daily", "flights_daily", "weather_daily"]
TRIGGERED = ["flights_daily", "weather_daily"]  # manual runs; delays_weather_daily follows their publishes
ASSET_TRIGGERED = "delays_weather_daily"
GATE = "quality_gate.verify_contract"
UNKNOWN_CARRIER = "ZZ"  # not in airlines.csv: the gate's carrier_name `missing` check fails
OUTSIDER_PASSWORD = "outsider-password"


@dataclass
class Deployment:
    """The running standalone, its folders, a token per user and the runs' ids by partition."""

    services: AirflowServices
    folder: Path
    data: Path
    tokens: dict[str, str]
    run_ids: dict[tuple[str, dt.date], str]
    runs: dict[str, list[tuple[str, str, str]]]


def without_alerts(text: str) -> str:
    """A demo product without its alerts block (no SMTP server here)."""
    return re.sub(r"^alerts:\n(?:[ #].*\n)+", "", text, flags=re.M)


def land_unknown_carrier(data: Path, day: dt.date) -> None:
    """Rewrite the first flight of ``day``'s landing file with a carrier code missing from the
    airlines reference, as a feed might land it: the transform's left join leaves its
    ``carrier_name`` empty and the gate's ``missing`` check on it fails."""
    path = data / LANDING / "flights" / f"{day.isoformat()}.csv"
    header, first, rest = path.read_text().split("\n", 2)
    fields = next(csv.reader([first]))
    fields[next(csv.reader([header])).index("carrier")] = UNKNOWN_CARRIER
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(fields)
    path.write_text("\n".join([header, line.getvalue(), rest]))


def interval_conf(day: dt.date) -> dict[str, str]:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    return {"data_interval_start": start.isoformat(),
            "data_interval_end": (start + dt.timedelta(days=1)).isoformat()}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, postgres_url):
    """``airflow standalone`` with the demo products, an invalid file and the restricted auth
    manager; history: manual runs through the REST API of flights_daily and weather_daily for
    two days (delays_weather_daily runs on their publishes) and flights_daily for a third day
    whose gate fails. Yields once every run has ended."""
    tmp = tmp_path_factory.mktemp("plugin")
    broken = demo_yaml("weather_daily").replace("name: weather_daily", "name: weather_broken") \
        .replace("  - name: observations\n", "  - name: observations\n    formt: csv\n", 1)
    folder = products_folder(tmp, [], {**{f"{name}.yaml": without_alerts(demo_yaml(name))
                                          for name in PRODUCTS},
                                       "weather_broken.yaml": broken})
    data = tmp / "data"
    seed_landing(data, DAYS[0], FAILING_DAY, log=lambda _: None)
    land_unknown_carrier(data, FAILING_DAY)
    extra_env = {
        "AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER": str(folder),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,outsider:viewer",
        "DATAPRODUCTS_TEST_DENIED_DAGS": "weather_daily",
        "PYTHONPATH": str(REPO / "tests") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        # the later page loads answer from the plugin's history cache brought up to date
        # incrementally (no full re-read during the test): it must not change the results
        "AIRFLOW__DATAPRODUCTS__SLO_FULL_REFRESH_SECONDS": "3600",
    }
    services = start_standalone(
        tmp / "home", folder, data, postgres_url, free_port(), extra_env,
        passwords={"outsider": OUTSIDER_PASSWORD},
        # standalone forces SimpleAuthManager on its components: see start_standalone
        component_env={"AIRFLOW__CORE__AUTH_MANAGER": "restricted_auth_manager.RestrictedAuthManager"})
    try:
        dag_ids = set(PRODUCTS) | {"weather_broken"}
        services.wait_for(lambda: {d for (d,) in services.query("select dag_id from dag")} >= dag_ids,
                          180, f"the DAGs {sorted(dag_ids)} did not all appear")
        for dag_id in (*TRIGGERED, ASSET_TRIGGERED):
            services.unpause(dag_id)
        run_ids: dict[tuple[str, dt.date], str] = {}

        def trigger(dag_id: str, day: dt.date) -> None:
            run = services.trigger(dag_id, interval_conf(day))
            run_ids[dag_id, day] = run["dag_run_id"]

        for dag_id in TRIGGERED:
            trigger(dag_id, DAYS[0])
        # a page load while the first runs are under way fills the plugin's history cache
        status, body = request(f"{services.api_url}/dataproducts/products", services.token())
        assert status == 200, body

        def first_asset_run() -> bool:
            states = dict(services.query("select run_id, state from dag_run where run_id = any(:ids)",
                                         ids=list(run_ids.values())))
            if "failed" in states.values():
                pytest.fail(f"a run of {DAYS[0]} failed: {states}\n{services.log_tail()}")
            return bool(services.query("select 1 from dag_run where dag_id = :d", d=ASSET_TRIGGERED))

        # the next day's publishes only once the first asset-triggered run consumed this day's
        services.wait_for(first_asset_run, 600, f"{ASSET_TRIGGERED} did not run on the publishes "
                                                f"of {DAYS[0]}")
        for dag_id in TRIGGERED:
            trigger(dag_id, DAYS[1])
        trigger("flights_daily", FAILING_DAY)
        runs = services.wait_runs_ended({"flights_daily": 3, "weather_daily": 2, ASSET_TRIGGERED: 2},
                                        timeout=900)
        tokens = {user: services.token(user, password) for user, password in services.passwords.items()}
        yield Deployment(services, folder, data, tokens, run_ids, runs)
    finally:
        services.stop()
        drop_database(postgres_url, services.db_url)


def hand_count(services: AirflowServices, dag_id: str) -> dict[str, int]:
    """A product's runs, publishes and gates, counted straight from the metadata tables."""
    runs = [s for (s,) in services.query("select state from dag_run where dag_id = :d", d=dag_id)]
    events = [extra for (extra,) in services.query(
        "select extra from asset_event where source_dag_id = :d", d=dag_id)]
    failed_gates = services.query("select count(*) from task_instance where dag_id = :d and "
                                  "task_id = :t and state = 'failed'", d=dag_id, t=GATE)[0][0]
    gates = [e["quality"] for e in events]
    return {"success": runs.count("success"), "failed": runs.count("failed"),
            "published": len(events), "pass": gates.count("pass"), "warn": gates.count("warn"),
            "gate_failed": failed_gates}


def test_the_scheduler_made_the_history(deployment):
    runs = deployment.runs
    assert [s for _, _, s in runs["flights_daily"]].count("failed") == 1, runs
    assert {t for _, t, _ in runs["flights_daily"] + runs["weather_daily"]} == {"manual"}, runs
    # delays_weather_daily ran by itself on each day's two publishes, once per day
    assert [(t, s) for _, t, s in runs[ASSET_TRIGGERED]] == [("asset_triggered", "success")] * 2, runs
    assert not deployment.services.query("select 1 from dag_run where dag_id = 'fleet_daily'")


def test_json_api_matches_a_hand_count_of_the_runs(deployment):
    services, tokens = deployment.services, deployment.tokens
    status, body = request(f"{services.api_url}/dataproducts/products", tokens["admin"])
    assert status == 200, body
    products = {p["name"]: p for p in json.loads(body)["products"]}
    assert set(products) == set(PRODUCTS)
    for name in PRODUCTS:
        count, slo = hand_count(services, name), products[name]["slo"]
        assert count["published"] == count["success"], (name, count)
        success, quality = slo["success_rate"], slo["quality_pass_rate"]
        assert (success["good"], success["bad"]) == (count["success"], count["failed"]), (name, count)
        assert (quality["good"], quality["bad"], quality["warned"]) == \
            (count["pass"] + count["warn"], count["gate_failed"], count["warn"]), (name, count)
    assert hand_count(services, "flights_daily")["success"] == len(DAYS)
    flights = products["flights_daily"]["slo"]
    assert (flights["success_rate"]["good"], flights["success_rate"]["bad"]) == (len(DAYS), 1)
    assert flights["quality_pass_rate"]["bad"] == 1
    assert flights["state"] == "BREACHED"  # 2 of 3 published against a 99% target
    failure = flights["last_failure"]
    assert failure["failed_task"] == GATE
    failed_run = deployment.run_ids["flights_daily", FAILING_DAY]
    assert failure["run_id"] == failed_run and "/runs/" in failure["log_url"]
    assert failure["partition_start"].startswith(FAILING_DAY.isoformat())
    weather = products["weather_daily"]["slo"]
    assert weather["success_rate"]["good"] == len(DAYS) and weather["quality_pass_rate"]["warned"] >= 1
    assert products[ASSET_TRIGGERED]["slo"]["success_rate"]["good"] == len(DAYS)
    assert products["fleet_daily"]["slo"]["state"] == "NO DATA"
    invalid = json.loads(body)["invalid_specs"]
    assert [(i["file"], i["dag_id"]) for i in invalid] == [("weather_broken.yaml", "weather_broken")]
    assert any("inputs[0].formt: unknown key" in e for e in invalid[0]["errors"])

    status, body = request(f"{services.api_url}/dataproducts/products/flights_daily", tokens["admin"])
    detail = json.loads(body)
    assert status == 200 and len(detail["runs"]) == len(DAYS) + 1
    assert sorted(r["gate"] for r in detail["runs"]) == ["fail", "warn", "warn"]
    assert sorted(r["partition_start"][:10] for r in detail["runs"]) == \
        [d.isoformat() for d in (*DAYS, FAILING_DAY)]
    # the asset-triggered runs' partitions come from what their upstreams' publishes recorded
    status, body = request(f"{services.api_url}/dataproducts/products/{ASSET_TRIGGERED}",
                           tokens["admin"])
    assert status == 200 and sorted(r["partition_start"][:10] for r in json.loads(body)["runs"]) == \
        [d.isoformat() for d in DAYS]


@pytest.mark.parametrize("path", ["/dataproducts/products", "/dataproducts/products/flights_daily",
                                  "/dataproducts/", "/dataproducts/ui/flights_daily"])
def test_anonymous_requests_get_401(deployment, path):
    assert request(deployment.services.api_url + path)[0] == 401


def test_a_user_sees_only_products_whose_dag_they_may_read(deployment):
    base, tokens = deployment.services.api_url, deployment.tokens
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


def test_the_page_renders_every_product_status_in_a_browser(deployment, tmp_path):
    base, tokens = deployment.services.api_url, deployment.tokens
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
    assert {p["name"] for p in states} == set(PRODUCTS)
    for product in states:
        row = dom.split(f"data-product=\"{product['name']}\"", 1)
        assert len(row) == 2, product["name"]
        assert f"data-state=\"{product['slo']['state']}\"" in row[1].split("</tr>", 1)[0]
    shot = Path(os.environ.get("DATAPRODUCTS_SCREENSHOT_DIR", tmp_path)) / "slo-page.png"
    subprocess.run([chromium, *flags, "--window-size=1400,700", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000


def _summary(rows: list[dict]) -> dict[str, tuple]:
    """What the API and the local engine must agree on (freshness ages differ by the clock)."""
    return {p["name"]: (p["slo"]["state"], p["slo"]["success_rate"]["good"],
                        p["slo"]["success_rate"]["bad"], p["slo"]["quality_pass_rate"]["good"],
                        p["slo"]["quality_pass_rate"]["bad"],
                        (p["slo"]["last_failure"] or {}).get("run_id")) for p in rows}


def test_status_command_reads_the_api_and_the_local_db_alike(deployment, capsys, monkeypatch):
    from dag_factory.cli.main import main

    services = deployment.services
    monkeypatch.setenv("DATAPRODUCTS_API_TOKEN", deployment.tokens["admin"])
    assert main(["status", "--json", "--api-url", services.api_url]) == 0
    through_api = _summary(json.loads(capsys.readouterr().out))

    # locally: the standalone's metadata DB, read whole by a fresh process (no history cache);
    # a subprocess, as this test session's own Airflow is configured on its SQLite DB
    def local(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "dag_factory.cli.main", "status", *args],
                              env=services.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        return done.stdout

    assert through_api == _summary(json.loads(local("--json")))
    assert through_api["flights_daily"][0] == "BREACHED"
    table = local()
    assert "flights_daily" in table and "BREACHED" in table and GATE in table
