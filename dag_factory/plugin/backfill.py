"""The plugin's backfill estimate: a product's pacing, its median run time (metadata DB, on the
API-server side) and :func:`~dag_factory.backfill.estimate.estimate` for N runs from now.

The product page's backfill form calls Airflow's own backfill API from the browser, as the
logged-in user; only the estimate, which needs the spec and the run history, is served here.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from pydantic import BaseModel, Field

from dag_factory.backfill.config import PACING_TASK_ID, PacingConfig
from dag_factory.backfill.estimate import estimate, median_run_seconds

#: Successful runs the median is taken over (the newest ones).
MEDIAN_OF = 50
#: Run time assumed when the product has no successful run yet (seconds).
DEFAULT_RUN_SECONDS = 60.0
#: Largest ``runs`` the estimate route simulates (about 270 years of daily partitions).
MAX_RUNS = 100_000


class PacingOut(BaseModel):
    """The spec's ``backfill`` block."""

    product: str = Field(description="the product (its dag_id)")
    max_active_runs: int = Field(description="backfill runs of the product at once")
    pool_slots: int = Field(description="slots of the product's backfill pool (task instances)")
    allowed_hours: Optional[str] = Field(
        description="UTC window HH:MM-HH:MM in which backfill runs may start; null: any time")
    max_runs_per_hour: Optional[int] = Field(
        description="backfill runs admitted in any 60 minutes; null: unlimited")


class EstimateOut(BaseModel):
    """:class:`dag_factory.backfill.estimate.Estimate` as JSON."""

    runs: int = Field(description="runs (partitions) to process")
    run_seconds: float = Field(description="run time used for each run (seconds)")
    concurrency: int = Field(description="runs at once: min(max_active_runs, pool_slots)")
    ideal_seconds: float = Field(
        description="ceil(runs / concurrency) x run_seconds: concurrency alone (seconds)")
    paced_seconds: float = Field(
        description="with the allowed_hours window and the max_runs_per_hour rate too (seconds)")
    finishes_at: dt.datetime = Field(description="estimated_at + paced_seconds (UTC)")


class BackfillEstimate(BaseModel):
    """How long a backfill of ``runs`` runs of the product would take, starting now."""

    product: str
    estimated_at: dt.datetime = Field(description="the simulation's start: now (UTC)")
    pacing: PacingOut
    median_run_seconds: float = Field(
        description=f"median run time of the product's {MEDIAN_OF} newest successful runs "
                    "(seconds), from the start of the first task after the pacing gate to the "
                    f"end of the last task; {DEFAULT_RUN_SECONDS:g} when it has none")
    median_of_runs: int = Field(
        description="how many runs the median is taken over (0: no history, assumed)")
    estimate: EstimateOut


def pacing_of(name: str) -> PacingConfig | None:
    """The pacing of product ``name`` from the products folder, or None when the folder has no
    valid product of that name."""
    from dag_factory.config import products_folder
    from dag_factory.plugin.status import load_specs

    product = load_specs(products_folder()).products.get(name)
    return PacingConfig.from_spec(product.spec) if product is not None else None


def run_durations(session, dag_id: str, limit: int = MEDIAN_OF) -> list[float]:
    """Run times (seconds) of the DAG's newest successful runs, newest first.

    A run's time is from the start of its first task after the ``pacing`` gate to the end of
    its last task: what a run occupies once admitted (the estimate simulates the gate's waits
    for the window and the rate limit itself). Not the DAG run's own start and end: a backfill
    run's include the gate's waits, and ``dag.test()`` runs start at their logical date.

    Args:
        session: a metadata DB session; dag_id: the product; limit: newest runs to take.

    Returns:
        One duration per run that has timed task instances (empty: no history).
    """
    from sqlalchemy import func, select

    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI

    # a derived table, not ``IN (... LIMIT n)``, which MySQL does not support
    runs = select(DagRun.run_id).where(
        DagRun.dag_id == dag_id, DagRun.state == "success", DagRun.end_date.is_not(None)
    ).order_by(DagRun.end_date.desc()).limit(limit).subquery()
    rows = session.execute(
        select(TI.run_id, func.min(TI.start_date), func.max(TI.end_date))
        .join(runs, TI.run_id == runs.c.run_id)
        .where(TI.dag_id == dag_id, TI.task_id != PACING_TASK_ID,
               TI.start_date.is_not(None), TI.end_date.is_not(None))
        .group_by(TI.run_id).order_by(func.max(TI.end_date).desc())).all()
    return [(end - start).total_seconds() for _, start, end in rows]


def backfill_estimate(session, pacing: PacingConfig, runs: int,
                      now: dt.datetime) -> BackfillEstimate:
    """The estimate route's answer for ``runs`` runs of ``pacing.product`` from ``now``.

    Args:
        session: metadata DB session; pacing: the product's pacing; runs: >= 0;
        now: aware UTC.

    Raises:
        ValueError: negative ``runs`` (see :func:`~dag_factory.backfill.estimate.estimate`).
    """
    durations = run_durations(session, pacing.product)
    median = median_run_seconds(durations, default=DEFAULT_RUN_SECONDS)
    plan = estimate(pacing, runs, median, now)
    return BackfillEstimate(
        product=pacing.product, estimated_at=now, pacing=PacingOut(**pacing.as_dict()),
        median_run_seconds=median, median_of_runs=len([d for d in durations if d > 0]),
        estimate=EstimateOut(runs=plan.runs, run_seconds=plan.run_seconds,
                             concurrency=plan.concurrency, ideal_seconds=plan.ideal_seconds,
                             paced_seconds=plan.paced_seconds, finishes_at=plan.finishes_at))


def api_root() -> str:
    """The path of Airflow's public REST API on this server (``/api/v2``, or
    ``/<root>/api/v2`` when ``[api] base_url`` has a path), for same-origin browser calls."""
    from airflow.api_fastapi.app import API_ROOT_PATH

    return f"{API_ROOT_PATH.rstrip('/')}/api/v2"
