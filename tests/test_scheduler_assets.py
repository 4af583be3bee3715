"""Under a real scheduler (LocalExecutor, Postgres), the asset-triggered downstream product
runs after its upstream products publish, and reads exactly their partitions."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from dag_factory.demo.s3server import free_port
from helpers import demo_yaml, products_folder, published
from airflow_services import drop_database, start_airflow

pytestmark = pytest.mark.scheduler
PRODUCTS = ("flights_daily", "weather_daily", "delays_weather_daily")
DAYS = ("2013-01-01", "2013-01-02")


def two_day_spec(name: str) -> str:
    """The demo product limited to 2013-01-01..02 with catchup, so the scheduler runs both."""
    text = re.sub(r"^end_date: .*\n", "", demo_yaml(name), flags=re.M)
    return text.replace("start_date: 2013-01-01\n",
                        "start_date: 2013-01-01\nend_date: 2013-01-02\ncatchup: true\n")


@pytest.fixture(scope="module")
def services(tmp_path_factory, seeded_folder, postgres_url):
    """One Airflow deployment for this module's tests (starting one takes ~40 s)."""
    tmp_path = tmp_path_factory.mktemp("scheduler")
    folder = products_folder(tmp_path, [], {f"{n}.yaml": two_day_spec(n) for n in PRODUCTS})
    data = tmp_path / "data"
    data.mkdir()
    (data / "landing").symlink_to(seeded_folder / "landing")
    running = start_airflow(tmp_path / "home", folder, data, postgres_url, free_port())
    running.data = data
    yield running
    running.stop()
    drop_database(postgres_url, running.db_url)


def published_days(data, product: str) -> set[str]:
    root = data / "products" / product / "v1"
    return {p.name.split("=", 1)[1] for p in root.glob("*=*")} if root.is_dir() else set()


def test_downstream_runs_after_its_upstreams_publish(services):
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        # A partition is visible before its run is marked done, so also wait for every run to end.
        if published_days(services.data, "delays_weather_daily") >= set(DAYS) and not services.query(
                "select 1 from dag_run where state in ('queued', 'running')"):
            break
        failed = services.query("select dag_id, run_id from dag_run where state = 'failed'")
        assert not failed, f"runs failed: {failed}\n{services.log_tail()}"
        time.sleep(3)
    else:
        pytest.fail("downstream did not publish both days in time\n"
                    + str(services.query("select dag_id, run_id, state from dag_run"))
                    + "\n" + services.log_tail())

    runs = services.query("select dag_id, run_type, state, start_date, end_date, "
                          "data_interval_start from dag_run order by start_date")
    upstream = [r for r in runs if r[0] in PRODUCTS[:2]]
    downstream = [r for r in runs if r[0] == "delays_weather_daily"]
    assert sorted(str(r[5].date()) for r in upstream if r[0] == "flights_daily") == list(DAYS)
    assert {r[1] for r in upstream} == {"scheduled"}
    assert downstream and {r[1] for r in downstream} == {"asset_triggered"}
    assert all(r[2] == "success" for r in runs), runs
    events = services.query("select a.uri, e.timestamp from asset_event e join asset a on a.id = e.asset_id")
    upstream_assets = {f"dataproduct://{name}/v1" for name in PRODUCTS[:2]}
    for run in downstream:  # each downstream run started after both upstreams had published
        assert upstream_assets <= {uri for uri, stamp in events if stamp <= run[3]}, (run, events)

    rows = published(services.data, "delays_weather_daily")
    flights = published(services.data, "flights_daily")
    assert [str(r["day"]) for r in rows] == list(DAYS)
    for row in rows:
        assert row["flights"] == sum(f["flights"] for f in flights if f["flight_date"] == row["day"])


def wait_for(condition, timeout: float, what: str, services) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(2)
    pytest.fail(f"{what} within {timeout}s\n{services.log_tail()}")


def test_dropped_yaml_appears_and_a_broken_one_shows_its_error(services):
    folder = services.env["AIRFLOW__CORE__DAGS_FOLDER"]
    wait_for(lambda: services.query("select 1 from dag where dag_id = 'flights_daily'"), 120,
             "the demo products did not appear", services)
    new = demo_yaml("weather_daily").replace("name: weather_daily", "name: weather_copy")
    (Path(folder) / "weather_copy.yaml").write_text(new)
    broken = demo_yaml("flights_daily").replace("name: flights_daily", "name: flights_broken") \
        .replace("    format: csv\n    csv:", "    formt: csv\n    csv:", 1)
    (Path(folder) / "flights_broken.yaml").write_text(broken)

    wait_for(lambda: services.query("select 1 from dag where dag_id = 'weather_copy' and is_stale = false"),
             180, "a dropped YAML file did not become a DAG", services)
    wait_for(lambda: services.query("select 1 from dag where dag_id = 'flights_broken'"), 60,
             "the broken file's placeholder DAG did not appear", services)
    tags = {t for (t,) in services.query("select name from dag_tag where dag_id = 'flights_broken'")}
    assert "invalid-spec" in tags
    assert services.query("select 1 from dag where dag_id = 'flights_daily' and is_stale = false"), \
        "a broken file hid another product"
    processor_log = "\n".join(p.read_text(errors="replace") for p in services.logs.rglob("*.log"))
    assert re.search(r"flights_broken\.yaml:\d+:\d+: inputs\[0\]\.formt: unknown key", processor_log)
