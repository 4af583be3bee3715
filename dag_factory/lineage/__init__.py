"""OpenLineage for product runs: dataset naming, facets, and what each stage reports.

Events are emitted by ``apache-airflow-providers-openlineage`` (transport configured in
Airflow's ``[openlineage]`` section); the factory's operators implement the provider's
``get_openlineage_facets_on_start/complete/failure`` methods.
"""
