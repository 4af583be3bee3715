"""``max_runs_per_hour``: a sliding one-hour ledger of the backfill runs admitted.

The ledger is the list of admission times of a product's backfill runs in the last hour,
kept in the Airflow Variable ``dataproducts_pacing__<product>`` (tasks may read and write
Variables through the Task SDK; they may not touch the metadata DB). A run is admitted when
fewer than ``limit`` admissions lie in the 60 minutes before now, so any 60-minute period holds
at most ``limit`` admissions. The read-check-write is not atomic by itself: the ``pacing`` task
of backfill runs runs in a one-slot pool per product (:func:`~dag_factory.backfill.config.pacing_pool`),
so two admissions of the same product never interleave.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

PERIOD = dt.timedelta(hours=1)


def ledger_key(product: str) -> str:
    """The Variable holding a product's ledger."""
    return f"dataproducts_pacing__{product}"


@dataclass(frozen=True)
class Admission:
    """The outcome of :func:`admit`.

    Attributes:
        admitted: whether the run may start now.
        ledger: the admission times to store (pruned to the last hour; with now if admitted).
        retry_at: when a refused run may try again (aware UTC): the oldest admission + 1 h.
        in_last_hour: admissions in the hour before now (before this one).
    """

    admitted: bool
    ledger: tuple[dt.datetime, ...]
    retry_at: dt.datetime | None
    in_last_hour: int


def admit(ledger: list[dt.datetime], now: dt.datetime, limit: int) -> Admission:
    """Admit one run if fewer than ``limit`` admissions lie in ``(now - 1 h, now]``.

    Args:
        ledger: earlier admission times (aware), any order, may hold stale entries.
        now: the current time (aware).
        limit: ``max_runs_per_hour`` (>= 1).

    Returns:
        an :class:`Admission`.

    Raises:
        ValueError: ``limit`` < 1.
    """
    if limit < 1:
        raise ValueError(f"max_runs_per_hour must be >= 1, got {limit}")
    recent = sorted(t for t in ledger if now - PERIOD < t <= now)
    if len(recent) < limit:
        return Admission(True, tuple(recent + [now]), None, len(recent))
    # the (len - limit + 1)-th oldest must leave the hour before one more fits
    retry_at = recent[len(recent) - limit] + PERIOD
    return Admission(False, tuple(recent), retry_at, len(recent))


def dumps(ledger: tuple[dt.datetime, ...]) -> str:
    """The ledger as the Variable's JSON value (ISO 8601 strings)."""
    return json.dumps([t.isoformat() for t in ledger])


def loads(value: str | None) -> list[dt.datetime]:
    """The ledger from the Variable's value; an absent or unreadable value is an empty ledger
    (an unreadable one cannot be trusted, and refusing forever would wedge the backfill)."""
    if not value:
        return []
    try:
        items = json.loads(value)
        return [dt.datetime.fromisoformat(s) for s in items if isinstance(s, str)]
    except (ValueError, TypeError):
        return []
