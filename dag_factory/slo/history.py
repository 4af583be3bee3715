"""A product's run history reduced to partitions, as of one moment (plain data, no Airflow).

SLIs count partitions, not runs: a partition that was re-run counts once. This module turns the
run records of one product into that view in a single pass over the records (dict and set
operations only, no sorting), so the engine stays O(records). Rules: docs/slo.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

STATES = frozenset({"success", "failed", "running", "queued"})
UNFINISHED = frozenset({"running", "queued"})
GATES = frozenset({"pass", "warn", "fail"})

PartitionKey = tuple[dt.datetime, dt.datetime]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One run of one scheduled partition of a product.

    Attributes:
        run_id: the Airflow run id.
        partition_start, partition_end: the partition's data interval (timezone-aware, UTC);
            together they identify the partition, so re-runs of it share them.
        due_at: when the partition was due (the interval end for scheduled runs), aware.
        state: the run's state: ``"success"`` | ``"failed"`` | ``"running"`` | ``"queued"``.
        gate: the quality gate outcome ``"pass"`` | ``"warn"`` | ``"fail"``, or None when the
            gate did not run (yet).
        published_at: when publish swapped the partition in (aware), or None.
        started_at: when this run was queued or started (aware), or None. Orders re-runs of a
            partition: see :func:`recency`.
        failed_stage, failed_task: the stage (``ingest``, ``transform``, ``quality_gate``,
            ``publish``, ``export``) and task id that failed, for a failed run.
        error: the failure message; failing_checks: the gate's failing checks (the dicts of
            :class:`dag_factory.quality.gate.CheckOutcome`); log_url: the failed task's log.

    Raises:
        ValueError: an unknown ``state`` or ``gate``, a naive datetime, or a partition that
            ends before it starts.
    """

    run_id: str
    partition_start: dt.datetime
    partition_end: dt.datetime
    due_at: dt.datetime
    state: str
    gate: str | None = None
    published_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    failed_stage: str | None = None
    failed_task: str | None = None
    error: str | None = None
    failing_checks: Sequence[Mapping[str, Any]] | None = field(default=None, hash=False)
    log_url: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"run {self.run_id!r}: state {self.state!r} is not one of "
                             f"{', '.join(sorted(STATES))}")
        if self.gate is not None and self.gate not in GATES:
            raise ValueError(f"run {self.run_id!r}: gate {self.gate!r} is not one of "
                             f"{', '.join(sorted(GATES))} or None")
        # one comparison checks both ends are aware (naive vs aware raises TypeError) and ordered
        try:
            ordered = self.partition_start <= self.partition_end
        except TypeError:
            ordered = None
        if not ordered or self.partition_start.utcoffset() is None:
            raise ValueError(f"run {self.run_id!r}: the partition must be an aware interval with "
                             f"start <= end, got {self.partition_start!r}..{self.partition_end!r}")
        if self.due_at.utcoffset() is None or (
                self.published_at is not None and self.published_at.utcoffset() is None) or (
                self.started_at is not None and self.started_at.utcoffset() is None):
            raise ValueError(f"run {self.run_id!r}: due_at, published_at and started_at must be "
                             "timezone-aware (UTC)")


def recency(record: RunRecord) -> dt.datetime:
    """The moment that orders records of the same partition: ``started_at``, else ``due_at``.

    Of two records of one partition the one with the later recency supersedes the other; on a
    tie the one that comes later in the input does. Give ``started_at`` to all records or to none.
    """
    return record.started_at or record.due_at


@dataclass(slots=True)
class PartitionHistory:
    """One product's records reduced to partitions as of ``now`` (see :func:`reduce_history`).

    Attributes:
        latest: partition key -> its latest record, for partitions due in the window.
        latest_gated: partition key -> its latest record whose gate ran, same partitions.
        published: keys of the partitions due in the window that some record published.
        last_published_at: the newest ``published_at`` over all records.
        first_due_at: the earliest ``due_at`` at or before ``now``, over all records.
        last_failed: the most recent failed record (by :func:`recency`), over all records.
    """

    latest: dict[PartitionKey, RunRecord] = field(default_factory=dict)
    latest_gated: dict[PartitionKey, RunRecord] = field(default_factory=dict)
    published: set[PartitionKey] = field(default_factory=set)
    last_published_at: dt.datetime | None = None
    first_due_at: dt.datetime | None = None
    last_failed: RunRecord | None = None


def reduce_history(records: Iterable[RunRecord], now: dt.datetime,
                   window_start: dt.datetime) -> PartitionHistory:
    """Reduce ``records`` (any order, one pass) to partitions due in ``(window_start, now]``.

    Args:
        records: the product's run records, any order; an iterator is read once.
        now: the evaluation moment (aware); partitions due after it are not in the window.
        window_start: the exclusive start of the window (aware).

    Returns:
        the :class:`PartitionHistory`.
    """
    history = PartitionHistory()
    latest, latest_gated, published = history.latest, history.latest_gated, history.published
    newest_publish = first_due = last_failed = None
    for record in records:
        publish = record.published_at
        if publish is not None and (newest_publish is None or publish > newest_publish):
            newest_publish = publish
        if record.state == "failed" and (last_failed is None
                                         or recency(record) >= recency(last_failed)):
            last_failed = record
        due = record.due_at
        if due > now:
            continue
        if first_due is None or due < first_due:
            first_due = due
        if due <= window_start:
            continue
        key = (record.partition_start, record.partition_end)
        if publish is not None:
            published.add(key)
        previous = latest.get(key)
        if previous is None or recency(record) >= recency(previous):
            latest[key] = record
        if record.gate is not None:
            previous = latest_gated.get(key)
            if previous is None or recency(record) >= recency(previous):
                latest_gated[key] = record
    history.last_published_at = newest_publish
    history.first_due_at = first_due
    history.last_failed = last_failed
    return history
