# The Airflow image of the data products stack: the official Apache Airflow image with this
# package installed, and the products and plugins folders baked in (docker-compose.yaml mounts
# the working tree's folders over them; a Kubernetes deployment can use the baked ones).
#
#   docker build -t airflow-dataproducts:local .
#   docker compose build            # what docker-compose.yaml does
#
# AIRFLOW_VERSION must satisfy the `apache-airflow` pin of pyproject.toml
# (tests/test_compose.py checks it).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION

# Soda Core must not phone home; set before it is imported (docs/architecture.md).
ENV SODA_CORE_TELEMETRY_ENABLED=false

USER airflow

# Only what the package build needs (see .dockerignore), so the pip layer is reused until the
# package itself changes.
COPY --chown=airflow:root pyproject.toml README.md /opt/airflow/dataproducts-src/
COPY --chown=airflow:root dag_factory /opt/airflow/dataproducts-src/dag_factory

# Pinning apache-airflow to the image's own version keeps pip from replacing the Airflow the
# image was built and tested with; everything else resolves from pyproject.toml's pins.
# The plugin and the backfill policy are entry points: installing the package enables both.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/airflow/dataproducts-src \
    && pip check \
    && python -c "from importlib.metadata import entry_points as ep; \
assert {e.name for e in ep(group='airflow.plugins')} >= {'dataproducts'}; \
assert {e.name for e in ep(group='airflow.policy')} >= {'dataproducts'}"

# The products (Airflow's dags folder in this stack) and the plugins folder.
COPY --chown=airflow:root products /opt/airflow/products
COPY --chown=airflow:root plugins /opt/airflow/plugins

# The local data folder; a named volume mounted here starts with this ownership.
RUN mkdir -p /opt/airflow/data
