"""The cluster policy that paces backfill task instances (Airflow's ``task_instance_mutation_hook``).

Registered through the ``airflow.policy`` entry point, so ``pip install`` enables it in every
Airflow component (scheduler and API server create task instances). For each task instance of
a **backfill** run of a product DAG (one with a ``pacing`` task carrying its settings):

- ``pool`` = the product's backfill pool (``dataproducts_backfill__<product>``, created or
  resized to the spec's ``pool_slots``), and for the ``pacing`` task, when the spec sets
  ``max_runs_per_hour``, the product's one-slot pacing pool;
- ``priority_weight`` = :data:`~dag_factory.backfill.config.BACKFILL_PRIORITY_WEIGHT`, below
  any scheduled task instance, so free executor slots go to scheduled runs first;
- the backfill's ``max_active_runs`` is held to the spec's ``backfill.max_active_runs``
  (Airflow takes it from the Backfill dialog, the REST API or the CLI; the lower one wins).

Task instances of scheduled, manual and asset-triggered runs, and of DAGs that are not
products, are left exactly as they are.

Airflow 3.3 only calls the hook while creating task instances when it believes a hook exists,
and it only checks that after importing an ``airflow_local_settings`` module (apache/airflow
issues 55853 and 61945): importing this module marks the hook as present. A deployment with
its own ``airflow_local_settings.py`` keeps both: Airflow calls every registered
implementation (docs/backfill.md).
"""

from __future__ import annotations

import logging

from airflow.policies import hookimpl

from dag_factory.backfill.config import (
    BACKFILL_PRIORITY_WEIGHT, PACING_TASK_ID, PacingConfig, backfill_pool, is_backfill, pacing_pool,
)

log = logging.getLogger(__name__)


def _mark_hook_present() -> None:
    try:
        import airflow.settings as settings

        settings.task_instance_mutation_hook.is_noop = False
    except (ImportError, AttributeError):  # a later Airflow without the flag
        pass


_mark_hook_present()


def pacing_of(task_instance) -> PacingConfig | None:
    """The pacing settings of the task instance's product DAG, from the ``pacing`` task's
    template field in the (serialized) DAG; None for a DAG that is not a product."""
    task = getattr(task_instance, "task", None)
    dag = getattr(task, "dag", None) if task is not None else None
    if dag is None or not getattr(dag, "has_task", lambda _: False)(PACING_TASK_ID):
        return None
    data = getattr(dag.get_task(PACING_TASK_ID), "pacing", None)
    if not isinstance(data, dict):
        return None
    try:
        return PacingConfig.from_mapping(data)
    except ValueError:
        log.warning("dag %s: unreadable pacing settings %r; backfill not paced", dag.dag_id, data)
        return None


_PENDING = "dataproducts_backfill_pacing"  # key in Session.info


def _pending(session) -> dict:
    """What the hook asked of this session's transaction: ``{"pools": {name: (slots,
    description)}, "backfills": {backfill_id: max_active_runs}}``."""
    return session.info.setdefault(_PENDING, {"pools": {}, "backfills": {}})


def ensure_pool(session, name: str, slots: int, description: str) -> None:
    """Create the pool, or set its slots, in ``session``'s transaction (no commit).

    Deferred task instances do not count against it (``include_deferred`` false): a run held
    by the ``pacing`` task holds no slot.
    """
    from sqlalchemy import select

    from airflow.models.pool import Pool

    pool = session.scalar(select(Pool).where(Pool.pool == name))
    if pool is None:
        session.add(Pool(pool=name, slots=slots, description=description, include_deferred=False))
    elif pool.slots != slots:
        pool.slots = slots


def limit_backfill(session, backfill_id: int, max_active_runs: int) -> None:
    """Lower the backfill's ``max_active_runs`` to ``max_active_runs`` (never raise it)."""
    from sqlalchemy import update

    from airflow.models.backfill import Backfill

    session.execute(update(Backfill).where(Backfill.id == backfill_id,
                                           Backfill.max_active_runs > max_active_runs)
                    .values(max_active_runs=max_active_runs))


def _apply_pending(session) -> None:
    """``before_commit``: apply what the hook recorded. Airflow calls the hook while it
    flushes new task instances, when the session cannot take new rows, so the pools and the
    backfill limit are written here, in the same transaction, just before it commits."""
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    for name, (slots, description) in pending["pools"].items():
        ensure_pool(session, name, slots, description)
    for backfill_id, limit in pending["backfills"].items():
        limit_backfill(session, backfill_id, limit)
        log.info("backfill %s: max_active_runs held to %s (spec backfill.max_active_runs)",
                 backfill_id, limit)


def _drop_pending(session, *args) -> None:
    session.info.pop(_PENDING, None)


def _listen() -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    if not event.contains(Session, "before_commit", _apply_pending):
        event.listen(Session, "before_commit", _apply_pending)
        event.listen(Session, "after_rollback", _drop_pending)


_listen()


@hookimpl
def task_instance_mutation_hook(task_instance, dag_run) -> None:
    """Pace the task instances of backfill runs of product DAGs (module docstring)."""
    run_type = getattr(dag_run, "run_type", None) if dag_run is not None else None
    if not is_backfill(run_type, getattr(task_instance, "run_id", None)):
        return
    config = pacing_of(task_instance)
    if config is None:
        return
    from sqlalchemy.orm import object_session

    session = object_session(dag_run) if dag_run is not None else object_session(task_instance)
    gate_pool = task_instance.task_id == PACING_TASK_ID and config.max_runs_per_hour
    name = pacing_pool(config.product) if gate_pool else backfill_pool(config.product)
    if session is not None:
        pending = _pending(session)
        pending["pools"][name] = (1, f"pacing gate of {config.product} backfills (one "
                                     "admission at a time; dataproducts)") if gate_pool else (
            config.pool_slots, f"backfill task instances of {config.product} "
                               "(spec backfill.pool_slots; dataproducts)")
        backfill_id = getattr(dag_run, "backfill_id", None)
        if backfill_id is not None:
            pending["backfills"][backfill_id] = config.max_active_runs
    task_instance.pool = name
    task_instance.pool_slots = 1
    task_instance.priority_weight = BACKFILL_PRIORITY_WEIGHT
