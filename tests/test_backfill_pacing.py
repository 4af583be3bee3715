"""Backfill pacing without a scheduler: the window and rate rules, the gate's decisions, and
the cluster policy applied by Airflow's own backfill creation on the test metadata DB."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from dag_factory.backfill import rate
from dag_factory.backfill.config import (
    BACKFILL_PRIORITY_WEIGHT, PacingConfig, backfill_pool, is_backfill, pacing_pool,
)
from dag_factory.backfill.gate import decide
from dag_factory.backfill.window import AllowedHours

UTC = dt.timezone.utc


def at(hhmm: str, day: int = 1) -> dt.datetime:
    hour, minute = map(int, hhmm.split(":"))
    return dt.datetime(2026, 1, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize("window, moment, is_open, opens", [
    ("00:00-06:00", "05:59", True, "05:59"),
    ("00:00-06:00", "06:00", False, "00:00+1"),
    ("00:00-06:00", "23:00", False, "00:00+1"),
    ("22:00-04:00", "23:30", True, "23:30"),
    ("22:00-04:00", "03:59", True, "03:59"),
    ("22:00-04:00", "04:00", False, "22:00"),
    ("13:05-14:00", "13:04", False, "13:05"),
    ("00:00-00:00", "17:17", True, "17:17"),
])
def test_allowed_hours_open_and_next_opening(window, moment, is_open, opens):
    hours = AllowedHours.parse(window)
    assert hours.is_open(at(moment)) is is_open
    expected = at(opens[:5], 2) if opens.endswith("+1") else at(opens)
    assert hours.next_open(at(moment)) == expected


def test_allowed_hours_rejects_a_malformed_window():
    with pytest.raises(ValueError, match='expected a UTC window "HH:MM-HH:MM"'):
        AllowedHours.parse("6-9")


@given(start=st.integers(0, 1439), end=st.integers(0, 1439), minute=st.integers(0, 3 * 1440))
def test_next_open_is_open_and_nothing_earlier_is(start, end, minute):
    hours = AllowedHours(start, end)
    moment = at("00:00") + dt.timedelta(minutes=minute, seconds=17)
    opening = hours.next_open(moment)
    assert opening >= moment and hours.is_open(opening)
    if opening > moment:  # every whole minute before the opening is closed
        probe = moment
        while probe < opening - dt.timedelta(minutes=1):
            probe += dt.timedelta(minutes=1)
            assert not hours.is_open(probe) or probe >= opening


@settings(max_examples=200)
@given(limit=st.integers(1, 5), gaps=st.lists(st.integers(0, 1800), min_size=1, max_size=40))
def test_rate_ledger_never_admits_more_than_the_limit_in_any_hour(limit, gaps):
    ledger: list[dt.datetime] = []
    admitted: list[dt.datetime] = []
    now = at("00:00")
    for gap in gaps:
        now += dt.timedelta(seconds=gap)
        result = rate.admit(ledger, now, limit)
        ledger = list(rate.loads(rate.dumps(result.ledger)))  # through the Variable's JSON
        if result.admitted:
            admitted.append(now)
        else:
            assert result.retry_at > now
            assert rate.admit(ledger, result.retry_at, limit).admitted  # the slot is real
    for first in admitted:  # every 60-minute period starting at an admission
        assert sum(first <= t < first + rate.PERIOD for t in admitted) <= limit


def test_rate_ledger_retry_time_is_when_the_oldest_admission_leaves_the_hour():
    ledger = [at("10:00"), at("10:20"), at("10:40")]
    refused = rate.admit(ledger, at("10:50"), 3)
    assert not refused.admitted and refused.retry_at == at("11:00") and refused.in_last_hour == 3
    assert rate.admit(ledger, at("11:00"), 3).admitted
    assert rate.loads("not json") == [] and rate.loads(None) == []


def test_gate_decisions_say_why_and_until_when():
    config = PacingConfig(product="p", allowed_hours="13:05-14:00", max_runs_per_hour=2)
    wait, reason, _ = decide(config, at("13:04"), [])
    assert wait == at("13:05") and "outside allowed_hours 13:05-14:00 UTC" in reason
    assert "2026-01-01T13:05:00+00:00" in reason
    wait, reason, admission = decide(config, at("13:10"), [at("13:06")])
    assert wait is None and "2 of max_runs_per_hour 2" in reason and len(admission.ledger) == 2
    wait, reason, _ = decide(config, at("13:11"), list(admission.ledger))
    # the next slot (14:06) is after the window closes: wait for tomorrow's window
    assert wait == at("13:05", 2) and "max_runs_per_hour 2 reached" in reason
    assert decide(PacingConfig(product="p"), at("03:00"), [])[0] is None


def test_run_types_and_pool_names():
    assert is_backfill("backfill") and not is_backfill("scheduled") and not is_backfill("manual")
    assert is_backfill(None, "backfill__2013-01-01T00:00:00+00:00")
    assert not is_backfill(None, "scheduled__2013-01-01T00:00:00+00:00")
    assert backfill_pool("flights_daily") == "dataproducts_backfill__flights_daily"
    assert pacing_pool("flights_daily") == "dataproducts_pacing__flights_daily"
    with pytest.raises(ValueError, match="without a product"):
        PacingConfig.from_mapping({"pool_slots": 2})


@pytest.mark.airflow_run
@pytest.mark.usefixtures("airflow_db")
def test_airflow_backfill_creation_applies_the_policy(tmp_path, data_folder):
    """Airflow's own backfill creation (what the dialog and REST API call) creates the task
    instances through our entry-point policy: backfill pool, low priority, limited runs."""
    from sqlalchemy import select

    from airflow.models.backfill import Backfill, _create_backfill
    from airflow.models.pool import Pool
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from helpers import demo_yaml, products_folder, run

    spec = demo_yaml("weather_daily").replace("name: weather_daily", "name: weather_paced") \
        + "backfill:\n  max_active_runs: 2\n  pool_slots: 1\n  max_runs_per_hour: 5\n"
    folder = products_folder(tmp_path, [], {"weather_paced.yaml": spec})
    scheduled = run("weather_paced", dt.date(2013, 1, 1), folder)  # also syncs the DAG
    assert scheduled.state == "success"

    backfill = _create_backfill(
        dag_id="weather_paced", from_date=dt.datetime(2013, 1, 2, tzinfo=UTC),
        to_date=dt.datetime(2013, 1, 4, tzinfo=UTC), max_active_runs=10, reverse=False,
        dag_run_conf=None, triggering_user_name="test")
    with create_session() as session:
        assert session.get(Backfill, backfill.id).max_active_runs == 2  # the spec's limit won
        tis = session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == "weather_paced")).all()
        backfill_tis = [ti for ti in tis if ti.run_id.startswith("backfill__")]
        assert len({ti.run_id for ti in backfill_tis}) == 3
        for ti in backfill_tis:
            expected = pacing_pool("weather_paced") if ti.task_id == "pacing" \
                else backfill_pool("weather_paced")
            assert (ti.pool, ti.priority_weight) == (expected, BACKFILL_PRIORITY_WEIGHT), ti
        others = [ti for ti in tis if not ti.run_id.startswith("backfill__")]
        assert others and all(ti.pool == "default_pool" and ti.priority_weight > 0 for ti in others)
        pools = {p.pool: p for p in session.scalars(select(Pool).where(Pool.pool.like("dataproducts_%")))}
        assert pools[backfill_pool("weather_paced")].slots == 1
        assert pools[pacing_pool("weather_paced")].slots == 1
        assert not pools[backfill_pool("weather_paced")].include_deferred
