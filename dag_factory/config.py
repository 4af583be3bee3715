"""Settings from Airflow's config section ``[dataproducts]`` (env ``AIRFLOW__DATAPRODUCTS__*``).

| key             | default                         | meaning                                   |
|-----------------|---------------------------------|-------------------------------------------|
| data_folder     | ``$AIRFLOW_HOME/dataproducts``  | landing, staging and published partitions |
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

SECTION = "dataproducts"


def _airflow_conf():
    from airflow.sdk import conf

    return conf


def airflow_home() -> Path:
    """``$AIRFLOW_HOME`` (default ``~/airflow``)."""
    return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()


def data_folder() -> Path:
    """The data folder: a local path (S3 data folders arrive with the S3 storage backend).

    Raises:
        ValueError: when the configured value is an ``s3://`` URI (not supported yet).
    """
    value = _airflow_conf().get(SECTION, "data_folder", fallback=None)
    if not value:
        return airflow_home() / "dataproducts"
    if value.startswith("s3://"):
        raise ValueError(
            f"[{SECTION}] data_folder = {value}: S3 data folders are not supported yet; "
            "use a local path (S3 inputs and exports work with any data folder)"
        )
    return Path(value).expanduser()


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
