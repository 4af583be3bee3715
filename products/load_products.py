"""Airflow DAG loader for data products: one DAG per product YAML file in this folder.

Drop a ``<name>.yaml`` next to this file and the DAG processor builds its DAG on the next
parse; no Python to touch. An invalid file becomes a tagged ``invalid-spec`` placeholder DAG
that shows the errors, and never hides the other products. See dag_factory.build.folder.
"""

from pathlib import Path

from dag_factory.build.folder import build_dags
from dag_factory.config import products_folder

globals().update(build_dags(products_folder(default=Path(__file__).parent)))
