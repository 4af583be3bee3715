"""The data products plugin, for deployments that load plugins from the plugins folder.

Installing ``airflow-dataproducts`` already registers it through the ``airflow.plugins`` entry
point; Airflow skips the second registration of the same plugin name.
"""

from dag_factory.plugin.app import DataProductsPlugin  # noqa: F401
