"""Paced backfills under a real ``airflow standalone`` (LocalExecutor, parallelism 4, Postgres):
the limits hold over a sampled timeline, scheduled runs go first, a closed window holds runs in
the triggerer, the rate limit holds, and backfilled partitions equal normal runs' partitions."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_services import Sampler, drop_database, start_standalone
from dag_factory.backfill.config import backfill_pool, pacing_pool
from dag_factory.demo.s3server import free_port
from dag_factory.demo.seed import seed_landing
from helpers import demo_yaml, products_folder, published, run

pytestmark = pytest.mark.scheduler
UTC = dt.timezone.utc
PACED, WINDOW, RATE, SCHEDULED = "weather_paced", "weather_window", "weather_rate", "flights_now"
DAYS = 30


def product(base: str, name: str, backfill: str = "", **fields: str) -> str:
    """A demo product renamed, with its backfill block replaced, no alerts (no SMTP here) and
    top-level fields (start_date, end_date, catchup) overridden."""
    text = demo_yaml(base).replace(f"name: {base}", f"name: {name}")
    text = re.sub(r"^(backfill|alerts):\n(?:[ #].*\n)+", "", text, flags=re.M)
    for key, value in fields.items():
        text, count = re.subn(rf"^{key}: .*$", f"{key}: {value}", text, flags=re.M)
        if not count:
            text += f"{key}: {value}\n"
    return text + backfill


@dataclass
class Deployment:
    services: object
    data: Path
    folder: Path
    window_opens: dt.datetime
    sampler: Sampler
    backfills: dict[str, dict]
    cli_output: str
    scheduled_unpaused_at: dt.datetime | None = None


def wait_for(condition, timeout: float, what: str, services, period: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(period)
    pytest.fail(f"{what} within {timeout:.0f}s\n{services.log_tail()}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, postgres_url):
    tmp = tmp_path_factory.mktemp("backfill")
    now = dt.datetime.now(UTC)
    opens = (now + dt.timedelta(minutes=5)).replace(second=0, microsecond=0)
    closes = opens + dt.timedelta(minutes=30)
    window = f"{opens:%H:%M}-{closes:%H:%M}"
    files = {
        f"{PACED}.yaml": product("weather_daily", PACED,
                                 "backfill:\n  max_active_runs: 2\n  pool_slots: 1\n"),
        f"{WINDOW}.yaml": product("weather_daily", WINDOW,
                                  f'backfill:\n  max_active_runs: 3\n  pool_slots: 3\n'
                                  f'  allowed_hours: "{window}"\n'),
        f"{RATE}.yaml": product("weather_daily", RATE,
                                "backfill:\n  max_active_runs: 5\n  pool_slots: 2\n"
                                "  max_runs_per_hour: 3\n"),
        f"{SCHEDULED}.yaml": product("flights_daily", SCHEDULED, start_date="2013-01-02",
                                     end_date="2013-01-02", catchup="true"),
    }
    folder = products_folder(tmp, [], files)
    data = tmp / "data"
    seed_landing(data, dt.date(2013, 1, 1), dt.date(2013, 1, DAYS + 1), log=lambda _: None)
    services = start_standalone(tmp / "home", folder, data, postgres_url, free_port())
    sampler = None
    try:
        wait_for(lambda: len(services.query("select dag_id from dag where dag_id in "
                                            f"('{PACED}', '{WINDOW}', '{RATE}', '{SCHEDULED}')")) == 4,
                 180, "the products did not appear", services)
        for dag_id in (PACED, WINDOW, RATE):
            services.unpause(dag_id)
        sampler = Sampler(services).start()
        env = {**os.environ, "DATAPRODUCTS_API_URL": services.api_url,
               "DATAPRODUCTS_API_USERNAME": "admin", "DATAPRODUCTS_API_PASSWORD": "admin"}
        cli = subprocess.run([sys.executable, "-m", "dag_factory.cli.main", "--folder", str(folder),
                              "backfill", PACED, "--from", "2013-01-01", "--to", "2013-01-30"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        backfills = {PACED: services.api("GET", f"/api/v2/backfills?dag_id={PACED}")["backfills"][0]}
        assert dt.datetime.now(UTC) < opens - dt.timedelta(seconds=30), \
            "the deployment started too slowly to test the closed window"
        for dag_id, last in ((WINDOW, "2013-01-03"), (RATE, "2013-01-05")):
            backfills[dag_id] = services.api("POST", "/api/v2/backfills", {
                "dag_id": dag_id, "from_date": "2013-01-01T00:00:00Z",
                "to_date": f"{last}T00:00:00Z", "max_active_runs": 10})
        yield Deployment(services, data, folder, opens, sampler, backfills, cli.stdout)
    finally:
        if sampler:
            sampler.stop()
        services.stop()
        drop_database(postgres_url, services.db_url)


def backfill_done(services, dag_id: str) -> bool:
    return bool(services.query("select 1 from backfill where dag_id = :d and completed_at is not null",
                               d=dag_id))


def test_cli_dry_run_counts_and_estimates(deployment):
    env = {**os.environ, "DATAPRODUCTS_API_URL": deployment.services.api_url,
           "DATAPRODUCTS_API_USERNAME": "admin", "DATAPRODUCTS_API_PASSWORD": "admin"}
    cli = subprocess.run([sys.executable, "-m", "dag_factory.cli.main", "--folder",
                          str(deployment.folder), "backfill", SCHEDULED, "--from", "2013-02-01",
                          "--to", "2013-02-10", "--dry-run"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert f"{SCHEDULED}: 10 run(s) for 2013-02-01 .. 2013-02-10" in cli.stdout
    assert "estimate" in cli.stdout and "admin" not in cli.stdout
    assert not deployment.services.query(
        f"select 1 from backfill where dag_id = '{SCHEDULED}'"), "a dry run created a backfill"
    assert "30 run(s)" in deployment.cli_output and "created" in deployment.cli_output


def test_backfill_keeps_its_limits_and_scheduled_runs_go_first(deployment):
    services = deployment.services
    done = lambda: len(services.query(  # noqa: E731
        f"select 1 from dag_run where dag_id = '{PACED}' and run_type = 'backfill' and state = 'success'"))
    wait_for(lambda: done() >= 3, 600, "three backfill runs did not finish", services)
    unpaused_at = dt.datetime.now(UTC)
    services.unpause(SCHEDULED)  # its one scheduled run starts during the backfill
    wait_for(lambda: backfill_done(services, PACED), 1500, "the 30-day backfill did not finish",
             services, period=5)
    deployment.sampler.stop()

    samples = deployment.sampler.samples
    most_runs = max(s["runs"].get(PACED, 0) for s in samples)
    most_tasks = max(s["pools"].get(backfill_pool(PACED), 0) for s in samples)
    assert most_runs == 2, f"backfill runs at once: {most_runs} (max_active_runs 2)"
    assert most_tasks == 1, f"backfill task instances at once: {most_tasks} (pool_slots 1)"
    runs = services.query(f"select state from dag_run where dag_id = '{PACED}' and run_type = 'backfill'")
    assert [s for (s,) in runs] == ["success"] * DAYS

    scheduled = services.query(f"select run_type, state, start_date, end_date from dag_run "
                               f"where dag_id = '{SCHEDULED}'")
    assert [(r[0], r[1]) for r in scheduled] == [("scheduled", "success")], scheduled
    completed = services.query(f"select completed_at from backfill where dag_id = '{PACED}'")[0][0]
    assert unpaused_at < scheduled[0][2] and scheduled[0][3] < completed, \
        "the scheduled run did not finish before the backfill"
    weights = services.query(f"select pool, priority_weight from task_instance where dag_id = '{SCHEDULED}'")
    assert all(pool == "default_pool" and weight > 0 for pool, weight in weights), weights

    report = os.environ.get("DATAPRODUCTS_BACKFILL_TIMELINE")
    if report:  # bench/backfill.py and docs/backfill.md use the sampled timeline
        Path(report).write_text(json.dumps([{**s, "at": s["at"].isoformat()} for s in samples]))


@pytest.mark.usefixtures("airflow_db")  # the normal runs: dag.test() on the session's DB
def test_backfilled_partitions_equal_normal_runs(deployment, tmp_path, monkeypatch):
    wait_for(lambda: backfill_done(deployment.services, PACED), 1500,
             "the 30-day backfill did not finish", deployment.services, period=5)
    backfilled = published(deployment.data, PACED)
    assert sorted({str(r["weather_date"]) for r in backfilled}) == \
        [str(dt.date(2013, 1, 1) + dt.timedelta(days=i)) for i in range(DAYS)]
    data = tmp_path / "normal"
    data.mkdir()
    (data / "landing").symlink_to(deployment.data / "landing")
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_FOLDER", str(data))
    days = [dt.date(2013, 1, 1), dt.date(2013, 1, 15), dt.date(2013, 1, 30)]
    for day in days:
        assert run("weather_daily", day).state == "success"
    normal = published(data, "weather_daily")
    assert normal and [r for r in backfilled if r["weather_date"] in days] == normal


def test_closed_window_holds_runs_in_the_triggerer_until_it_opens(deployment):
    services = deployment.services
    opens = deployment.window_opens
    backfill = services.query(f"select max_active_runs from backfill where dag_id = '{WINDOW}'")
    assert backfill == [(3,)], f"the spec's max_active_runs 3 did not win over 10: {backfill}"
    wait_for(lambda: backfill_done(services, WINDOW), 1500, "the window backfill did not finish",
             services, period=5)
    held = [s for s in deployment.sampler.samples if s["at"] < opens]
    parked = [i for i, s in enumerate(held) if s["deferred"].get(WINDOW) == 3]
    assert parked, "the three runs were not held deferred before the window opened"
    # from the moment all three gates deferred until the window opened: no worker slot used
    assert all(not s["running_tis"].get(WINDOW) for s in held[parked[0]:]), \
        "a held run occupied a worker slot before the window opened"
    gates = services.query(f"select start_date, end_date, state from task_instance "
                           f"where dag_id = '{WINDOW}' and task_id = 'pacing'")
    assert len(gates) == 3 and all(state == "success" and end >= opens for _, end, state in gates)
    logs = list((services.logs.parent / "logs").rglob(f"dag_id={WINDOW}/**/task_id=pacing/*.log"))
    text = "\n".join(p.read_text() for p in logs)
    assert f"outside allowed_hours {opens:%H:%M}-" in text and f"opens at {opens:%Y-%m-%dT%H:%M}" in text


def test_rate_limit_admits_only_its_runs_per_hour(deployment):
    services = deployment.services
    wait_for(lambda: len(services.query(
        f"select 1 from dag_run where dag_id = '{RATE}' and state = 'success'")) >= 3, 900,
        "three rate-limited runs did not finish", services, period=5)
    wait_for(lambda: len(services.query(
        f"select 1 from task_instance where dag_id = '{RATE}' and task_id = 'pacing' "
        f"and state = 'deferred'")) == 2, 300, "two runs did not wait for the rate", services)
    admitted = [end for (end,) in services.query(
        f"select end_date from task_instance where dag_id = '{RATE}' and task_id = 'pacing' "
        f"and state = 'success'")]
    assert len(admitted) == 3
    assert max(admitted) - min(admitted) < dt.timedelta(hours=1)
    assert services.query(f"select pool from task_instance where dag_id = '{RATE}' and task_id = 'pacing'") \
        == [(pacing_pool(RATE),)] * 5
    variable = services.api("GET", f"/api/v2/variables/dataproducts_pacing__{RATE}")
    ledger = json.loads(variable["value"])
    assert len(ledger) == 3
    logs = list((services.logs.parent / "logs").rglob(f"dag_id={RATE}/**/task_id=pacing/*.log"))
    assert any("max_runs_per_hour 3 reached (3 backfill runs started in the last hour)"
               in p.read_text() for p in logs)
