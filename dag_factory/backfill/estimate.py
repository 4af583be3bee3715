"""How long a paced backfill takes: a small simulation of the pacing rules.

Runs start in order; a run starts at the earliest moment when (1) fewer than ``concurrency``
runs are in flight, (2) the ``allowed_hours`` window is open, and (3) fewer than
``max_runs_per_hour`` runs started in the hour before. Each run then takes ``run_seconds``
(the product's median run time). ``concurrency`` is ``min(max_active_runs, pool_slots)``: a
product run is a chain of tasks, so a pool of ``pool_slots`` task slots carries about that
many runs at once.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections import deque
from dataclasses import dataclass

from dag_factory.backfill.config import PacingConfig
from dag_factory.backfill.rate import PERIOD
from dag_factory.backfill.window import AllowedHours


@dataclass(frozen=True)
class Estimate:
    """A backfill's expected duration.

    Attributes:
        runs: partitions to process; run_seconds: median run time used (seconds);
        concurrency: runs at once (``min(max_active_runs, pool_slots)``);
        ideal_seconds: ``ceil(runs / concurrency) * run_seconds``, concurrency alone
            (the issue's ideal: partitions / allowed concurrency x median run time);
        paced_seconds: with the window and the rate limit too (the simulation);
        finishes_at: ``start + paced_seconds`` (aware UTC).
    """

    runs: int
    run_seconds: float
    concurrency: int
    ideal_seconds: float
    paced_seconds: float
    finishes_at: dt.datetime


def estimate(config: PacingConfig, runs: int, run_seconds: float,
             start: dt.datetime) -> Estimate:
    """Simulate the pacing of ``runs`` runs of ``run_seconds`` each from ``start``.

    Args:
        config: the product's pacing; runs: number of runs (>= 0);
        run_seconds: median run time in seconds (> 0); start: aware UTC.

    Raises:
        ValueError: negative ``runs`` or non-positive ``run_seconds``.
    """
    if runs < 0 or run_seconds <= 0:
        raise ValueError(f"runs must be >= 0 and run_seconds > 0, got {runs}, {run_seconds}")
    concurrency = min(config.max_active_runs, config.pool_slots)
    window = AllowedHours.parse(config.allowed_hours) if config.allowed_hours else None
    duration = dt.timedelta(seconds=run_seconds)
    in_flight: list[dt.datetime] = []  # end times (heap)
    started: deque[dt.datetime] = deque()  # start times in the last hour
    now = start
    end = start
    for _ in range(runs):
        while True:
            if len(in_flight) >= concurrency:
                now = max(now, heapq.heappop(in_flight))
                continue
            if window is not None and not window.is_open(now):
                now = window.next_open(now)
            while started and started[0] <= now - PERIOD:
                started.popleft()
            if config.max_runs_per_hour and len(started) >= config.max_runs_per_hour:
                now = started[0] + PERIOD
                continue
            break
        started.append(now)
        heapq.heappush(in_flight, now + duration)
        end = max(end, now + duration)
    waves = -(-runs // concurrency) if runs else 0
    return Estimate(runs=runs, run_seconds=run_seconds, concurrency=concurrency,
                    ideal_seconds=waves * run_seconds,
                    paced_seconds=(end - start).total_seconds(), finishes_at=end)


def median_run_seconds(durations: list[float], default: float = 60.0) -> float:
    """The median of run durations in seconds; ``default`` when there are none."""
    values = sorted(d for d in durations if d > 0)
    if not values:
        return default
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
