"""Spec -> Airflow DAG."""
