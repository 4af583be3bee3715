"""An auth manager for the plugin tests: Airflow's SimpleAuthManager, except that the user
``outsider`` may not read the DAGs listed in DATAPRODUCTS_TEST_DENIED_DAGS (comma-separated).
It is configured as ``[core] auth_manager`` of a real API server, so the plugin's per-DAG
authorization is exercised through Airflow's own code path."""

from __future__ import annotations

import os

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


class RestrictedAuthManager(SimpleAuthManager):
    """SimpleAuthManager with per-DAG read denial for one user."""

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        denied = set(filter(None, os.environ.get("DATAPRODUCTS_TEST_DENIED_DAGS", "").split(",")))
        if user.get_name() == "outsider" and details is not None and details.id in denied:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity,
                                         details=details)
