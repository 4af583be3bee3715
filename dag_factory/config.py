"""Settings from Airflow's config section ``[dataproducts]`` (env ``AIRFLOW__DATAPRODUCTS__*``).

| key             | default                         | meaning                                   |
|-----------------|---------------------------------|-------------------------------------------|
| data_folder     | ``$AIRFLOW_HOME/dataproducts``  | landing, staging and published partitions: a local path or ``s3://bucket/prefix`` (docs/architecture.md) |
| data_conn_id    | ``aws_default``                 | AWS connection of an ``s3://`` data folder (``endpoint_url`` in its extra for S3-compatible services) |
| products_folder | Airflow's ``[core] dags_folder``| where the product YAML files live         |
| alerts_smtp_conn_id | ``[email] email_conn_id``, else ``smtp_default`` | SMTP connection of alert emails |
| alerts_from_email   | ``[email] from_email``       | sender of alert emails (see docs/alerts.md) |
| api_conn_id         | unset                        | http connection to the API server, for the SLO state in alerts and the freshness watchdog (docs/alerts.md) |
| watchdog_schedule   | ``*/15 * * * *``             | schedule of the ``dataproducts_slo_watchdog`` DAG |
| slo_full_refresh_seconds | ``300``                 | the SLO views re-read the whole window at least this often; 0 = no history cache (docs/slo.md) |
| slo_change_margin_seconds | ``120``                | how far back the history cache looks for changed runs, for clock skew (docs/slo.md) |
"""

from __future__ import annotations

import os
from pathlib import Path

from dag_factory.datastore.s3path import S3Path

SECTION = "dataproducts"


def _airflow_conf():
    from airflow.sdk import conf

    return conf


def airflow_home() -> Path:
    """``$AIRFLOW_HOME`` (default ``~/airflow``)."""
    return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()


def data_folder() -> Path | S3Path:
    """The data folder: a local ``Path``, or an :class:`S3Path` for ``s3://bucket/prefix``
    (reached with connection :func:`data_conn_id`).

    Raises:
        ValueError: for an ``s3://`` value without a bucket name.
    """
    value = _airflow_conf().get(SECTION, "data_folder", fallback=None)
    if not value:
        return airflow_home() / "dataproducts"
    if value.startswith("s3://"):
        try:
            return S3Path.parse(value)
        except ValueError as exc:
            raise ValueError(f"[{SECTION}] data_folder: {exc}") from None
    return Path(value).expanduser()


def data_conn_id() -> str:
    """The Airflow AWS connection of an S3 data folder (default ``aws_default``)."""
    return _airflow_conf().get(SECTION, "data_conn_id", fallback=None) or "aws_default"


def products_folder(default: Path | None = None) -> Path:
    """The products folder: ``[dataproducts] products_folder`` if set, else ``default``, else
    Airflow's ``[core] dags_folder``."""
    conf = _airflow_conf()
    value = conf.get(SECTION, "products_folder", fallback=None)
    if value:
        return Path(value).expanduser()
    if default is not None:
        return default
    return Path(conf.get("core", "dags_folder", fallback=str(airflow_home() / "dags"))).expanduser()
