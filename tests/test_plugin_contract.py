"""The contract on the plugin's product page and ``GET /dataproducts/products/{name}/contract``,
served by Airflow's own API app in-process (FastAPI's TestClient; the plugin mounted through
the ``airflow.plugins`` entry point, the restricted auth manager, the session's metadata DB
with the demo DAGs synced into it): authentication (401), per-DAG authorization (404 without
a hint), the view, the ODCS/ODPS formats against the official schemas and equal to
``dataproducts export``, consumers the user may not read counted but never named, and the
page's contract section as Chromium renders it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import PRODUCTS, missing, shared_dir
from dag_factory.contract.validation import SCHEMA_FILES, schema_errors
from dag_factory.spec.loading import load_products

pytestmark = pytest.mark.usefixtures("airflow_db")
DENIED = "delays_weather_daily"  # the outsider may not read this DAG; it consumes flights_daily
PREFIX = "/dataproducts"


def sync_demo_dags() -> None:
    """The demo products' DAGs in the metadata DB, as the DAG processor would write them (the
    auth manager authorizes per DagModel row)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(PRODUCTS))
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """``(client, {user: bearer headers})`` of Airflow's API app with users ``admin`` and
    ``outsider`` (a viewer who may not read DENIED)."""
    from fastapi.testclient import TestClient

    from airflow.api_fastapi.app import create_app, purge_cached_app

    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    env = {"AIRFLOW__CORE__AUTH_MANAGER": "restricted_auth_manager.RestrictedAuthManager",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,outsider:viewer",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
           "DATAPRODUCTS_TEST_DENIED_DAGS": DENIED,
           "AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER": str(PRODUCTS)}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        sync_demo_dags()
        purge_cached_app()
        client = TestClient(create_app("core"))
        headers = {}
        for user, password in json.loads(passwords.read_text()).items():
            response = client.post("/auth/token", json={"username": user, "password": password})
            assert response.status_code in (200, 201), response.text
            headers[user] = {"Authorization": f"Bearer {response.json()['access_token']}"}
        yield client, headers
    finally:
        purge_cached_app()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def schemas():
    folder = shared_dir() / "bitol-schemas"
    for name in SCHEMA_FILES.values():
        if not (folder / name).is_file():
            missing(f"{folder / name} (the official Bitol JSON Schema, in ../shared)")
    return folder


def contract_url(name: str, fmt: str | None = None) -> str:
    return f"{PREFIX}/products/{name}/contract" + (f"?format={fmt}" if fmt else "")


@pytest.mark.parametrize("path", [contract_url("flights_daily"),
                                  contract_url("flights_daily", "odcs"),
                                  f"{PREFIX}/ui/flights_daily"])
def test_anonymous_requests_get_401(api, path):
    client, _ = api
    assert client.get(path).status_code == 401


def test_the_contract_view(api):
    client, headers = api
    response = client.get(contract_url("flights_daily"), headers=headers["admin"])
    assert response.status_code == 200, response.text
    view = response.json()
    spec = load_products(PRODUCTS).products["flights_daily"].spec
    assert (view["contract_id"], view["version"]) == ("flights_daily-v1", spec.version)
    assert [(c["name"], c["data_type"]) for c in view["columns"]] == \
        [(c.name, c.data_type) for c in spec.output.columns]
    columns = {c["name"]: c for c in view["columns"]}
    assert columns["flight_date"]["partition_key"] and columns["carrier"]["required"]
    assert [(c["text"], c["severity"]) for c in columns["on_time_pct"]["checks"]] == [
        ("Every value is between 0 and 100 (inclusive)", "error"),
        ("Every value is at least 50", "warning")]
    assert [c["odcs"] for c in view["dataset_checks"]] == \
        ["library rowCount", "library duplicateValues", "custom soda"]
    assert {s["name"] for s in view["slos"]} == \
        {"freshness", "frequency", "successRate", "qualityPassRate"}
    assert (view["consumers"], view["hidden_consumers"]) == ([DENIED], 0)


def test_a_consumer_the_user_may_not_read_is_counted_never_named(api):
    client, headers = api
    response = client.get(contract_url("flights_daily"), headers=headers["outsider"])
    assert response.status_code == 200
    assert (response.json()["consumers"], response.json()["hidden_consumers"]) == ([], 1)
    assert DENIED not in response.text
    page = client.get(f"{PREFIX}/ui/flights_daily", headers=headers["outsider"])
    assert page.status_code == 200
    assert DENIED not in page.text and "1 more product(s) you may not read" in page.text
    admin_page = client.get(f"{PREFIX}/ui/flights_daily", headers=headers["admin"]).text
    assert f"data-consumer='{DENIED}'" in admin_page and "you may not read" not in admin_page


@pytest.mark.parametrize("fmt", [None, "view", "odcs", "odps"])
def test_a_product_the_user_may_not_read_is_404_like_an_unknown_one(api, fmt):
    client, headers = api
    denied = client.get(contract_url(DENIED, fmt), headers=headers["outsider"])
    unknown = client.get(contract_url("no_such_product", fmt), headers=headers["outsider"])
    assert denied.status_code == unknown.status_code == 404
    assert denied.json()["detail"] == f"no product {DENIED!r} you can read"
    assert client.get(contract_url(DENIED, fmt), headers=headers["admin"]).status_code == 200


def test_the_odcs_and_odps_formats_are_the_cli_exports(api, schemas, tmp_path):
    from dag_factory.cli.main import main

    client, headers = api
    for name in ("flights_daily", DENIED):
        for fmt in ("odcs", "odps"):
            response = client.get(contract_url(name, fmt), headers=headers["admin"])
            assert response.status_code == 200
            document = response.json()
            assert schema_errors(document, fmt, schemas) == []
            out = tmp_path / f"{name}.{fmt}.json"
            assert main(["--folder", str(PRODUCTS), "export", name, "--format", fmt,
                         "--json", "-o", str(out)]) == 0
            assert json.loads(out.read_text()) == document
    odps = client.get(contract_url(DENIED, "odps"), headers=headers["admin"]).json()
    assert [p["contractId"] for p in odps["inputPorts"]] == ["flights_daily-v1", "weather_daily-v1"]


def test_an_unknown_format_is_a_422(api):
    client, headers = api
    response = client.get(contract_url("flights_daily", "rdf"), headers=headers["admin"])
    assert response.status_code == 422 and "format" in response.text


def test_the_page_shows_the_contract_in_a_browser(api, tmp_path):
    client, headers = api
    html = client.get(f"{PREFIX}/ui/weather_daily", headers=headers["admin"]).text
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        missing("Debian's chromium (apt-get install chromium)")
    page = tmp_path / "product.html"
    page.write_text(html)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    section = dom.split('<section id="contract">', 1)[1].split("</section>", 1)[0]
    spec = load_products(PRODUCTS).products["weather_daily"].spec
    for column in spec.output.columns:
        assert f'data-column="{column.name}"' in section
    assert "weather_daily-v1" in section and 'href="/dataproducts/products/weather_daily/' \
        'contract?format=odcs"' in section
    assert "values in EWR, JFK, LGA" in section and "row count between 1 and 3" in section
    assert 'data-consumer="delays_weather_daily"' in section
