"""The Airflow plugin: a FastAPI app in the API server with the SLO JSON API and page."""
