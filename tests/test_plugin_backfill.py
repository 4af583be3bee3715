"""The product page's paced backfill in a real Airflow API server: the estimate route against
estimate() for the product's real median run time, its authentication and per-DAG
authorization, how the browser's cookie session reaches Airflow's backfill API (and what keeps
a cross-site page from using it), and a real Chromium (Selenium) driving the form: Airflow's 403
for a read-only user, dry run, start, progress, 409, pause, resume, cancel."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import statistics
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, missing
from dag_factory.demo.s3server import free_port
from airflow_services import api_server, token_for
from helpers import demo_yaml, products_folder, run

pytestmark = [pytest.mark.airflow_run, pytest.mark.usefixtures("airflow_db")]
PRODUCT = "flights_paced"
DAYS = [dt.date(2013, 1, 1), dt.date(2013, 1, 2)]
FIRST, LAST = "2013-01-01", "2013-01-06"  # the backfill range: 01-03 .. 01-06 have no run yet
PACING = """backfill:
  max_active_runs: 2
  pool_slots: 3
  allowed_hours: "01:00-05:00"
  max_runs_per_hour: 6
"""


def request(url: str, token: str | None = None, method: str = "GET", body: bytes | None = None,
            headers: dict | None = None, cookie: str | None = None) -> tuple[int, str, dict]:
    """``(status, body text, response headers)``; ``token`` as a bearer token, ``cookie`` as
    the browser's ``_token`` session cookie."""
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = f"_token={cookie}"
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def call(base: str, method: str, path: str, token: str, payload: dict | None = None) -> tuple[int, dict]:
    """A JSON call of Airflow's REST API with a bearer token: ``(status, decoded body)``."""
    body = json.dumps(payload).encode() if payload is not None else None
    status, text, _ = request(base + path, token, method, body,
                              {"Content-Type": "application/json"} if body else None)
    return status, json.loads(text) if text else {}


def product_yaml() -> str:
    """flights_daily renamed, with its own pacing (values unlike Airflow's defaults) and no
    alerts (no SMTP here)."""
    text = demo_yaml("flights_daily").replace("name: flights_daily", f"name: {PRODUCT}")
    text = re.sub(r"^(backfill|alerts):\n(?:[ #].*\n)+", "", text, flags=re.M)
    return text + PACING


def clear_history() -> None:
    """Start from no runs and no backfills of the product."""
    from airflow.models.asset import AssetEvent
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        backfills = [b for (b,) in session.query(Backfill.id).filter(Backfill.dag_id == PRODUCT)]
        session.query(BackfillDagRun).filter(BackfillDagRun.backfill_id.in_(backfills)) \
            .delete(synchronize_session=False)
        session.query(Backfill).filter(Backfill.id.in_(backfills)).delete(synchronize_session=False)
        for model, column in ((XComModel, XComModel.dag_id), (TaskInstance, TaskInstance.dag_id),
                              (DagRun, DagRun.dag_id), (AssetEvent, AssetEvent.source_dag_id)):
            session.query(model).filter(column == PRODUCT).delete(synchronize_session=False)


@pytest.fixture(scope="module")
def history(seeded_folder, tmp_path_factory):
    """Two successful runs of the product in the session's metadata DB; returns the data and
    products folders."""
    clear_history()
    data = tmp_path_factory.mktemp("backfill-data")
    (data / "landing").symlink_to(seeded_folder / "landing")
    folder = products_folder(tmp_path_factory.mktemp("backfill-products"), [],
                             {f"{PRODUCT}.yaml": product_yaml()})
    previous = os.environ["AIRFLOW__DATAPRODUCTS__DATA_FOLDER"]
    os.environ["AIRFLOW__DATAPRODUCTS__DATA_FOLDER"] = str(data)
    try:
        for day in DAYS:  # the runs also sync the folder's DAG into the metadata DB
            assert run(PRODUCT, day, folder).state == "success"
    finally:
        os.environ["AIRFLOW__DATAPRODUCTS__DATA_FOLDER"] = previous
    return data, folder


@pytest.fixture(scope="module")
def api(history):
    """An Airflow API server with the plugin on the session's metadata DB. Users: ``admin``;
    ``reader``, a viewer (may read the DAG, not create backfills); ``outsider``, a viewer who
    may not read the product's DAG at all. Yields ``(base URL, passwords, tokens, folder)``."""
    port = free_port()
    data, folder = history
    env = {**os.environ, "AIRFLOW__DATAPRODUCTS__DATA_FOLDER": str(data),
           "AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER": str(folder),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,outsider:viewer,reader:viewer",
           "AIRFLOW__CORE__AUTH_MANAGER": "restricted_auth_manager.RestrictedAuthManager",
           "DATAPRODUCTS_TEST_DENIED_DAGS": PRODUCT,
           "PYTHONPATH": str(REPO / "tests") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = Path(os.environ["AIRFLOW_HOME"]) / "api-server-backfill.log"
    with api_server(env, log, port) as base:
        passwords = json.loads((Path(os.environ["AIRFLOW_HOME"]) /
                                "simple_auth_manager_passwords.json.generated").read_text())
        tokens = {user: token_for(base, user, pw) for user, pw in passwords.items()}
        yield base, passwords, tokens, folder

def hand_median() -> tuple[float, int]:
    """Median run time (s) of the product's successful runs, straight from the metadata DB:
    first start to last end of each run's task instances after the pacing gate."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = {r for (r,) in session.query(DagRun.run_id).filter(
            DagRun.dag_id == PRODUCT, DagRun.state == "success")}
        tis = session.query(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.start_date,
                            TaskInstance.end_date).filter(TaskInstance.dag_id == PRODUCT).all()
    durations = []
    for run_id in runs:
        mine = [(s, e) for r, task, s, e in tis if r == run_id and task != "pacing" and s and e]
        durations.append((max(e for _, e in mine) - min(s for s, _ in mine)).total_seconds())
    return statistics.median(durations), len(durations)


def pacing(folder):
    from dag_factory.backfill.config import PacingConfig
    from dag_factory.spec.loading import load_products

    return PacingConfig.from_spec(load_products(folder).products[PRODUCT].spec)


def test_estimate_matches_estimate_for_the_real_median_run_time(api):
    from dag_factory.backfill.estimate import estimate

    base, _, tokens, folder = api
    status, body = call(base, "GET", f"/dataproducts/products/{PRODUCT}/backfill/estimate?runs=30",
                        tokens["admin"])
    assert status == 200, body
    median, count = hand_median()
    assert count == len(DAYS) and median > 0
    config = pacing(folder)
    assert body["pacing"] == config.as_dict()
    assert body["pacing"]["max_active_runs"] == 2 and body["pacing"]["allowed_hours"] == "01:00-05:00"
    assert body["median_run_seconds"] == pytest.approx(median, abs=1e-3)
    assert body["median_of_runs"] == len(DAYS) and median < 600  # seconds, not the DAG run's span
    start = dt.datetime.fromisoformat(body["estimated_at"].replace("Z", "+00:00"))
    expected = estimate(config, 30, median, start)
    got = body["estimate"]
    assert got["runs"] == 30 and got["concurrency"] == expected.concurrency == 2
    assert got["ideal_seconds"] == pytest.approx(expected.ideal_seconds, abs=1e-2)
    assert got["paced_seconds"] == pytest.approx(expected.paced_seconds, abs=1e-2)
    finishes = dt.datetime.fromisoformat(got["finishes_at"].replace("Z", "+00:00"))
    assert abs((finishes - expected.finishes_at).total_seconds()) < 0.01
    # 30 runs at 6 an hour need 5 open hours, more than one 4-hour window: whatever the time
    # of day the test runs, the estimate crosses at least one 20-hour closed gap, and its last
    # run starts inside the window
    assert got["paced_seconds"] > 20 * 3600 > got["ideal_seconds"]
    last_start = finishes - dt.timedelta(seconds=median)
    assert dt.time(1) <= last_start.time() < dt.time(5), last_start

    status, body = call(base, "GET", f"/dataproducts/products/{PRODUCT}/backfill/estimate?runs=0",
                        tokens["admin"])
    assert status == 200 and body["estimate"]["paced_seconds"] == 0
    assert call(base, "GET", f"/dataproducts/products/{PRODUCT}/backfill/estimate?runs=-1",
                tokens["admin"])[0] == 422


def test_estimate_needs_a_user_who_may_read_the_dag(api):
    base, _, tokens, _ = api
    path = f"{base}/dataproducts/products/{PRODUCT}/backfill/estimate?runs=3"
    assert request(path)[0] == 401
    assert request(path, tokens["outsider"])[0] == 404  # may not read the DAG: no hint it exists
    assert request(f"{base}/dataproducts/ui/{PRODUCT}", tokens["outsider"])[0] == 404
    assert request(path, tokens["reader"])[0] == 200
    assert request(f"{base}/dataproducts/products/no_such_product/backfill/estimate",
                   tokens["admin"])[0] == 404


def test_the_estimate_route_is_in_the_openapi_schema(api):
    base, _, tokens, _ = api
    status, text, _ = request(f"{base}/dataproducts/openapi.json", tokens["admin"])
    assert status == 200, text
    schema = json.loads(text)
    operation = schema["paths"]["/products/{name}/backfill/estimate"]["get"]
    assert {"200", "401", "404", "422"} <= set(operation["responses"])
    assert [p["name"] for p in operation["parameters"]] == ["name", "runs"]
    fields = schema["components"]["schemas"]["BackfillEstimate"]["properties"]
    assert {"pacing", "median_run_seconds", "estimate", "estimated_at"} <= set(fields)
    assert "seconds" in fields["median_run_seconds"]["description"]


def test_the_browser_session_cookie_reaches_the_backfill_api_but_not_cross_site(api):
    """What the page's script relies on: Airflow accepts its ``_token`` cookie on POST, with no
    CSRF token (as Airflow's own UI). A cross-site page cannot use it: a form can only send
    non-JSON bodies, which Airflow's API rejects (422) before creating anything, and JSON or
    PUT requests need a CORS preflight that Airflow does not grant."""
    base, _, tokens, _ = api
    dry = json.dumps({"dag_id": PRODUCT, "from_date": f"{FIRST}T00:00:00Z",
                      "to_date": f"{LAST}T00:00:00Z"}).encode()
    status, text, _ = request(f"{base}/api/v2/backfills/dry_run", method="POST", body=dry,
                              headers={"Content-Type": "application/json"},
                              cookie=tokens["admin"])
    assert status == 200, text
    by_token = call(base, "POST", "/api/v2/backfills/dry_run", tokens["admin"], json.loads(dry))[1]
    assert json.loads(text) == by_token and by_token["total_entries"] > 0
    status, text, _ = request(f"{base}/api/v2/backfills/dry_run", method="POST", body=dry,
                              headers={"Content-Type": "application/json"},
                              cookie=tokens["reader"])
    assert status == 403, text  # Airflow's own authorization: a viewer may not backfill
    # what a cross-site <form enctype="text/plain"> could send with the cookie
    before = call(base, "GET", f"/api/v2/backfills?dag_id={PRODUCT}", tokens["admin"])[1]
    status, text, _ = request(f"{base}/api/v2/backfills", method="POST", body=dry,
                              headers={"Content-Type": "text/plain"}, cookie=tokens["admin"])
    assert status == 422, text
    after = call(base, "GET", f"/api/v2/backfills?dag_id={PRODUCT}", tokens["admin"])[1]
    assert after["total_entries"] == before["total_entries"]
    status, _, headers = request(f"{base}/api/v2/backfills/1/pause", method="OPTIONS", headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "PUT"})
    assert "access-control-allow-origin" not in {k.lower() for k in headers}


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium through Selenium and Debian's chromedriver."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium (pip install -e '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        missing("Debian's chromium and chromedriver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def login(driver, base: str, user: str, password: str, page: str) -> None:
    """Log in through Airflow's own login page (SimpleAuthManager), which sets the ``_token``
    cookie and sends the browser on to ``page``."""
    from urllib.parse import quote

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.delete_all_cookies()
    driver.get(f"{base}/auth/login?next={quote(page, safe='')}")
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: d.find_elements(By.NAME, "username"))
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.current_url == page and d.find_elements(By.ID, "bf-form"))


def fill(driver, first: str, last: str, reprocess: str = "none") -> None:
    """Set the form's dates (ISO, as a date picker does) and reprocess behaviour."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for name, value in (("from", first), ("to", last)):
        field = driver.find_element(By.NAME, name)
        driver.execute_script("arguments[0].value = arguments[1];"
                              "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
                              field, value)
    Select(driver.find_element(By.NAME, "reprocess")).select_by_value(reprocess)


def text_of(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def only_text(driver, element_id: str) -> bool:
    """The element holds text only: API data was not parsed as HTML."""
    return driver.execute_script(
        "return document.getElementById(arguments[0]).children.length === 0", element_id)


def active_backfill(base: str, token: str) -> dict | None:
    status, body = call(base, "GET", f"/api/v2/backfills?dag_id={PRODUCT}", token)
    assert status == 200, body
    return next((b for b in body["backfills"] if not b["completed_at"]), None)


def test_a_browser_drives_a_paced_backfill_from_the_product_page(api, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    base, passwords, tokens, _ = api
    page = f"{base}/dataproducts/ui/{PRODUCT}"
    wait = WebDriverWait(browser, 60)

    # a user who may read the DAG but not run it: Airflow's own 403, shown in the form
    login(browser, base, "reader", passwords["reader"], page)
    fill(browser, FIRST, LAST)
    browser.find_element(By.ID, "bf-dry").click()
    wait.until(lambda d: d.find_element(By.ID, "bf-error").is_displayed())
    _, detail = call(base, "POST", "/api/v2/backfills/dry_run", tokens["reader"],
                     {"dag_id": PRODUCT, "from_date": f"{FIRST}T00:00:00Z",
                      "to_date": f"{LAST}T00:00:00Z"})
    assert text_of(browser, "bf-error") == f"Dry run: HTTP 403: {detail['detail']}" \
        == "Dry run: HTTP 403: Forbidden"
    assert only_text(browser, "bf-error")
    assert not browser.find_element(By.ID, "bf-start").is_enabled()

    # an admin: dry run, then start
    login(browser, base, "admin", passwords["admin"], page)
    wait.until(lambda d: d.find_elements(By.ID, "bf-none"))
    fill(browser, FIRST, LAST)
    browser.find_element(By.ID, "bf-dry").click()
    wait.until(lambda d: d.find_elements(By.ID, "bf-runs") or d.find_element(By.ID, "bf-error").is_displayed())
    assert not browser.find_element(By.ID, "bf-error").is_displayed(), text_of(browser, "bf-error")
    status, dry = call(base, "POST", "/api/v2/backfills/dry_run", tokens["admin"],
                       {"dag_id": PRODUCT, "from_date": f"{FIRST}T00:00:00Z",
                        "to_date": f"{LAST}T00:00:00Z", "reprocess_behavior": "none"})
    assert status == 200 and dry["total_entries"] == 4  # 01-01 and 01-02 already ran
    assert int(text_of(browser, "bf-runs")) == dry["total_entries"]
    plan = text_of(browser, "bf-plan")
    assert "at 2 at once" in plan and "window 01:00-05:00 UTC" in plan and "6 runs/hour" in plan
    assert f"of {len(DAYS)} successful runs" in plan

    browser.find_element(By.ID, "bf-start").click()
    wait.until(lambda d: d.find_elements(By.ID, "bf-created") or d.find_element(By.ID, "bf-error").is_displayed())
    assert not browser.find_element(By.ID, "bf-error").is_displayed(), text_of(browser, "bf-error")
    backfill = active_backfill(base, tokens["admin"])
    assert backfill is not None and backfill["max_active_runs"] == pacing(api[3]).max_active_runs == 2
    assert (backfill["from_date"][:10], backfill["to_date"][:10]) == (FIRST, LAST)
    assert backfill["reprocess_behavior"] == "none" and not backfill["is_paused"]
    assert f"#{backfill['id']}" in text_of(browser, "bf-created")

    # progress: no scheduler runs here, so the runs stay queued
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#bf-active[data-backfill-id='{backfill['id']}']"))
    counts = {td.get_attribute("data-count"): int(td.text)
              for td in browser.find_elements(By.CSS_SELECTOR, "td[data-count]")}
    _, runs = call(base, "GET", f"/api/v2/dags/{PRODUCT}/dagRuns?run_type=backfill"
                                f"&logical_date_gte={FIRST}T00:00:00Z&logical_date_lte={LAST}T00:00:00Z",
                   tokens["admin"])
    states = [r["state"] for r in runs["dag_runs"]]
    assert counts == {"done": states.count("success"), "running": states.count("running"),
                      "queued": states.count("queued"), "failed": states.count("failed"),
                      "total": len(states)} == {"done": 0, "running": 0, "queued": 4, "failed": 0,
                                                 "total": 4}
    assert text_of(browser, "bf-eta").startswith("about ") and "estimate" in text_of(browser, "bf-eta")

    # a second backfill while this one runs: Airflow's 409, shown verbatim
    fill(browser, FIRST, LAST, "completed")
    browser.find_element(By.ID, "bf-dry").click()
    wait.until(lambda d: d.find_elements(By.ID, "bf-runs") and d.find_element(By.ID, "bf-start").is_enabled())
    assert text_of(browser, "bf-runs") == "2"  # the queued days are in flight; 01-01 and 01-02
    browser.find_element(By.ID, "bf-start").click()
    wait.until(lambda d: d.find_element(By.ID, "bf-error").is_displayed())
    assert text_of(browser, "bf-error") == (
        f"Start backfill: HTTP 409: There is already a running backfill for dag {PRODUCT}")
    assert only_text(browser, "bf-error")

    shots = os.environ.get("DATAPRODUCTS_SCREENSHOT_DIR")
    if shots:
        browser.execute_script("document.getElementById('backfill').scrollIntoView()")
        shot = Path(shots) / "backfill-form.png"
        browser.find_element(By.ID, "backfill").screenshot(str(shot))
        assert shot.stat().st_size > 10_000

    # pause, resume and cancel through Airflow's API
    browser.find_element(By.ID, "bf-pause").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#bf-active[data-paused='true']"))
    assert active_backfill(base, tokens["admin"])["is_paused"] is True
    assert text_of(browser, "bf-eta") == "paused"
    browser.find_element(By.ID, "bf-resume").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#bf-active[data-paused='false']"))
    assert active_backfill(base, tokens["admin"])["is_paused"] is False
    browser.find_element(By.ID, "bf-cancel").click()
    wait.until(EC.alert_is_present()).dismiss()  # asks first: nothing happens
    time.sleep(1)
    assert active_backfill(base, tokens["admin"]) is not None
    browser.find_element(By.ID, "bf-cancel").click()
    wait.until(EC.alert_is_present()).accept()
    wait.until(lambda d: d.find_elements(By.ID, "bf-none"))
    assert active_backfill(base, tokens["admin"]) is None
    assert f"#{backfill['id']}" in text_of(browser, "bf-none")
