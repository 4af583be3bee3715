"""The SLO engine's computation: SLIs, error budgets, burn rates and the SLO state of a product.

Pure functions over plain data (no Airflow, no database): :func:`compute` takes the product's
:class:`SloTargets`, its :class:`~dag_factory.slo.history.RunRecord` list and the evaluation
moment, and returns a :class:`SloStatus`. It is O(records) with no sorting, so it can run for
every product on each page load. Definitions, formulas and boundary rules: docs/slo.md.

Sources:
    SLI = good events / valid events, error budget = 1 - SLO: The Site Reliability Workbook
    (Beyer et al., O'Reilly 2018), ch. 2 "Implementing SLOs".
    Burn rate and multiwindow, multi-burn-rate alerting: The Site Reliability Workbook, ch. 5
    "Alerting on SLOs" (https://sre.google/workbook/alerting-on-slos/).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from dag_factory.slo.history import UNFINISHED, PartitionHistory, RunRecord, reduce_history
from dag_factory.spec.models import parse_duration, parse_percent

if TYPE_CHECKING:
    from dag_factory.spec.models import SloSpec

OK, AT_RISK, BREACHED, NO_DATA = "OK", "AT RISK", "BREACHED", "NO DATA"

#: Burn-rate windows as fractions of the SLO window (30d -> 5d long, 1d short).
LONG_WINDOW_FRACTION = 1 / 6
SHORT_WINDOW_FRACTION = 1 / 30
#: Fast burn: the burn rate over both the long and the short window is at least this.
FAST_BURN_RATE = 2.0
#: AT RISK when less than this fraction of an error budget remains.
LOW_BUDGET_FRACTION = 0.25
#: Derived floats are rounded to this many decimals, so that exact boundaries compare exactly
#: (e.g. (1 - 0.71) * 100 is 28.999999999999996 before rounding, 29.0 after).
DECIMALS = 9


@dataclass(frozen=True, slots=True)
class SloTargets:
    """A product's SLO targets as plain values.

    Attributes:
        freshness: the longest allowed time since the newest publish, or None (no target).
        success_rate: the target fraction (0.99 for 99%) of due partitions published, or None.
        quality_pass_rate: the target fraction of quality gates passed (pass or warn), or None.
        window: the SLO window the rates and error budgets are measured over.

    Raises:
        ValueError: a window that is not positive, a negative freshness, or a rate outside 0..1.
    """

    freshness: dt.timedelta | None = None
    success_rate: float | None = None
    quality_pass_rate: float | None = None
    window: dt.timedelta = dt.timedelta(days=30)

    def __post_init__(self) -> None:
        if self.window <= dt.timedelta(0):
            raise ValueError(f"the SLO window must be positive, got {self.window}")
        if self.freshness is not None and self.freshness < dt.timedelta(0):
            raise ValueError(f"the freshness target must not be negative, got {self.freshness}")
        for name in ("success_rate", "quality_pass_rate"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} must be a fraction between 0 and 1, got {value}")

    @classmethod
    def from_spec(cls, slo: "SloSpec") -> "SloTargets":
        """The targets of a spec's ``slo`` block (``"26h"`` -> timedelta, ``"99%"`` -> 0.99).

        Raises:
            ValueError: a malformed duration or percentage (a validated spec has none).
        """
        return cls(
            freshness=parse_duration(slo.freshness) if slo.freshness is not None else None,
            success_rate=parse_percent(slo.success_rate) if slo.success_rate is not None else None,
            quality_pass_rate=(parse_percent(slo.quality_pass_rate)
                               if slo.quality_pass_rate is not None else None),
            window=parse_duration(slo.window))


@dataclass(frozen=True, slots=True)
class FreshnessSLI:
    """Time since the newest publish.

    Attributes:
        age_seconds: ``now - last_published_at`` in seconds (0 if the publish is stamped after
            ``now``), or None when nothing was published.
        target_seconds: the freshness target in seconds, or None.
        met: ``age <= target``; with nothing published, ``now <= first due_at + target``;
            None without a target or without any due partition.
        last_published_at: the newest ``published_at`` of all records, or None.
    """

    age_seconds: float | None
    target_seconds: float | None
    met: bool | None
    last_published_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ErrorBudget:
    """The error budget of a ratio SLI over the SLO window.

    Attributes:
        allowed: misses the target allows, ``(1 - target) * events`` (a float).
        misses: bad events in the window.
        remaining: ``allowed - misses``; negative once the SLO is breached.
        remaining_fraction: ``remaining / allowed`` (1.0 = untouched, below 0 = overspent), or
            None when ``allowed`` is 0 (no events, or a 100% target).
    """

    allowed: float
    misses: int
    remaining: float
    remaining_fraction: float | None


@dataclass(frozen=True, slots=True)
class BurnRate:
    """The burn rate over one window ending at ``now``.

    Attributes:
        window_seconds: the window's length in seconds.
        events, misses: valid and bad events among the partitions due in that window.
        rate: ``(misses / events) / (1 - target)``; 1.0 spends exactly the budget over the SLO
            window. None without a target, without events, or with a 100% target.
    """

    window_seconds: float
    events: int
    misses: int
    rate: float | None


@dataclass(frozen=True, slots=True)
class BurnRates:
    """Burn rates over the SLO window and the long and short alerting windows."""

    window: BurnRate
    long: BurnRate
    short: BurnRate


@dataclass(frozen=True, slots=True, kw_only=True)
class RatioSLI:
    """An SLI that is a ratio of good to valid events over the SLO window.

    Attributes:
        target: the target fraction, or None. good, bad: event counts; events = good + bad.
        rate: ``good / events`` as a fraction (not percent), or None without events.
        met: ``misses <= allowed`` (the same as ``rate >= target``), or None without a
            target or without events.
        error_budget: None without a target. burn_rates: always present; their ``rate`` is
            None without a target.
        fast_burn: the burn rate over both the long and the short window is at least
            :data:`FAST_BURN_RATE`.
    """

    target: float | None
    good: int
    bad: int
    rate: float | None
    met: bool | None
    error_budget: ErrorBudget | None
    burn_rates: BurnRates
    fast_burn: bool

    @property
    def events(self) -> int:
        """Valid events in the window: ``good + bad``."""
        return self.good + self.bad


@dataclass(frozen=True, slots=True, kw_only=True)
class SuccessRateSLI(RatioSLI):
    """Partitions published / partitions due. Also: ``pending``, due partitions whose run is
    unfinished and not yet late (not events); ``late``, unfinished past their grace (in ``bad``).
    """

    pending: int
    late: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityPassRateSLI(RatioSLI):
    """Gates passed (pass or warn) / gates run. Also: ``warned``, the gates that warned
    (counted in ``good``)."""

    warned: int


@dataclass(frozen=True, slots=True)
class SloStatus:
    """A product's SLO status as of ``evaluated_at``.

    Attributes:
        state: ``"OK"`` | ``"AT RISK"`` | ``"BREACHED"`` | ``"NO DATA"`` (rules: :func:`compute`).
        reasons: one sentence per condition that set the state (empty when OK).
        evaluated_at: the ``now`` of the computation; window_seconds: the SLO window.
        freshness, success_rate, quality_pass_rate: the SLIs.
        last_failure: the most recent failed run record (any age), or None.
    """

    state: str
    reasons: tuple[str, ...]
    evaluated_at: dt.datetime
    window_seconds: float
    freshness: FreshnessSLI
    success_rate: SuccessRateSLI
    quality_pass_rate: QualityPassRateSLI
    last_failure: RunRecord | None


def compute(targets: SloTargets, records: Iterable[RunRecord], now: dt.datetime,
            last_published_at: dt.datetime | None = None) -> SloStatus:
    """Compute a product's SLIs, error budgets, burn rates and SLO state as of ``now``.

    Events are partitions due in the window ``(now - window, now]`` (start exclusive, end
    inclusive); the latest record of a partition supersedes earlier ones, and a partition
    published by any of its runs is good.

    State, first match wins:

    1. NO DATA: no success or quality event in the window and nothing ever published.
    2. BREACHED: an SLI with a target is not met (freshness over target, a rate below target).
    3. AT RISK: for the success or quality SLI with a target, less than 25% of the error budget
       remains, or fast burn: burn rate >= 2 over both the long (window/6) and the short
       (window/30) window (the multiwindow, multi-burn-rate rule of The Site Reliability
       Workbook, ch. 5 "Alerting on SLOs", with windows scaled for daily partitions).
    4. OK.

    An SLI without a target reports its measurement with ``met=None`` and never sets the state.

    Args:
        targets: the product's :class:`SloTargets`.
        records: its run records, any order (read once).
        now: the evaluation moment, timezone-aware.
        last_published_at: the newest publish known from elsewhere (aware), e.g. a publish
            older than the window whose run the caller did not read; the newer of it and the
            records' newest ``published_at`` sets freshness.

    Returns:
        the :class:`SloStatus`.

    Raises:
        ValueError: ``now`` is naive.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (UTC)")
    window = targets.window
    starts = (now - window, now - window * LONG_WINDOW_FRACTION,
              now - window * SHORT_WINDOW_FRACTION)
    history = reduce_history(records, now, starts[0])
    if last_published_at is not None and (history.last_published_at is None
                                          or last_published_at > history.last_published_at):
        history.last_published_at = last_published_at
    lengths = (window.total_seconds(), window.total_seconds() * LONG_WINDOW_FRACTION,
               window.total_seconds() * SHORT_WINDOW_FRACTION)

    good, bad, pending, late = _success_events(history, now, starts, targets.freshness)
    success = SuccessRateSLI(**_ratio(targets.success_rate, good, bad, lengths),
                             pending=pending, late=late)
    good, bad, warned = _quality_events(history, starts)
    quality = QualityPassRateSLI(**_ratio(targets.quality_pass_rate, good, bad, lengths),
                                 warned=warned)
    freshness = _freshness(history, targets.freshness, now)
    state, reasons = _state(freshness, success, quality, history)
    return SloStatus(state=state, reasons=reasons, evaluated_at=now,
                     window_seconds=lengths[0], freshness=freshness, success_rate=success,
                     quality_pass_rate=quality, last_failure=history.last_failed)


def error_budget(target: float, events: int, misses: int) -> ErrorBudget:
    """The error budget of ``events`` with ``misses`` bad ones for a ``target`` fraction.

    ``allowed = (1 - target) * events``, ``remaining = allowed - misses``,
    ``remaining_fraction = remaining / allowed`` (None when ``allowed`` is 0). Source: The Site
    Reliability Workbook, ch. 2 "Implementing SLOs" (error budget = 1 - SLO).
    """
    allowed = round((1 - target) * events, DECIMALS)
    remaining = round(allowed - misses, DECIMALS)
    fraction = round(remaining / allowed, DECIMALS) if allowed > 0 else None
    return ErrorBudget(allowed=allowed, misses=misses, remaining=remaining,
                       remaining_fraction=fraction)


def burn_rate(target: float | None, events: int, misses: int) -> float | None:
    """``(misses / events) / (1 - target)``: how fast the error budget is spent relative to
    spending exactly all of it over the SLO window (1.0). None without a target, without
    events or with a 100% target. Source: The Site Reliability Workbook, ch. 5 "Alerting on SLOs".
    """
    if target is None or events == 0 or target >= 1:
        return None
    return round(misses / events / (1 - target), DECIMALS)


def _success_events(history: PartitionHistory, now: dt.datetime, starts: tuple,
                    freshness: dt.timedelta | None) -> tuple[list[int], list[int], int, int]:
    """Good and bad partitions per window (SLO, long, short), and the pending and late counts.

    Good: published. Bad: its latest run failed or succeeded without a publish, or it is
    unfinished past ``due_at + grace`` (late). Unfinished within the grace: pending, not an
    event. Grace: the freshness target, else the partition's own length.
    """
    good, bad = [0, 0, 0], [0, 0, 0]
    pending = late = 0
    for key, record in history.latest.items():
        if key in history.published:
            counts = good
        elif record.state in UNFINISHED:
            grace = freshness if freshness is not None else key[1] - key[0]
            if now <= record.due_at + grace:
                pending += 1
                continue
            late += 1
            counts = bad
        else:
            counts = bad
        _count(counts, record.due_at, starts)
    return good, bad, pending, late


def _quality_events(history: PartitionHistory,
                    starts: tuple) -> tuple[list[int], list[int], int]:
    """Passed (pass or warn) and failed gates per window, from each partition's latest gate;
    and the number of warnings over the SLO window."""
    good, bad = [0, 0, 0], [0, 0, 0]
    warned = 0
    for record in history.latest_gated.values():
        if record.gate == "fail":
            _count(bad, record.due_at, starts)
        else:
            warned += record.gate == "warn"
            _count(good, record.due_at, starts)
    return good, bad, warned


def _count(counts: list[int], due: dt.datetime, starts: tuple) -> None:
    counts[0] += 1
    if due > starts[1]:
        counts[1] += 1
        if due > starts[2]:
            counts[2] += 1


def _ratio(target: float | None, good: list[int], bad: list[int], lengths: tuple) -> dict:
    events, misses = good[0] + bad[0], bad[0]
    budget = error_budget(target, events, misses) if target is not None else None
    rates = BurnRates(*(BurnRate(window_seconds=lengths[i], events=good[i] + bad[i],
                                 misses=bad[i], rate=burn_rate(target, good[i] + bad[i], bad[i]))
                        for i in range(3)))
    fast = (rates.long.rate is not None and rates.short.rate is not None
            and rates.long.rate >= FAST_BURN_RATE and rates.short.rate >= FAST_BURN_RATE)
    return dict(target=target, good=good[0], bad=misses,
                rate=round(good[0] / events, DECIMALS) if events else None,
                met=None if budget is None or events == 0 else misses <= budget.allowed,
                error_budget=budget, burn_rates=rates, fast_burn=fast)


def _freshness(history: PartitionHistory, target: dt.timedelta | None,
               now: dt.datetime) -> FreshnessSLI:
    last = history.last_published_at
    # a publish stamped after `now` (clock skew between workers and the web server) is age 0
    age = max(now - last, dt.timedelta(0)) if last is not None else None
    if target is None:
        met = None
    elif age is not None:
        met = age <= target
    elif history.first_due_at is not None:
        met = now - history.first_due_at <= target
    else:
        met = None
    return FreshnessSLI(age_seconds=age.total_seconds() if age is not None else None,
                        target_seconds=target.total_seconds() if target is not None else None,
                        met=met, last_published_at=last)


def _state(freshness: FreshnessSLI, success: SuccessRateSLI, quality: QualityPassRateSLI,
           history: PartitionHistory) -> tuple[str, tuple[str, ...]]:
    """The state and its reasons, by the rules of :func:`compute`."""
    if success.events == 0 and quality.events == 0 and history.last_published_at is None:
        return NO_DATA, ("no partition due in the window has a result and nothing was "
                         "ever published",)
    ratios = (("success rate", success), ("quality pass rate", quality))
    breached = [_freshness_reason(freshness)] if freshness.met is False else []
    breached += [f"{name}: {_percent(sli.rate)} below the {_percent(sli.target)} target "
                 f"({sli.bad} of {sli.events} missed)" for name, sli in ratios if sli.met is False]
    if breached:
        return BREACHED, tuple(breached)
    at_risk = [reason for name, sli in ratios for reason in _risk_reasons(name, sli)]
    return (AT_RISK, tuple(at_risk)) if at_risk else (OK, ())


def _freshness_reason(freshness: FreshnessSLI) -> str:
    target = _duration(freshness.target_seconds)
    if freshness.age_seconds is None:
        return f"freshness: nothing published within {target} of the first due partition"
    return f"freshness: last publish {_duration(freshness.age_seconds)} ago, over the {target} target"


def _risk_reasons(name: str, sli: RatioSLI) -> list[str]:
    budget, reasons = sli.error_budget, []
    if budget is None:
        return reasons
    left = budget.remaining_fraction
    if left is not None and left < LOW_BUDGET_FRACTION:
        reasons.append(f"{name}: {_percent(left)} of the error budget left "
                       f"(under {_percent(LOW_BUDGET_FRACTION)})")
    if sli.fast_burn:
        long, short = sli.burn_rates.long, sli.burn_rates.short
        reasons.append(f"{name}: fast burn, {long.rate:g}x over {_duration(long.window_seconds)} "
                       f"and {short.rate:g}x over {_duration(short.window_seconds)} "
                       f"(at least {FAST_BURN_RATE:g}x)")
    return reasons


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.2f}".rstrip("0").rstrip(".") + "%"


def _duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}".rstrip("0").rstrip(".") + "h"
    return f"{seconds / 60:.1f}".rstrip("0").rstrip(".") + "m"
