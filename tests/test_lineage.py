"""OpenLineage events of real product runs (dag.test + the provider's file transport),
validated against the official JSON Schemas in ../shared/openlineage-spec."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from conftest import OPENLINEAGE_EVENTS, missing, shared_dir
from helpers import demo_yaml, products_folder, run
from test_ingest_sources import SQL_PRODUCT, http_landing, postgres_flights, weather_over_http  # noqa: F401

pytestmark = [pytest.mark.airflow_run, pytest.mark.usefixtures("airflow_db")]
JAN1 = dt.date(2013, 1, 1)
SPEC_ID = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


@pytest.fixture(scope="module")
def spec() -> tuple[dict, Path]:
    """The official OpenLineage spec and facet schemas (../shared/openlineage-spec)."""
    folder = shared_dir() / "openlineage-spec"
    if not (folder / "OpenLineage.json").is_file():
        missing(f"OpenLineage JSON Schemas at {folder} (set DATAPRODUCTS_SHARED_DIR)")
    return json.loads((folder / "OpenLineage.json").read_text()), folder / "facets"


def events_of(run_id: str) -> list[dict]:
    """The task-level events of one Airflow DAG run, in emission order."""
    found = []
    for line in OPENLINEAGE_EVENTS.read_text().splitlines():
        event = json.loads(line)
        dag_run = event["run"].get("facets", {}).get("airflow", {}).get("dagRun", {})
        if dag_run.get("run_id") == run_id:
            found.append(event)
    return found


def by_task(events: list[dict], event_type: str) -> dict[str, dict]:
    return {e["job"]["name"].split(".", 1)[1]: e for e in events if e["eventType"] == event_type}


def names(datasets: list[dict]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def validate_event(event: dict, spec: tuple[dict, Path]) -> None:
    """The event against RunEvent, and every facet against its own schema file (matched by
    the file name in its ``_schemaURL``) or, for facets the spec does not define (the Airflow
    provider's own), against the base facet type of where it stands."""
    root, facet_dir = spec
    registry = Registry().with_resource(SPEC_ID, Resource.from_contents(root))
    Draft202012Validator({"$ref": f"{SPEC_ID}#/$defs/RunEvent"}, registry=registry).validate(event)

    def check(facet: dict, base: str) -> None:
        file_name = facet["_schemaURL"].split("#")[0].rsplit("/", 1)[-1]
        path = facet_dir / file_name
        if path.is_file():
            schema = json.loads(path.read_text())
            fragment = facet["_schemaURL"].split("#", 1)[1] if "#" in facet["_schemaURL"] else ""
            target = {"$ref": f"{schema['$id']}#{fragment}"}
            local = registry.with_resource(schema["$id"], Resource.from_contents(schema))
            Draft202012Validator(target, registry=local).validate(facet)
        else:
            Draft202012Validator({"$ref": f"{SPEC_ID}#/$defs/{base}"}, registry=registry).validate(facet)

    for facet in event["run"].get("facets", {}).values():
        check(facet, "RunFacet")
    for facet in event["job"].get("facets", {}).values():
        check(facet, "JobFacet")
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        for facet in dataset.get("facets", {}).values():
            check(facet, "DatasetFacet")
        for facet in dataset.get("inputFacets", {}).values():
            check(facet, "InputDatasetFacet")
        for facet in dataset.get("outputFacets", {}).values():
            check(facet, "OutputDatasetFacet")


def local(data: Path, *parts: str) -> tuple[str, str]:
    return ("file", os.path.abspath(data.joinpath(*parts)))


def test_product_runs_emit_valid_events_with_exact_inputs_and_outputs(data_folder, spec):
    runs = {name: run(name, JAN1) for name in ("flights_daily", "weather_daily", "delays_weather_daily")}
    assert all(r.state == "success" for r in runs.values())

    flights = events_of(runs["flights_daily"].run_id)
    assert flights, f"no OpenLineage events in {OPENLINEAGE_EVENTS}"
    for event in flights + events_of(runs["delays_weather_daily"].run_id):
        validate_event(event, spec)
    complete = by_task(flights, "COMPLETE")
    staging = ("_staging", "flights_daily")
    product = local(data_folder, "products", "flights_daily", "v1")
    assert names(complete["ingest.flights"]["inputs"]) == [
        local(data_folder, "landing/nycflights13/flights/2013-01-01.csv")]
    assert names(complete["ingest.flights"]["outputs"]) == [local(data_folder, *staging, "inputs", "flights")]
    assert names(complete["transform.run_sql"]["inputs"]) == [
        local(data_folder, *staging, "inputs", "flights"), local(data_folder, *staging, "inputs", "airlines")]
    assert names(complete["transform.run_sql"]["outputs"]) == [local(data_folder, *staging, "output")]
    assert names(complete["quality_gate.verify_contract"]["inputs"]) == [local(data_folder, *staging, "output")]
    assert complete["quality_gate.verify_contract"]["outputs"] == []
    assert names(complete["publish.swap_partitions"]["outputs"]) == [product]

    published = complete["publish.swap_partitions"]["outputs"][0]
    assert [f["name"] for f in published["facets"]["schema"]["fields"]][:2] == ["flight_date", "carrier"]
    assert published["facets"]["schema"]["fields"][0]["type"] == "DATE"
    assert published["outputFacets"]["outputStatistics"]["rowCount"] == runs["flights_daily"].rows
    assert published["facets"]["ownership"]["owners"] == [{"name": "team:ops-analytics", "type": "MAINTAINER"}]
    assert "carrier" in published["facets"]["documentation"]["description"]
    transform = complete["transform.run_sql"]
    assert "group by all" in transform["job"]["facets"]["sql"]["query"]
    lineage = transform["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert [(f["namespace"], f["name"], f["field"]) for f in lineage["carrier_name"]["inputFields"]] \
        == [(*local(data_folder, *staging, "inputs", "airlines"), "name")]
    assert {f["field"] for f in lineage["flight_date"]["inputFields"]} == {"year", "month", "day"}
    gate = complete["quality_gate.verify_contract"]["inputs"][0]
    assertions = gate["facets"]["dataQualityAssertions"]["assertions"]
    assert len(assertions) == runs["flights_daily"].quality["counts"]["passed"] + \
        runs["flights_daily"].quality["counts"]["warned"]
    assert {"assertion": "row_count", "success": True} .items() <= next(
        a for a in assertions if a["assertion"] == "row_count").items()
    metrics = gate["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == runs["flights_daily"].rows
    assert metrics["columnMetrics"]["carrier"]["nullCount"] == 0

    downstream = by_task(events_of(runs["delays_weather_daily"].run_id), "COMPLETE")
    assert names(downstream["ingest.flights"]["inputs"]) == [product], \
        "a consumer must name exactly the dataset its upstream's publish named"
    upstream_weather = by_task(events_of(runs["weather_daily"].run_id), "COMPLETE")
    assert names(downstream["ingest.weather"]["inputs"]) == \
        names(upstream_weather["publish.swap_partitions"]["outputs"])


def test_the_graph_drawn_from_events_connects_the_products(data_folder):
    from dag_factory.lineage.graph import graph_from_events

    runs = [run(name, JAN1) for name in ("flights_daily", "weather_daily", "delays_weather_daily")]
    lines = [json.dumps(e) for r in runs for e in events_of(r.run_id)]
    graph = graph_from_events(lines)
    flights = "file|" + local(data_folder, "products", "flights_daily", "v1")[1]
    assert ("product|flights_daily", flights) in graph.edges
    assert (flights, "product|delays_weather_daily") in graph.edges
    assert not any("/_staging/" in node for edge in graph.edges for node in edge)


def test_runs_without_a_transport_work(data_folder):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__OPENLINEAGE__")}
    done = subprocess.run([sys.executable, "-m", "dag_factory.cli.main", "run", "weather_daily",
                           "--date", "2013-01-02"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "OK  weather_daily: 3 rows" in done.stdout


def test_a_failing_gate_emits_fail_with_the_failing_assertions(data_folder, tmp_path, spec):
    strict = demo_yaml("flights_daily").replace(
        "row_count: {threshold: {must_be_greater_than: 0}}",
        "row_count: {threshold: {must_be_greater_than: 100}}")
    summary = run("flights_daily", JAN1, products_folder(tmp_path, [], {"flights_daily.yaml": strict}))
    assert summary.state == "failed"

    events = events_of(summary.run_id)
    failed = by_task(events, "FAIL")
    assert list(failed) == ["quality_gate.verify_contract"]
    event = failed["quality_gate.verify_contract"]
    validate_event(event, spec)
    assertions = event["inputs"][0]["facets"]["dataQualityAssertions"]["assertions"]
    failing = [a for a in assertions if not a["success"] and a["severity"] == "error"]
    assert [(a["assertion"], a["actual"]) for a in failing] == [("row_count", "14")]
    assert "QualityGateFailed" in event["run"]["facets"]["errorMessage"]["message"]


def test_no_secret_reaches_any_event(data_folder, tmp_path, postgres_flights, postgres_url,
                                     http_landing, monkeypatch, spec):
    password = "pg-SECRET-4242"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres_url.replace("postgres@", f"postgres:{password}@"))
    token = "tok-SECRET-4242"
    weather = weather_over_http(http_landing).replace(".csv\n", f".csv?token={token}\n", 1)
    folder = products_folder(tmp_path, [], {
        "origin_delays_daily.yaml": SQL_PRODUCT.format(schema=postgres_flights),
        "weather_daily.yaml": weather})
    summaries = [run("origin_delays_daily", JAN1, folder), run("weather_daily", JAN1, folder)]
    assert [s.state for s in summaries] == ["success", "success"]

    events = [e for s in summaries for e in events_of(s.run_id)]
    assert events
    text = json.dumps(events)
    assert password not in text and token not in text
    sql_ingest = by_task(events_of(summaries[0].run_id), "COMPLETE")["ingest.flights"]
    assert names(sql_ingest["inputs"]) == [("postgres://127.0.0.1:5432", f"postgres.{postgres_flights}.flights")]
    for event in events:
        validate_event(event, spec)
