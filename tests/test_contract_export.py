"""ODCS v3.1 and ODPS v1 exports (dag_factory/contract): every demo product's documents match
the official Bitol JSON Schemas from ../shared/bitol-schemas, each Soda check kind maps to the
expected ODCS rule (itself valid ODCS), broken documents are caught by that validation (also
in the CLI), and the ids, types, SLOs, servers and ports come out as documented."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from conftest import PRODUCTS, missing, shared_dir
from dag_factory.contract.ids import contract_id, input_contract_id, parse_contract_id
from dag_factory.contract.logical_types import logical_type
from dag_factory.contract.odcs import odcs_contract
from dag_factory.contract.odps import odps_product
from dag_factory.contract.quality import column_rule, dataset_rule
from dag_factory.contract.validation import SCHEMA_FILES, ExportInvalid, check_document, schema_errors
from dag_factory.contract.view import contract_view
from dag_factory.spec.loading import load_product_file, load_products
from dag_factory.spec.soda_schema import soda_contract_errors
from helpers import demo_yaml

DATA = "/srv/data"


@pytest.fixture(scope="module")
def schemas() -> Path:
    """``../shared/bitol-schemas`` with the official ODCS and ODPS JSON Schemas."""
    folder = shared_dir() / "bitol-schemas"
    for name in SCHEMA_FILES.values():
        if not (folder / name).is_file():
            missing(f"{folder / name} (the official Bitol JSON Schema, in ../shared)")
    return folder


@pytest.fixture(scope="module")
def specs() -> dict:
    loaded = load_products(PRODUCTS)
    assert not loaded.errors
    return {name: p.spec for name, p in loaded.products.items()}


def spec_from(tmp_path: Path, text: str):
    path = tmp_path / "product.yaml"
    path.write_text(text)
    return load_product_file(path).spec


# -- every demo product validates ---------------------------------------------------------------

DEMO = sorted(p.stem for p in PRODUCTS.glob("*.yaml"))


@pytest.mark.parametrize("name", DEMO)
def test_every_demo_products_exports_match_the_official_schemas(name, specs, schemas):
    contract = odcs_contract(specs[name], DATA)
    assert schema_errors(contract, "odcs", schemas) == []
    product = odps_product(specs[name], specs)
    assert schema_errors(product, "odps", schemas) == []
    # the ODPS output ports promise the ODCS contract of the same product
    assert {p["contractId"] for p in product["outputPorts"]} == {contract["id"]}
    # one property per declared column, in order, with the SQL type as physical type
    columns = specs[name].output.columns
    assert [(p["name"], p.get("physicalType")) for p in contract["schema"][0]["properties"]] == \
        [(c.name, c.data_type) for c in columns]


def test_the_demo_exports_are_plain_yaml_and_json(specs):
    for name, spec in specs.items():
        for document in (odcs_contract(spec, DATA), odps_product(spec, specs)):
            assert yaml.safe_load(yaml.safe_dump(document, sort_keys=False)) == document
            assert json.loads(json.dumps(document)) == document


# -- Soda check kinds -> ODCS rules --------------------------------------------------------------

LIB = {"type": "library", "severity": "error"}
COLUMN_CASES = [
    ({"missing": None},
     {**LIB, "metric": "nullValues", "mustBe": 0, "unit": "rows", "dimension": "completeness"},
     {"required": True}),
    ({"missing": {"missing_values": ["NA", ""]}},
     {**LIB, "metric": "missingValues", "arguments": {"missingValues": [None, "NA", ""]},
      "mustBe": 0, "unit": "rows"}, {"required": True}),
    ({"missing": {"threshold": {"metric": "percent", "must_be_less_than": 5}}},
     {**LIB, "metric": "nullValues", "mustBeLessThan": 5, "unit": "percent"}, {}),
    ({"missing": {"name": "Known", "threshold": {"level": "warn"}}},
     {**LIB, "metric": "nullValues", "mustBe": 0, "severity": "warning", "name": "Known"}, {}),
    ({"missing": {"threshold": {"must_be_between": {"greater_than_or_equal": 1,
                                                    "less_than_or_equal": 5}}}},
     {**LIB, "metric": "nullValues", "mustBeBetween": [1, 5]}, {}),
    ({"invalid": {"valid_values": ["EWR", "JFK", "LGA"]}},
     {**LIB, "metric": "invalidValues", "arguments": {"validValues": ["EWR", "JFK", "LGA"]},
      "mustBe": 0, "dimension": "conformity"}, {}),
    ({"invalid": {"valid_format": {"regex": "^[A-Z]{2}$", "name": "carrier code"}}},
     {**LIB, "metric": "invalidValues", "arguments": {"pattern": "^[A-Z]{2}$"}, "mustBe": 0}, {}),
    ({"invalid": {"valid_min": 0, "valid_max": 100}},
     {"type": "sql", "query": "SELECT COUNT(*) FROM {object} WHERE {property} < 0 OR {property} > 100",
      "mustBe": 0, "severity": "error"}, {"minimum": 0, "maximum": 100}),
    ({"invalid": {"valid_min": 1}},
     {"type": "sql", "query": "SELECT COUNT(*) FROM {object} WHERE {property} < 1", "mustBe": 0},
     {"minimum": 1}),
    ({"invalid": {"qualifier": "floor", "valid_min": 50, "threshold": {"level": "warn"}}},
     {"type": "sql", "severity": "warning", "id": "col-invalid-floor"}, {}),
    ({"duplicate": None},
     {**LIB, "metric": "duplicateValues", "mustBe": 0, "dimension": "uniqueness"}, {"unique": True}),
    ({"duplicate": {"threshold": {"metric": "percent", "must_be_less_than": 1}}},
     {**LIB, "metric": "duplicateValues", "mustBeLessThan": 1, "unit": "percent"}, {}),
]
# ODCS has no equivalent: the Soda check is carried as it is
COLUMN_CUSTOM = [
    {"invalid": {"valid_length": 3}},
    {"invalid": {"valid_min_length": 1, "valid_max_length": 3}},
    {"invalid": {"invalid_values": ["ZZ"]}},
    {"invalid": {"valid_reference_data": {"dataset": "ds/main/airlines", "column": "carrier"}}},
    {"missing": {"missing_format": {"regex": "^\\s*$", "name": "blank"}}},
    {"missing": {"filter": "carrier <> 'ZZ'"}},
    {"missing": {"threshold": {"must_be_between": {"greater_than": 1, "less_than": 5}}}},
    {"missing": {"threshold": {"must_be_less_than": 3, "level": "warn",
                               "additional": {"must_be_less_than": 10}}}},
    {"aggregate": {"function": "avg", "threshold": {"must_be_between": {
        "greater_than_or_equal": 0, "less_than_or_equal": 100}}}},
    {"metric": {"expression": "avg(col)", "threshold": {"must_be_greater_than": 0}}},
    {"failed_rows": {"expression": "col < 0"}},
]
DATASET_CASES = [
    ({"row_count": None},
     {**LIB, "metric": "rowCount", "mustBeGreaterThan": 0, "unit": "rows", "id": "row_count"}),
    ({"row_count": {"threshold": {"must_be_between": {"greater_than_or_equal": 1,
                                                      "less_than_or_equal": 3}}}},
     {**LIB, "metric": "rowCount", "mustBeBetween": [1, 3]}),
    ({"row_count": {"threshold": {"must_be_between": {"greater_than": 10}}}},
     {**LIB, "metric": "rowCount", "mustBeGreaterThan": 10}),
    ({"duplicate": {"columns": ["flight_date", "carrier"]}},
     {**LIB, "metric": "duplicateValues", "arguments": {"properties": ["flight_date", "carrier"]},
      "mustBe": 0, "dimension": "uniqueness"}),
]
DATASET_CUSTOM = [
    {"schema": None},
    {"schema": {"allow_extra_columns": True}},
    {"freshness": {"column": "col", "threshold": {"unit": "hour", "must_be_less_than": 26}}},
    {"failed_rows": {"query": "select * from ds where col < 0"}},
    {"metric": {"query": "select count(*) from ds", "threshold": {"must_be_greater_than": 0}}},
    {"row_count": {"filter": "col > 0"}},
]


def _assert_soda_syntax(check, column_level: bool) -> None:
    """The test input is real Soda v4 contract syntax (Soda's own JSON Schema)."""
    if column_level:
        assert soda_contract_errors([{"name": "col", "checks": [check]}], None) == []
    else:
        assert soda_contract_errors([{"name": "col"}], [check]) == []


def _contract_with(column_rules=(), dataset_rules=()) -> dict:
    prop = {"name": "col", "logicalType": "number"}
    if column_rules:
        prop["quality"] = list(column_rules)
    obj = {"name": "t", "properties": [prop]}
    if dataset_rules:
        obj["quality"] = list(dataset_rules)
    return {"apiVersion": "v3.1.0", "kind": "DataContract", "id": "t-v1", "version": "1.0.0",
            "status": "active", "schema": [obj]}


@pytest.mark.parametrize("check,expected,facts", COLUMN_CASES, ids=lambda v: json.dumps(v)[:60])
def test_each_column_check_kind_maps_to_its_odcs_rule(check, expected, facts, schemas):
    _assert_soda_syntax(check, column_level=True)
    rule, got_facts = column_rule("col", check)
    assert {k: rule.get(k) for k in expected} == expected
    assert got_facts == facts
    assert schema_errors(_contract_with(column_rules=[rule]), "odcs", schemas) == []


@pytest.mark.parametrize("check", COLUMN_CUSTOM + [{"duplicate": {"filter": "col > 0"}}],
                         ids=lambda v: json.dumps(v)[:60])
def test_column_checks_without_an_odcs_equivalent_are_custom_soda_rules(check, schemas):
    _assert_soda_syntax(check, column_level=True)
    rule, facts = column_rule("col", check)
    assert rule["type"] == "custom" and rule["engine"] == "soda"
    kind, body = next(iter(check.items()))
    assert rule["implementation"] == {kind: body}  # the check exactly as written
    assert facts == {}
    assert schema_errors(_contract_with(column_rules=[rule]), "odcs", schemas) == []


@pytest.mark.parametrize("check,expected", DATASET_CASES, ids=lambda v: json.dumps(v)[:60])
def test_each_dataset_check_kind_maps_to_its_odcs_rule(check, expected, schemas):
    _assert_soda_syntax(check, column_level=False)
    rule = dataset_rule(check)
    assert {k: rule.get(k) for k in expected} == expected
    assert schema_errors(_contract_with(dataset_rules=[rule]), "odcs", schemas) == []


@pytest.mark.parametrize("check", DATASET_CUSTOM, ids=lambda v: json.dumps(v)[:60])
def test_dataset_checks_without_an_odcs_equivalent_are_custom_soda_rules(check, schemas):
    _assert_soda_syntax(check, column_level=False)
    rule = dataset_rule(check)
    kind, body = next(iter(check.items()))
    assert (rule["type"], rule["engine"], rule["implementation"]) == ("custom", "soda", {kind: body})
    assert schema_errors(_contract_with(dataset_rules=[rule]), "odcs", schemas) == []


def test_the_demo_checks_land_on_their_properties(specs):
    """weather_daily: guarantees become property facts, the warn-level check does not."""
    contract = odcs_contract(specs["weather_daily"], DATA)
    props = {p["name"]: p for p in contract["schema"][0]["properties"]}
    assert props["weather_date"]["required"] is True and props["weather_date"]["partitioned"]
    hours = props["hours_observed"]
    assert hours["logicalTypeOptions"] == {"format": "i64", "minimum": 1, "maximum": 24}
    assert [r["severity"] for r in hours["quality"]] == ["error", "warning"]
    assert hours["quality"][1]["id"] == "hours_observed-invalid-complete_day"
    assert props["origin"]["quality"][0]["arguments"] == {"validValues": ["EWR", "JFK", "LGA"]}
    assert props["origin"]["required"] is False  # no missing check: nulls are not excluded
    assert [r.get("metric") or r["engine"] for r in contract["schema"][0]["quality"]] == \
        ["rowCount", "duplicateValues", "soda"]


# -- the validation is really applied ------------------------------------------------------------

def _first_rule(doc):
    return next(p for p in doc["schema"][0]["properties"] if p.get("quality"))["quality"][0]


ODCS_BREAKAGES = {
    "Soda's threshold key left untranslated": lambda d: _first_rule(d).update(must_be=0),
    "SQL type used as the logical type": lambda d: d["schema"][0]["properties"][0].update(
        logicalType="double"),
    "custom rule without implementation": lambda d: d["schema"][0]["quality"].append(
        {"type": "custom", "engine": "soda"}),
    "two operators on one library rule": lambda d: _first_rule(d).update(mustBeGreaterThan=1),
    "s3 server with a path instead of a location": lambda d: d["servers"].append(
        {"server": "x", "type": "s3", "path": "s3://b/k"}),
    "numeric minimum on a date": lambda d: d["schema"][0]["properties"][0].update(
        logicalTypeOptions={"minimum": 0}),
    "SLA entry without value": lambda d: d["slaProperties"].append({"property": "latency"}),
    "no apiVersion": lambda d: d.pop("apiVersion"),
}
ODPS_BREAKAGES = {
    "input port without contract id": lambda d: d["inputPorts"][0].pop("contractId"),
    "output port without version": lambda d: d["outputPorts"][0].pop("version"),
    "unknown top-level key": lambda d: d.update(owner="ops-analytics"),
}


@pytest.mark.parametrize("breakage", sorted(ODCS_BREAKAGES))
def test_a_broken_odcs_export_is_caught(breakage, specs, schemas):
    document = copy.deepcopy(odcs_contract(specs["flights_daily"], DATA))
    ODCS_BREAKAGES[breakage](document)
    errors = schema_errors(document, "odcs", schemas)
    assert errors and all(e.startswith("$") for e in errors)
    with pytest.raises(ExportInvalid, match="does not match the official JSON Schema"):
        check_document(document, "odcs", schemas)


@pytest.mark.parametrize("breakage", sorted(ODPS_BREAKAGES))
def test_a_broken_odps_export_is_caught(breakage, specs, schemas):
    document = copy.deepcopy(odps_product(specs["delays_weather_daily"], specs))
    ODPS_BREAKAGES[breakage](document)
    assert schema_errors(document, "odps", schemas)


def test_the_cli_refuses_to_write_an_export_that_breaks_the_schema(tmp_path, schemas,
                                                                  monkeypatch, capsys):
    """A mapper that leaves Soda's ``must_be`` in a rule: ``--schemas`` stops the export."""
    from dag_factory.cli.main import main
    from dag_factory.contract import odcs

    real = odcs.odcs_contract

    def faulty(spec, data_folder):
        document = real(spec, data_folder)
        _first_rule(document)["must_be"] = 0
        return document

    out = tmp_path / "contract.yaml"
    args = ["--folder", str(PRODUCTS), "export", "flights_daily", "--format", "odcs",
            "--schemas", str(schemas), "-o", str(out)]
    assert main(args) == 0 and yaml.safe_load(out.read_text())["id"] == "flights_daily-v1"
    out.unlink()
    monkeypatch.setattr(odcs, "odcs_contract", faulty)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "does not match the official JSON Schema" in err and "must_be" in err
    assert "$.schema[0].properties[0].quality[0]" in err
    assert not out.exists()


def test_the_cli_names_a_missing_schema_folder(tmp_path, capsys):
    from dag_factory.cli.main import main

    assert main(["--folder", str(PRODUCTS), "export", "flights_daily", "--format", "odps",
                 "--schemas", str(tmp_path)]) == 1
    assert "odps-json-schema-v1.0.0.json" in capsys.readouterr().err


def test_the_cli_writes_yaml_or_json_of_the_same_document(tmp_path, specs, monkeypatch, capsys):
    from dag_factory.cli.main import main

    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_FOLDER", DATA)
    assert main(["--folder", str(PRODUCTS), "export", "delays_weather_daily",
                 "--format", "odps"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == odps_product(
        specs["delays_weather_daily"], specs)
    out = tmp_path / "c.json"
    assert main(["--folder", str(PRODUCTS), "export", "weather_daily", "--format", "odcs",
                 "--json", "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == odcs_contract(specs["weather_daily"], DATA)
    assert main(["--folder", str(PRODUCTS), "export", "no_such", "--format", "odcs"]) == 1
    assert "no valid product 'no_such'" in capsys.readouterr().err


# -- ids, types, SLOs, servers, ports -----------------------------------------------------------

def test_contract_ids_are_name_and_major_and_parse_back():
    assert contract_id("flights_daily", 1) == "flights_daily-v1"
    assert parse_contract_id("flights_daily-v12") == ("flights_daily", 12)
    assert parse_contract_id(contract_id("a_v2", 3)) == ("a_v2", 3)
    assert input_contract_id("fleet_daily", 1, "planes") == "fleet_daily-v1-input-planes"
    for bad in ("flights_daily", "Flights-v1", "flights_daily-v01", "a-b-v1"):
        with pytest.raises(ValueError, match="expected a contract id"):
            parse_contract_id(bad)
    with pytest.raises(ValueError):
        contract_id("Bad-Name", 1)


def test_a_new_major_is_a_new_contract_and_a_prerelease_is_a_draft(tmp_path):
    text = demo_yaml("flights_daily")
    v2 = spec_from(tmp_path, text.replace("version: 1.0.0", 'version: "2.1.0-rc1"'))
    contract = odcs_contract(v2, DATA)
    assert (contract["id"], contract["version"], contract["status"]) == \
        ("flights_daily-v2", "2.1.0-rc1", "draft")
    assert contract["servers"][0]["path"] == f"{DATA}/products/flights_daily/v2/*/part-0.parquet"
    v1 = spec_from(tmp_path, text.replace("version: 1.0.0", "version: 1.4.2"))
    assert (odcs_contract(v1, DATA)["id"], odcs_contract(v1, DATA)["status"]) == \
        ("flights_daily-v1", "active")


@pytest.mark.parametrize("sql,logical,options", [
    ("bigint", "integer", {"format": "i64"}), ("INTEGER", "integer", {"format": "i32"}),
    ("smallint", "integer", {"format": "i16"}), ("ubigint", "integer", {"format": "u64"}),
    ("double", "number", {"format": "f64"}), ("real", "number", {"format": "f32"}),
    ("decimal(10, 2)", "number", {}), ("varchar", "string", {}),
    ("varchar(3)", "string", {"maxLength": 3}), ("text", "string", {}),
    ("date", "date", {}), ("timestamp", "timestamp", {"timezone": False}),
    ("timestamptz", "timestamp", {"timezone": True}), ("time", "time", {}),
    ("boolean", "boolean", {}), ("blob", "string", {"format": "binary"}),
    ("uuid", "string", {"format": "uuid"}), ("interval", None, {}), (None, None, {}),
])
def test_sql_types_map_to_odcs_logical_types(sql, logical, options):
    assert (logical_type(sql).name, logical_type(sql).options) == (logical, options)


def _sla(contract) -> dict:
    return {i["property"]: i for i in contract.get("slaProperties", [])}


def test_slos_become_sla_properties(specs):
    sla = _sla(odcs_contract(specs["flights_daily"], DATA))
    for name in ("latency", "freshness"):
        assert {k: sla[name][k] for k in ("value", "unit", "element")} == \
            {"value": 26, "unit": "h", "element": "flights_daily.flight_date"}
    assert {k: sla["frequency"][k] for k in ("value", "unit", "scheduler", "schedule")} == \
        {"value": 1, "unit": "d", "scheduler": "cron", "schedule": "0 0 * * *"}
    assert (sla["successRate"]["value"], sla["successRate"]["unit"],
            sla["successRate"]["valueExt"]) == (99, "percent", "30d")
    assert sla["qualityPassRate"]["value"] == 99
    fleet = _sla(odcs_contract(specs["fleet_daily"], DATA))
    assert fleet["successRate"]["value"] == 98 and "qualityPassRate" not in fleet
    delays = _sla(odcs_contract(specs["delays_weather_daily"], DATA))
    assert delays["frequency"]["value"] == "asset-triggered"
    assert delays["frequency"]["schedule"] == "flights_daily, weather_daily"


@pytest.mark.parametrize("schedule,expected", [
    ('"30 6 * * *"', {"value": 1, "unit": "d", "schedule": "30 6 * * *"}),
    ('"*/15 * * * *"', {"value": 15, "unit": "min"}),
    ('"0 6 * * 1-5"', {"value": "0 6 * * 1-5", "unit": None}),  # not evenly spaced
    ("'@weekly'", {"value": 7, "unit": "d", "schedule": "0 0 * * 0"}),
    ("null", None),
])
def test_the_schedule_gives_the_frequency(schedule, expected, tmp_path, schemas):
    text = demo_yaml("flights_daily").replace('schedule: "@daily"', f"schedule: {schedule}")
    text = text.replace("freshness: 26h", "freshness: 1.5d")
    contract = odcs_contract(spec_from(tmp_path, text), DATA)
    assert schema_errors(contract, "odcs", schemas) == []
    sla = _sla(contract)
    assert (sla["latency"]["value"], sla["latency"]["unit"]) == (1.5, "d")
    if expected is None:
        assert "frequency" not in sla
    else:
        assert {k: sla["frequency"].get(k) for k in expected} == expected


def test_servers_and_ports_name_connections_never_credentials(tmp_path, schemas):
    text = demo_yaml("weather_daily").replace(
        "    type: file\n    path: landing/nycflights13/weather/{{ ds }}.csv\n",
        "    type: http\n    url: https://bob:pw123@feed.example.com/{{ ds }}.csv?api_key=TOPSECRET\n"
    )
    text = text.replace("  checks:\n    - row_count", "  exports:\n"
                        "    - {type: s3, uri: \"s3://products/weather/{{ ds }}.parquet\", "
                        "conn_id: aws_products}\n"
                        "    - {type: file, path: \"exports/weather/{{ ds }}.csv\", format: csv}\n"
                        "  checks:\n    - row_count", 1)
    spec = spec_from(tmp_path, text)
    contract = odcs_contract(spec, "s3://lake/dp")
    product = odps_product(spec, {spec.name: spec})
    assert schema_errors(contract, "odcs", schemas) == []
    assert schema_errors(product, "odps", schemas) == []
    published, s3, local = contract["servers"]
    assert published == {**published, "type": "s3", "format": "parquet",
                         "location": "s3://lake/dp/products/weather_daily/v1/*/part-*.parquet"}
    assert {k: s3[k] for k in ("id", "type", "location", "format")} == \
        {"id": "export-1", "type": "s3", "location": "s3://products/weather/*.parquet",
         "format": "parquet"}
    assert {p["property"]: p["value"] for p in s3["customProperties"]} == \
        {"locationTemplate": "s3://products/weather/{{ ds }}.parquet",
         "airflowConnId": "aws_products"}
    assert (local["type"], local["path"], local["format"]) == \
        ("local", "s3://lake/dp/exports/weather/*.csv", "csv")
    assert [p["name"] for p in product["outputPorts"]] == ["published", "export-1", "export-2"]
    port = product["inputPorts"][0]
    assert port["contractId"] == "weather_daily-v1-input-observations"
    assert {p["property"]: p["value"] for p in port["customProperties"]} == {
        "type": "http", "format": "csv",
        "location": "https://***@feed.example.com/{{ ds }}.csv?api_key=***"}
    for document in (contract, product):
        text = json.dumps(document)
        assert "TOPSECRET" not in text and "pw123" not in text


def test_product_inputs_reference_the_upstream_contracts(specs):
    product = odps_product(specs["delays_weather_daily"], specs)
    assert [(p["name"], p["contractId"], p["version"]) for p in product["inputPorts"]] == \
        [("flights", "flights_daily-v1", "1.0.0"), ("weather", "weather_daily-v1", "1.0.0")]
    assert product["outputPorts"][0]["inputContracts"] == [
        {"id": "flights_daily-v1", "version": "1.0.0"},
        {"id": "weather_daily-v1", "version": "1.0.0"}]
    assert (product["team"]["name"], product["id"], product["version"]) == \
        ("ops-analytics", "delays_weather_daily", "1.0.0")
    with pytest.raises(ValueError, match="reads product 'flights_daily', which is not among"):
        odps_product(specs["delays_weather_daily"], {"weather_daily": specs["weather_daily"]})


def test_the_contract_view_counts_consumers_the_user_may_not_read(specs):
    contract = odcs_contract(specs["flights_daily"], DATA)
    everyone = contract_view(specs["flights_daily"], specs, set(specs), contract)
    assert (everyone.consumers, everyone.hidden_consumers) == (["delays_weather_daily"], 0)
    limited = contract_view(specs["flights_daily"], specs, {"flights_daily"}, contract)
    assert (limited.consumers, limited.hidden_consumers) == ([], 1)
    assert "delays_weather_daily" not in json.dumps(dataclasses.asdict(limited))
    columns = {c.name: c for c in everyone.columns}
    assert columns["flight_date"].partition_key and columns["flight_date"].required
    assert [c.text for c in columns["on_time_pct"].checks] == [
        "Every value is between 0 and 100 (inclusive)", "Every value is at least 50"]
    assert [c.text for c in everyone.dataset_checks] == [
        "row count > 0", "no duplicates of (flight_date, carrier)", "Soda check {schema: null}"]
    assert {s.name: s.target for s in everyone.slos} == {
        "freshness": "≤ 26 h", "frequency": "every 1 d (cron 0 0 * * *)",
        "successRate": "≥ 99% over 30d", "qualityPassRate": "≥ 99% over 30d"}


def test_the_cli_names_an_s3_data_folder_as_an_s3_server(tmp_path, monkeypatch, schemas):
    from dag_factory.cli.main import main

    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_FOLDER", "s3://lake/dataproducts/")
    out = tmp_path / "c.yaml"
    assert main(["--folder", str(PRODUCTS), "export", "fleet_daily", "--format", "odcs",
                 "--schemas", str(schemas), "-o", str(out)]) == 0
    server = yaml.safe_load(out.read_text())["servers"][0]
    assert (server["type"], server["location"]) == \
        ("s3", "s3://lake/dataproducts/products/fleet_daily/v1/*/part-*.parquet")
