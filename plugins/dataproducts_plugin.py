"""The data products plugin, for deployments that load plugins from the plugins folder
without installing the package's ``airflow.plugins`` entry point.

When the package is installed, its entry point registers the plugin already, and this file
must not register it a second time: Airflow 3.3's plugin loader stops registering a whole batch
of plugins at the first name it has seen before (``return`` where ``continue`` was meant, in
``plugins_manager._get_plugins``), so a duplicate ``dataproducts`` can silently drop the
OpenLineage provider's plugin and with it every task-level lineage event.
"""

from importlib.metadata import entry_points

if not entry_points(group="airflow.plugins", name="dataproducts"):
    from dag_factory.plugin.app import DataProductsPlugin  # noqa: F401
