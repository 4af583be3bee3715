"""The SLO engine's computation core: SLIs, error budgets, burn rates, state, boundaries."""

from __future__ import annotations

import datetime as dt

import pytest

from dag_factory.slo import (
    AT_RISK, BREACHED, NO_DATA, OK, RunRecord, SloTargets, burn_rate, compute, error_budget,
)
from dag_factory.spec.models import SloSpec

UTC = dt.timezone.utc
DAY, HOUR, US = dt.timedelta(days=1), dt.timedelta(hours=1), dt.timedelta(microseconds=1)
MIDNIGHT = dt.datetime(2024, 3, 1, tzinfo=UTC)
NOW = MIDNIGHT + 12 * HOUR  # noon: the partition due at midnight was published at 00:30
TARGETS = SloTargets(freshness=26 * HOUR, success_rate=0.9, quality_pass_rate=0.9,
                     window=30 * DAY)


def run(days_ago: int, state: str = "success", **fields) -> RunRecord:
    """The daily partition due ``days_ago`` days before MIDNIGHT (0 = due at MIDNIGHT)."""
    end = MIDNIGHT - days_ago * DAY
    if state == "success":
        fields.setdefault("gate", "pass")
        fields.setdefault("published_at", end + 30 * dt.timedelta(minutes=1))
    if state == "failed":
        fields.setdefault("failed_stage", "transform")
        fields.setdefault("failed_task", "transform.run_sql")
        fields.setdefault("error", "Binder Error: column x not found")
        fields.setdefault("log_url", f"http://airflow/log/{days_ago}")
    return RunRecord(run_id=fields.pop("run_id", f"scheduled__{days_ago}"),
                     partition_start=end - DAY, partition_end=end, due_at=end, state=state,
                     **fields)


def healthy(days: int = 30) -> list[RunRecord]:
    """One published partition a day for the last ``days`` days (due 0..days-1 days ago)."""
    return [run(d) for d in range(days)]


def with_failures(*days_ago: int, days: int = 30) -> list[RunRecord]:
    return [run(d, "failed", gate="fail" if d in days_ago else None)
            if d in days_ago else run(d) for d in range(days)]


# --- empty, all good, all failed ------------------------------------------------------------

def test_no_records_is_no_data():
    status = compute(TARGETS, [], NOW)
    assert status.state == NO_DATA and status.reasons
    assert status.freshness.age_seconds is None and status.freshness.met is None
    for sli in (status.success_rate, status.quality_pass_rate):
        assert (sli.events, sli.rate, sli.met) == (0, None, None)
        assert sli.error_budget.allowed == 0 and sli.error_budget.remaining_fraction is None
        assert sli.burn_rates.window.rate is None and not sli.fast_burn
    assert status.last_failure is None


def test_all_published_and_passed_is_ok_with_an_untouched_budget():
    status = compute(TARGETS, healthy(), NOW)
    assert (status.state, status.reasons) == (OK, ())
    success = status.success_rate
    assert (success.good, success.bad, success.rate, success.met) == (30, 0, 1.0, True)
    assert success.error_budget.allowed == 3.0
    assert success.error_budget.remaining_fraction == 1.0
    assert [b.rate for b in (success.burn_rates.window, success.burn_rates.long,
                             success.burn_rates.short)] == [0.0, 0.0, 0.0]
    assert status.freshness.age_seconds == 11.5 * 3600 and status.freshness.met is True
    assert status.freshness.target_seconds == 26 * 3600
    assert status.window_seconds == 30 * 86400
    assert status.last_failure is None


def test_all_failed_is_breached_with_an_overspent_budget_and_the_last_failure():
    records = [run(d, "failed", gate="fail") for d in range(30)]
    status = compute(TARGETS, records, NOW)
    assert status.state == BREACHED
    success = status.success_rate
    assert (success.good, success.bad, success.rate, success.met) == (0, 30, 0.0, False)
    assert success.error_budget.remaining == -27.0
    assert success.error_budget.remaining_fraction == -9.0
    assert success.burn_rates.window.rate == 10.0 and success.fast_burn
    assert status.quality_pass_rate.rate == 0.0
    # nothing ever published: freshness is judged from the first due partition (30 days ago)
    assert status.freshness.age_seconds is None and status.freshness.met is False
    assert status.last_failure.run_id == "scheduled__0"
    assert status.last_failure.log_url == "http://airflow/log/0"
    assert any("success rate: 0% below the 90% target (30 of 30 missed)" in r
               for r in status.reasons)


# --- quality pass rate ----------------------------------------------------------------------

def test_warn_only_gates_pass_quality_and_are_counted_as_warnings():
    status = compute(TARGETS, [run(d, gate="warn") for d in range(30)], NOW)
    quality = status.quality_pass_rate
    assert (quality.good, quality.bad, quality.warned, quality.rate, quality.met) == \
        (30, 0, 30, 1.0, True)
    assert status.state == OK


def test_gates_that_did_not_run_are_not_quality_events():
    records = healthy(20) + [run(d, "failed", gate=None) for d in range(20, 30)]
    status = compute(TARGETS, records, NOW)
    assert status.quality_pass_rate.events == 20
    assert status.success_rate.events == 30 and status.success_rate.bad == 10


def test_a_failed_gate_then_a_passing_rerun_counts_once_as_passed():
    records = healthy() + [run(0, "failed", gate="fail", started_at=MIDNIGHT + 2 * HOUR)]
    records[0] = run(0, gate="pass", started_at=MIDNIGHT + 3 * HOUR)
    status = compute(TARGETS, records, NOW)
    assert (status.quality_pass_rate.good, status.quality_pass_rate.bad) == (30, 0)
    assert (status.success_rate.good, status.success_rate.bad) == (30, 0)


# --- re-runs: the latest record of a partition wins -----------------------------------------

def test_a_failed_partition_rerun_successfully_counts_once_as_success():
    first = run(3, "failed", gate="fail", started_at=MIDNIGHT - 3 * DAY)
    rerun = run(3, run_id="manual__rerun", started_at=MIDNIGHT - 2 * DAY)
    records = [r for r in healthy() if r.partition_end != first.partition_end]
    for ordered in (records + [first, rerun], [rerun] + records + [first]):
        status = compute(TARGETS, ordered, NOW)
        assert (status.success_rate.good, status.success_rate.bad) == (30, 0)
        assert status.quality_pass_rate.events == 30 and status.quality_pass_rate.bad == 0
        assert status.state == OK
        assert status.last_failure is first  # still reported, for the record


def test_without_started_at_the_later_record_in_the_input_wins():
    records = healthy()
    records[5:6] = [run(5, "failed", gate="fail"), run(5, gate="pass")]
    status = compute(TARGETS, records, NOW)
    assert (status.success_rate.good, status.quality_pass_rate.good) == (30, 30)
    records[5:7] = [run(5), run(5, "failed", gate="fail")]
    status = compute(TARGETS, records, NOW)
    assert status.quality_pass_rate.bad == 1  # the latest gate verdict
    assert status.success_rate.bad == 0       # still published: a failed re-run keeps the data


def test_a_rerun_in_progress_of_a_failed_partition_is_pending_until_late():
    failed = run(0, "failed", started_at=MIDNIGHT + 10 * US)
    rerun = run(0, "running", run_id="manual__rerun", started_at=MIDNIGHT + HOUR)
    status = compute(TARGETS, healthy()[1:] + [failed, rerun], NOW)
    assert (status.success_rate.pending, status.success_rate.bad) == (1, 0)
    assert status.success_rate.events == 29


def test_the_last_failure_is_the_most_recent_failed_run_with_its_checks():
    checks = [{"name": "row_count", "outcome": "failed", "value": 0, "threshold": "> 0"}]
    records = with_failures(2, 9)
    records[2] = run(2, "failed", gate="fail", failed_stage="quality_gate",
                     failed_task="quality_gate.verify_contract", failing_checks=checks,
                     error=None)
    last = compute(TARGETS, records, NOW).last_failure
    assert (last.run_id, last.failed_stage, last.failed_task) == \
        ("scheduled__2", "quality_gate", "quality_gate.verify_contract")
    assert last.failing_checks == checks and last.log_url == "http://airflow/log/2"


# --- window edges: (now - window, now] ------------------------------------------------------

def test_a_partition_due_exactly_at_the_window_start_is_outside():
    now = MIDNIGHT + 30 * DAY  # the window starts exactly at MIDNIGHT
    edge = run(0, "failed")
    status = compute(TARGETS, [edge], now)
    assert status.success_rate.events == 0
    assert status.state == NO_DATA
    status = compute(TARGETS, [edge], now - US)  # one microsecond earlier it is inside
    assert (status.success_rate.events, status.success_rate.bad) == (1, 1)


def test_a_partition_due_exactly_now_is_inside_and_one_due_later_is_not():
    status = compute(TARGETS, [run(0, "failed")], MIDNIGHT)
    assert status.success_rate.bad == 1
    status = compute(TARGETS, [run(0, "failed")], MIDNIGHT - US)
    assert status.success_rate.events == 0
    assert status.last_failure is not None  # the last failure is reported whatever its age


def test_burn_rate_windows_have_the_same_edges():
    # long window = 5 days: (now - 5d, now]; due 5 days before `now` is outside it
    now = MIDNIGHT
    status = compute(TARGETS, with_failures(5), now)
    assert (status.success_rate.burn_rates.long.events,
            status.success_rate.burn_rates.long.misses) == (5, 0)
    status = compute(TARGETS, with_failures(5), now - US)
    assert status.success_rate.burn_rates.long.misses == 1


# --- pending partitions and the grace period ------------------------------------------------

def test_an_unfinished_partition_is_pending_until_due_plus_freshness_then_late():
    records = healthy()[1:] + [run(0, "running")]
    limit = MIDNIGHT + 26 * HOUR
    at_limit = compute(TARGETS, records, limit)
    assert (at_limit.success_rate.pending, at_limit.success_rate.late) == (1, 0)
    after = compute(TARGETS, records, limit + US)
    assert (after.success_rate.pending, after.success_rate.late, after.success_rate.bad) == \
        (0, 1, 1)


def test_without_a_freshness_target_the_grace_is_one_partition_interval():
    targets = SloTargets(success_rate=0.9)
    records = healthy()[1:] + [run(0, "queued")]
    assert compute(targets, records, MIDNIGHT + DAY).success_rate.pending == 1
    assert compute(targets, records, MIDNIGHT + DAY + US).success_rate.late == 1


def test_a_run_that_succeeded_without_a_publish_is_a_miss():
    records = healthy()[1:] + [run(0, "success", published_at=None)]
    assert compute(TARGETS, records, NOW).success_rate.bad == 1


def test_a_publish_stamped_after_now_counts_with_age_zero():
    # clock skew: the worker's clock is ahead of the web server's
    records = healthy()[1:] + [run(0, published_at=NOW + US)]
    status = compute(TARGETS, records, NOW)
    assert status.freshness.last_published_at == NOW + US
    assert status.freshness.age_seconds == 0.0 and status.freshness.met is True
    assert (status.success_rate.good, status.success_rate.bad) == (30, 0)


# --- freshness ------------------------------------------------------------------------------

def test_freshness_exactly_at_the_limit_is_met_and_one_microsecond_later_breached():
    published = MIDNIGHT + 30 * dt.timedelta(minutes=1)
    limit = published + 26 * HOUR
    status = compute(TARGETS, healthy(), limit)
    assert status.freshness.age_seconds == 26 * 3600 and status.freshness.met is True
    later = compute(TARGETS, healthy(), limit + US)
    assert later.freshness.met is False and later.state == BREACHED
    assert later.reasons[0].startswith("freshness: last publish 26h ago, over the 26h target")


def test_nothing_published_yet_is_no_data_then_fresh_until_first_due_plus_target():
    first = [run(0, "running")]
    status = compute(TARGETS, first, NOW)
    assert status.state == NO_DATA
    assert status.freshness.met is True and status.freshness.age_seconds is None
    late = compute(TARGETS, first, MIDNIGHT + 26 * HOUR + US)
    assert late.state == BREACHED and late.freshness.met is False
    assert late.success_rate.late == 1


# --- error budget, burn rates and AT RISK ---------------------------------------------------

def test_error_budget_and_burn_rates_over_the_three_windows():
    # at 01:00 the newest publish (yesterday 00:30) is 24.5h old: fresh
    status = compute(TARGETS, with_failures(0, 2), MIDNIGHT + HOUR)
    assert status.freshness.met is True
    success = status.success_rate
    assert (success.good, success.bad, success.rate, success.met) == (28, 2, 0.933333333, True)
    assert success.error_budget == error_budget(0.9, 30, 2)
    assert (success.error_budget.allowed, success.error_budget.remaining,
            success.error_budget.remaining_fraction) == (3.0, 1.0, 0.333333333)
    rates = success.burn_rates
    assert (rates.window.window_seconds, rates.long.window_seconds,
            rates.short.window_seconds) == (30 * 86400, 5 * 86400, 86400)
    assert (rates.window.events, rates.long.events, rates.short.events) == (30, 5, 1)
    assert (rates.window.rate, rates.long.rate, rates.short.rate) == (0.666666667, 4.0, 10.0)
    assert success.fast_burn
    assert status.state == AT_RISK
    assert any("fast burn, 4x over 5d and 10x over 1d" in r for r in status.reasons)


def test_old_misses_with_budget_left_are_ok_once_the_short_window_is_clean():
    status = compute(TARGETS, with_failures(1, 2), NOW)
    assert status.success_rate.burn_rates.long.rate == 4.0
    assert status.success_rate.burn_rates.short.rate == 0.0
    assert not status.success_rate.fast_burn
    assert status.state == OK  # 1/3 of the budget left, above 25%


def test_less_than_a_quarter_of_the_budget_left_is_at_risk():
    status = compute(TARGETS, with_failures(10, 20, 29), NOW)
    assert status.success_rate.met is True
    assert status.success_rate.error_budget.remaining_fraction == 0.0
    assert status.state == AT_RISK
    assert any("0% of the error budget left" in r for r in status.reasons)


def test_one_miss_more_than_the_budget_is_breached():
    status = compute(TARGETS, with_failures(10, 20, 28, 29), NOW)
    budget = status.success_rate.error_budget
    assert (budget.remaining, budget.remaining_fraction) == (-1.0, -0.333333333)
    assert status.success_rate.met is False and status.state == BREACHED


def test_an_exact_boundary_is_met_despite_float_rounding():
    # (1 - 0.71) * 100 is 28.999999999999996 in floating point
    assert error_budget(0.71, 100, 29).remaining == 0.0
    targets = SloTargets(success_rate=0.71, window=100 * DAY)
    status = compute(targets, with_failures(*range(40, 69), days=100), MIDNIGHT)
    assert (status.success_rate.events, status.success_rate.bad) == (100, 29)
    assert status.success_rate.met is True


def test_a_100_percent_target_has_no_budget():
    targets = SloTargets(success_rate=1.0)
    ok = compute(targets, healthy(), NOW).success_rate
    assert (ok.met, ok.error_budget.allowed, ok.error_budget.remaining_fraction) == \
        (True, 0.0, None)
    assert ok.burn_rates.window.rate is None
    assert compute(targets, with_failures(20), NOW).state == BREACHED


def test_burn_rate_formula():
    assert burn_rate(0.99, 100, 1) == 1.0
    assert burn_rate(0.99, 100, 0) == 0.0
    assert burn_rate(0.9, 5, 1) == 2.0
    assert burn_rate(None, 100, 1) is None
    assert burn_rate(0.99, 0, 0) is None


# --- absent targets -------------------------------------------------------------------------

def test_absent_targets_report_the_measurements_without_judging_them():
    targets = SloTargets.from_spec(SloSpec())
    assert targets == SloTargets(window=30 * DAY)
    status = compute(targets, [run(d, "failed", gate="fail") for d in range(30)], NOW)
    assert status.state == OK and status.reasons == ()
    assert status.freshness.met is None and status.freshness.target_seconds is None
    for sli in (status.success_rate, status.quality_pass_rate):
        assert (sli.rate, sli.met, sli.error_budget, sli.fast_burn) == (0.0, None, None, False)
        assert (sli.burn_rates.short.misses, sli.burn_rates.short.rate) == (1, None)


def test_an_absent_target_does_not_affect_the_state_of_the_others():
    targets = SloTargets(freshness=26 * HOUR, quality_pass_rate=0.9)
    status = compute(targets, with_failures(1, 2, 3, 4, 5), NOW)  # gates failed too
    assert status.success_rate.met is None
    assert status.quality_pass_rate.met is False
    assert status.state == BREACHED
    assert all(r.startswith("quality pass rate") for r in status.reasons)


# --- targets and records --------------------------------------------------------------------

def test_targets_from_a_spec():
    spec = SloSpec(freshness="26h", success_rate="99%", quality_pass_rate="99.5%", window="7d")
    assert SloTargets.from_spec(spec) == SloTargets(
        freshness=26 * HOUR, success_rate=0.99, quality_pass_rate=0.995, window=7 * DAY)


@pytest.mark.parametrize("kwargs", [{"window": dt.timedelta(0)}, {"success_rate": 1.5},
                                    {"freshness": -HOUR}, {"quality_pass_rate": -0.1}])
def test_invalid_targets_are_rejected(kwargs):
    with pytest.raises(ValueError):
        SloTargets(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"state": "up_for_retry"}, "state 'up_for_retry'"),
    ({"gate": "passed"}, "gate 'passed'"),
    ({"due_at": dt.datetime(2024, 3, 1)}, "timezone-aware"),
    ({"partition_start": dt.datetime(2024, 2, 29)}, "aware interval"),
    ({"partition_start": MIDNIGHT + DAY}, "start <= end"),
])
def test_invalid_records_are_rejected(kwargs, message):
    fields = {"run_id": "r", "partition_start": MIDNIGHT - DAY, "partition_end": MIDNIGHT,
              "due_at": MIDNIGHT, "state": "success", **kwargs}
    with pytest.raises(ValueError, match=message):
        RunRecord(**fields)


def test_now_must_be_aware_and_records_may_be_an_iterator():
    with pytest.raises(ValueError, match="timezone-aware"):
        compute(TARGETS, [], dt.datetime(2024, 3, 1))
    status = compute(TARGETS, iter(healthy()), NOW)
    assert status.success_rate.events == 30 and status.evaluated_at == NOW


@pytest.mark.parametrize("first_day", [0, 35])  # running, or stopped 35 days ago
def test_records_outside_the_window_matter_only_as_newest_publish_first_due_and_last_failure(
        first_day):
    # what lets a reader fetch only the window plus three records per product
    records = [run(d, "failed", gate="fail") if d % 7 == 3 else run(d)
               for d in range(first_day, 365)]
    records += [run(40, "running", run_id="manual__old", started_at=MIDNIGHT - 20 * DAY)]
    window = [r for r in records if NOW - TARGETS.window < r.due_at <= NOW]
    extra = [max((r for r in records if r.published_at), key=lambda r: r.published_at),
             min(records, key=lambda r: r.due_at),
             max((r for r in records if r.state == "failed"),
                 key=lambda r: r.started_at or r.due_at)]
    status = compute(TARGETS, records, NOW)
    assert compute(TARGETS, window + extra, NOW) == status
    assert status.state == BREACHED


def test_a_publish_older_than_the_window_still_sets_freshness():
    import datetime as dt

    from dag_factory.slo.engine import SloTargets, compute

    now = dt.datetime(2013, 3, 1, tzinfo=dt.timezone.utc)
    targets = SloTargets(freshness=dt.timedelta(hours=26), window=dt.timedelta(days=30))
    old = now - dt.timedelta(days=40)
    status = compute(targets, [], now, last_published_at=old)
    assert status.freshness.age_seconds == 40 * 86400
    assert status.freshness.met is False and status.state == "BREACHED"
