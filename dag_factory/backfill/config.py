"""A product's backfill pacing settings, as the ``pacing`` task carries them.

The settings travel in the serialized DAG (a template field of the ``pacing`` task), so the
scheduler-side cluster policy reads them without the spec files or any extra query.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

PACING_TASK_ID = "pacing"
#: Priority weight of backfill task instances; scheduled task instances weigh 1 or more
#: (Airflow's default ``downstream`` rule), so the executor's free slots go to them first.
BACKFILL_PRIORITY_WEIGHT = -100
#: Airflow's run_id prefix of backfill runs (``DagRunType.BACKFILL_JOB``).
BACKFILL_RUN_PREFIX = "backfill__"
_POOL_PREFIX = "dataproducts_backfill__"
_GATE_POOL_PREFIX = "dataproducts_pacing__"


def backfill_pool(product: str) -> str:
    """The pool of a product's backfill task instances: ``dataproducts_backfill__<product>``."""
    return f"{_POOL_PREFIX}{product}"


def pacing_pool(product: str) -> str:
    """The one-slot pool of a product's backfill ``pacing`` tasks:
    ``dataproducts_pacing__<product>``. One slot makes the rate ledger's read-check-write
    a critical section (see :mod:`dag_factory.backfill.rate`)."""
    return f"{_GATE_POOL_PREFIX}{product}"


@dataclass(frozen=True)
class PacingConfig:
    """The spec's ``backfill`` block, as plain data.

    Attributes:
        product: the product name (dag_id).
        max_active_runs: backfill runs of the product running at once (runs).
        pool_slots: slots of the product's backfill pool (task instances at once).
        allowed_hours: ``"HH:MM-HH:MM"`` UTC window in which backfill runs may start, or None.
        max_runs_per_hour: backfill runs admitted in any 60-minute period, or None.
    """

    product: str
    max_active_runs: int = 4
    pool_slots: int = 4
    allowed_hours: str | None = None
    max_runs_per_hour: int | None = None

    @classmethod
    def from_spec(cls, spec) -> "PacingConfig":
        """The pacing of a :class:`~dag_factory.spec.models.ProductSpec`."""
        b = spec.backfill
        return cls(product=spec.name, max_active_runs=b.max_active_runs, pool_slots=b.pool_slots,
                   allowed_hours=b.allowed_hours, max_runs_per_hour=b.max_runs_per_hour)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "PacingConfig":
        """Back from :meth:`as_dict` (e.g. a serialized template field).

        Raises:
            ValueError: a missing product or a non-positive limit.
        """
        if not data.get("product"):
            raise ValueError(f"pacing settings without a product: {dict(data)!r}")
        config = cls(product=str(data["product"]),
                     max_active_runs=int(data.get("max_active_runs") or 4),
                     pool_slots=int(data.get("pool_slots") or 4),
                     allowed_hours=data.get("allowed_hours") or None,
                     max_runs_per_hour=int(data["max_runs_per_hour"])
                     if data.get("max_runs_per_hour") else None)
        if config.max_active_runs < 1 or config.pool_slots < 1 or (config.max_runs_per_hour or 1) < 1:
            raise ValueError(f"pacing limits must be >= 1: {dict(data)!r}")
        return config

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the ``pacing`` task's template field)."""
        return asdict(self)


def is_backfill(run_type: Any, run_id: str | None = None) -> bool:
    """Whether a run is a backfill run: its ``run_type`` is ``backfill`` (Airflow's
    ``DagRunType.BACKFILL_JOB``), or, without a run type, its run_id has the backfill prefix."""
    if run_type is not None:
        return str(getattr(run_type, "value", run_type)) == "backfill"
    return bool(run_id) and run_id.startswith(BACKFILL_RUN_PREFIX)
