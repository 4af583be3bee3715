"""The spec's ``engine`` block: every mistake is one located issue (file:line:col, field, what
was expected), like tests/test_spec_errors.py; and the pieces of the postgres engine that need
no database: type mapping, parameter rendering, contract columns, identifier quoting."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from dag_factory.engines.postgres_types import UnsupportedType, is_nested, postgres_type
from dag_factory.spec.loading import load_product_file, load_products
from helpers import demo_yaml, products_folder
from test_contract_export import schemas  # noqa: F401
from test_spec_errors import BASE, issues_of, located, marked_text, only_issue, write

LAST_LINE = "  email: [ops-analytics-oncall@example.com]\n"
AVG_DELAY = "    - {name: avg_dep_delay_min, data_type: double}\n"


def engine_line(text: str) -> tuple[str, str]:
    """An edit appending ``text`` (with its caret) as the last top-level key."""
    return LAST_LINE, LAST_LINE + text + "\n"


CASES = [
    pytest.param([engine_line("‸engine: postgres")], "engine.conn_id",
                 "required field is missing", id="postgres-without-conn-id"),
    pytest.param([engine_line("‸engine: snowflake")], "engine",
                 "unknown engine 'snowflake'; expected one of duckdb, postgres", id="unknown-engine"),
    pytest.param([engine_line("engine: {‸type: snowflake, conn_id: wh}")], "engine.type",
                 "unknown engine 'snowflake'", id="unknown-engine-in-a-mapping"),
    pytest.param([engine_line("‸engine: 42")], "engine",
                 "expected duckdb, or a mapping such as {type: postgres", id="engine-not-a-name"),
    pytest.param([engine_line("engine: {type: postgres, ‸conn_id: 'bad id!'}")],
                 "engine.conn_id", "expected an Airflow connection id", id="bad-conn-id"),
    pytest.param([engine_line("engine: {type: postgres, conn_id: wh, ‸database: x}")],
                 "engine.database", "unknown key", id="unknown-engine-key"),
    pytest.param([engine_line("engine: {type: duckdb, ‸conn_id: wh}")], "engine.conn_id",
                 "unknown key", id="duckdb-takes-no-conn-id"),
    pytest.param([engine_line("engine: {type: postgres, conn_id: wh, ‸schema: 'a\"b'}")],
                 "engine.schema", "expected a name without double quotes", id="quote-in-schema"),
    pytest.param([engine_line("engine: {type: postgres, conn_id: wh, ‸schema: " + "é" * 40 + "}")],
                 "engine.schema", "at most 63 bytes, got 80", id="schema-too-long"),
    pytest.param([engine_line("engine: {type: postgres, conn_id: wh}"),
                  (AVG_DELAY, "    - {name: avg_dep_delay_min, ‸data_type: geometry}\n")],
                 "output.columns[5].data_type",
                 "data type 'geometry' has no PostgreSQL equivalent for engine postgres",
                 id="type-without-postgres-equivalent"),
    pytest.param([engine_line("engine: {type: postgres, conn_id: wh}"),
                  (AVG_DELAY, "    - {‸name: 'avg\"delay', data_type: double}\n")],
                 "output.columns[5].name", "expected a name without double quotes",
                 id="quote-in-column-name"),
]


@pytest.mark.parametrize("edits, field, message", CASES)
def test_engine_mistakes_are_located(tmp_path, edits, field, message):
    issue, caret = only_issue(tmp_path, *edits)
    assert located(issue) == (*caret, field), str(issue)
    assert message in issue.message, str(issue)
    assert str(issue).startswith(f"{tmp_path / 'product.yaml'}:{caret[0]}:{caret[1]}: {field}: ")


def test_a_too_long_product_table_name_is_located(tmp_path):
    long_name = "p" * 61
    text, carets = marked_text(BASE, ("name: flights_daily", f"‸name: {long_name}"),
                               engine_line("engine: {type: postgres, conn_id: wh}"))
    (issue,) = issues_of(write(tmp_path, text))
    assert located(issue) == (*carets[0], "name")
    assert f"the product table name '{long_name}_v1' is too long" in issue.message


def test_exports_are_refused_on_postgres(tmp_path):
    text = demo_yaml("fleet_daily").replace(
        "slo:", "  exports:\n    - {type: file, path: 'out/{{ ds }}.parquet'}\nslo:", 1) + \
        "engine: {type: postgres, conn_id: wh}\n"
    (issue,) = issues_of(write(tmp_path, text))
    assert issue.field == "output.exports"
    assert "exports are not supported with engine postgres" in issue.message


def test_defaults_and_the_shorthand(tmp_path):
    plain = load_product_file(write(tmp_path, BASE)).spec
    assert plain.engine.type == "duckdb"
    short = load_product_file(write(tmp_path, BASE + "engine: duckdb\n", "b.yaml")).spec
    assert short.engine == plain.engine
    postgres = load_product_file(write(
        tmp_path, BASE + "engine: {type: postgres, conn_id: wh}\n", "c.yaml")).spec
    assert (postgres.engine.conn_id, postgres.engine.schema_name) == ("wh", "dataproducts")
    assert postgres.engine.model_dump(by_alias=True) == {
        "type": "postgres", "conn_id": "wh", "schema": "dataproducts"}


def test_a_product_input_of_a_postgres_product_is_refused_with_the_sql_input_to_use(tmp_path):
    upstream = demo_yaml("flights_daily") + "engine: {type: postgres, conn_id: wh, schema: dp}\n"
    folder = products_folder(tmp_path, ["weather_daily", "delays_weather_daily"],
                             {"flights_daily.yaml": upstream})
    result = load_products(folder)
    assert sorted(result.products) == ["flights_daily", "weather_daily"]
    (issue,) = result.errors[folder / "delays_weather_daily.yaml"].issues
    assert issue.field == "inputs[0].product"
    assert (issue.line, issue.column) == (17, 36)
    assert "runs on engine postgres and publishes the table dp.flights_daily_v1" in issue.message
    assert "type: sql input on conn_id wh" in issue.message


@pytest.mark.parametrize("duckdb_type, expected", [
    ("double", "double precision"), ("DOUBLE", "double precision"), ("float", "real"),
    ("BIGINT", "bigint"), ("VARCHAR", "varchar"), ("varchar(20)", "varchar(20)"),
    ("decimal", "numeric(18, 3)"), ("DECIMAL(10,2)", "numeric(10, 2)"),
    ("TIMESTAMP WITH TIME ZONE", "timestamptz"), ("timestamp", "timestamp"),
    ("hugeint", "numeric(39, 0)"), ("ubigint", "numeric(20, 0)"), ("utinyint", "smallint"),
    ("blob", "bytea"), ("json", "jsonb"), ("date", "date"), ("boolean", "boolean"),
])
def test_duckdb_types_map_to_postgres_types_of_the_same_meaning(duckdb_type, expected):
    assert postgres_type(duckdb_type) == expected


@pytest.mark.parametrize("bad", ["geometry", "varchar(2, 3)", "INTEGER[]", "STRUCT(a INTEGER)"])
def test_types_without_an_equivalent_are_refused(bad):
    with pytest.raises(UnsupportedType, match="no PostgreSQL equivalent|takes one length"):
        postgres_type(bad)


def test_nested_types_are_recognised():
    assert is_nested("INTEGER[]") and is_nested("STRUCT(a INTEGER)") and is_nested("MAP(VARCHAR, INTEGER)")
    assert not is_nested("VARCHAR") and not is_nested("DECIMAL(10,2)")


def test_interval_parameters_become_literals_and_nothing_else_changes():
    from dag_factory.engines.base import StageJob
    from dag_factory.engines.postgres import render_parameters
    from dag_factory.interval import DataInterval

    start = dt.datetime(2013, 1, 2, tzinfo=dt.timezone.utc)
    job = StageJob("p", 1, "run", DataInterval(start, start + dt.timedelta(days=1)))
    sql = ("select $ds as d, $dsx as other, '$1' as s from t where ts >= $data_interval_start "
           "and ts < $data_interval_end")
    assert render_parameters(sql, job) == (
        "select '2013-01-02' as d, $dsx as other, '$1' as s from t where "
        "ts >= timestamp '2013-01-02 00:00:00' and ts < timestamp '2013-01-03 00:00:00'")


def test_contract_columns_use_the_postgres_type_names_soda_compares():
    from dag_factory.engines.postgres import contract_columns

    columns = [{"name": "a", "data_type": "double", "checks": [{"missing": None}]},
               {"name": "b", "data_type": "decimal(10,2)"}, {"name": "c", "data_type": "varchar(5)"},
               {"name": "d"}]
    assert contract_columns(columns) == [
        {"name": "a", "data_type": "double precision", "checks": [{"missing": None}]},
        {"name": "b", "data_type": "numeric", "numeric_precision": 10, "numeric_scale": 2},
        {"name": "c", "data_type": "varchar", "character_maximum_length": 5}, {"name": "d"}]


def test_staging_table_names_are_short_plain_and_per_run():
    from dag_factory.engines.base import StageJob

    long = StageJob("x" * 63, 12, "manual__2013-01-01T00:00:00+00:00", None)
    other = StageJob("x" * 63, 12, "scheduled__2013-01-01T00:00:00+00:00", None)
    assert len(long.staging_table.encode()) <= 63
    assert long.staging_table != other.staging_table
    assert long.staging_table.startswith(long.staging_prefix + "_")
    assert set(long.staging_table) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")


def test_the_product_graph_shows_a_postgres_product_as_its_table(tmp_path):
    from dag_factory.lineage.graph import build_graph

    spec = load_product_file(write(
        tmp_path, BASE + "engine: {type: postgres, conn_id: wh, schema: dp}\n")).spec
    graph = build_graph({spec.name: spec})
    node = "table|wh|dp.flights_daily_v1"
    assert ("product|flights_daily", node) in graph.edges
    assert graph.labels[node] == "table dp.flights_daily_v1 on connection wh"


def test_the_dag_docs_name_the_engine_and_table_but_no_connection_details(tmp_path):
    from dag_factory.build.docs import product_doc_md

    spec = load_product_file(write(
        tmp_path, BASE + "engine: {type: postgres, conn_id: wh, schema: dp}\n")).spec
    assert "| Engine | postgres: table `dp.flights_daily_v1` (connection `wh`) |" in \
        product_doc_md(spec, "flights_daily.yaml")
    plain = load_product_file(write(tmp_path, BASE, "b.yaml")).spec
    assert "| Engine | duckdb: Parquet under `products/flights_daily/v1/` |" in \
        product_doc_md(plain, "flights_daily.yaml")


def test_the_odcs_contract_names_the_postgres_table_as_its_server(tmp_path, monkeypatch, schemas):
    from dag_factory.contract.odcs import odcs_contract
    from dag_factory.contract.odps import odps_product
    from dag_factory.contract.validation import schema_errors

    spec = load_product_file(write(
        tmp_path, BASE + "engine: {type: postgres, conn_id: wh, schema: dp}\n")).spec
    monkeypatch.delenv("AIRFLOW_CONN_WH", raising=False)
    unresolved = odcs_contract(spec, "/srv/data")
    assert schema_errors(unresolved, "odcs", schemas) == []
    assert unresolved["servers"][0]["host"] == "unresolved: see Airflow connection wh"

    monkeypatch.setenv("AIRFLOW_CONN_WH", "postgresql://u:secret-pw@db.example.com:6543/warehouse")
    contract = odcs_contract(spec, "/srv/data")
    assert schema_errors(contract, "odcs", schemas) == []
    assert contract["servers"][0] == {
        "id": "published", "server": "published", "type": "postgres", "host": "db.example.com",
        "port": 6543, "database": "warehouse", "schema": "dp",
        "description": "Product table dp.flights_daily_v1: the rows of each flight_date value "
                       "are replaced in one transaction by its run (docs/engines.md).",
        "customProperties": [{"property": "airflowConnId", "value": "wh"}]}
    assert contract["schema"][0]["physicalName"] == "dp.flights_daily_v1"
    assert "secret-pw" not in json.dumps(contract)
    product = odps_product(spec, {spec.name: spec})
    assert schema_errors(product, "odps", schemas) == []
    assert product["outputPorts"][0]["description"].startswith(
        "Table dp.flights_daily_v1 on Airflow connection wh")
