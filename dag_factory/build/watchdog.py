"""The freshness watchdog DAG, ``dataproducts_slo_watchdog`` (one per deployment).

It alerts when a product's newest publish is older than its ``slo.freshness`` target although
no run failed; the task is :class:`dag_factory.alerts.freshness.FreshnessWatchdogOperator`
(what it reads and how it deduplicates: docs/alerts.md, "Freshness watchdog").

:func:`dag_factory.build.folder.build_dags` adds it when at least one valid product has an
``alerts`` destination and a ``slo.freshness`` target **and** ``[dataproducts] api_conn_id`` is
set: the watchdog reads the SLO state through the plugin's API, so without that connection it
could only fail every run. It is not a product (no spec), so the plugin never lists it.

Settings (Airflow's ``[dataproducts]`` section, read when the DAG is built):

- ``watchdog_schedule``: a cron expression or preset, default ``*/15 * * * *``;
- ``api_conn_id``: see :mod:`dag_factory.slo.api_client`.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from airflow.sdk import DAG

from dag_factory.alerts.freshness import FreshnessWatchdogOperator, watched_products

WATCHDOG_DAG_ID = "dataproducts_slo_watchdog"
WATCHDOG_TASK_ID = "check_freshness"
WATCHDOG_TAG = "dataproducts-watchdog"
DEFAULT_SCHEDULE = "*/15 * * * *"
START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def watchdog_schedule() -> str:
    """``[dataproducts] watchdog_schedule``, default ``*/15 * * * *`` (every 15 minutes)."""
    from airflow.sdk import conf

    return conf.get("dataproducts", "watchdog_schedule", fallback=None) or DEFAULT_SCHEDULE


def wants_watchdog(specs: Iterable) -> bool:
    """Whether the factory builds the watchdog for these valid specs: some product has alerts
    and a freshness target, and ``[dataproducts] api_conn_id`` is set."""
    from dag_factory.slo.api_client import api_conn_id

    return bool(watched_products(specs)) and api_conn_id() is not None


def build_watchdog_dag(specs: Iterable) -> DAG | None:
    """The watchdog DAG for the valid product specs of a folder.

    Args:
        specs: validated :class:`~dag_factory.spec.models.ProductSpec` objects.

    Returns:
        the DAG (schedule ``[dataproducts] watchdog_schedule``, no catchup, one active run),
        or None when no product has both ``alerts`` and ``slo.freshness``.
    """
    from dag_factory.alerts import from_email, smtp_conn_id

    products = watched_products(specs)
    if not products:
        return None
    names = ", ".join(f"`{p.profile.name}`" for p in products)
    doc = (f"# Data products freshness watchdog\n\nChecks the freshness SLO of {names} through "
           "the dataproducts plugin's API (`[dataproducts] api_conn_id`) and sends a "
           "`[FRESHNESS]` alert once per staleness episode (then `[RESOLVED]`) to each "
           "product's alert destinations. State: the Airflow Variable "
           "`dataproducts_slo_watchdog`. See docs/alerts.md.")
    with DAG(dag_id=WATCHDOG_DAG_ID, description="Freshness alerts for data products",
             schedule=watchdog_schedule(), start_date=START_DATE, catchup=False,
             max_active_runs=1, doc_md=doc, tags=[WATCHDOG_TAG],
             dagrun_timeout=dt.timedelta(minutes=10),
             default_args={"owner": "dataproducts", "retries": 1,
                           "retry_delay": dt.timedelta(minutes=1)}) as dag:
        FreshnessWatchdogOperator(task_id=WATCHDOG_TASK_ID, products=products,
                                  smtp_conn_id=smtp_conn_id(), from_email=from_email(),
                                  execution_timeout=dt.timedelta(minutes=5))
    return dag
