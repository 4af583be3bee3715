"""Airflow 3 DAG factory for data products: one YAML spec per product becomes a production DAG."""

__version__ = "0.1.0"
