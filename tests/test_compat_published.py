"""Contracts against what really ran: ``validate --against published`` reads the manifest a
real Airflow run (dag.test) wrote; a major bump publishes v2 next to an untouched v1, and
``retire`` removes v1 only once no product reads it."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from dag_factory.cli.main import main
from helpers import manifest, products_folder, published, run

pytestmark = [pytest.mark.airflow_run, pytest.mark.usefixtures("airflow_db")]

JAN1, JAN2 = dt.date(2013, 1, 1), dt.date(2013, 1, 2)
CARRIER_NAME = """    - name: carrier_name
      data_type: varchar
      checks: [{missing: {name: Every carrier code is in the airlines reference}}]
"""


def edit(folder, name, old, new):
    path = folder / f"{name}.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def tree_bytes(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_validate_against_the_published_manifest_of_a_real_run(data_folder, tmp_path, capsys):
    from dag_factory.contract.compat import contract_record
    from dag_factory.spec.loading import load_products

    folder = products_folder(tmp_path, ["flights_daily"])
    assert run("flights_daily", JAN1, folder).state == "success"
    meta = manifest(data_folder, "flights_daily", "flight_date=2013-01-01")
    assert meta["contract"] == contract_record(load_products(folder).products["flights_daily"].spec)
    original = (folder / "flights_daily.yaml").read_text()

    edit(folder, "flights_daily", "{name: flights, data_type: bigint",
         "{name: flights, data_type: integer")
    edit(folder, "flights_daily", "- invalid: {valid_min: 0, valid_max: 100}",
         "- invalid: {valid_min: 0, valid_max: 99}")
    edit(folder, "flights_daily", "version: 1.0.0", "version: 1.0.1")
    assert main(["validate", str(folder), "--against", "published"]) == 1
    out, err = capsys.readouterr()
    assert ("flights_daily: breaking change without a major version bump (1.0.0 -> 1.0.1): "
            "column flights: type BIGINT -> INTEGER (narrowed); invalid check on column "
            "on_time_pct: tightened: valid range [0, 100] -> [0, 99]; read by no consumer in "
            "the folder") in err
    assert "against the published manifests in" in out

    # a manifest written before contracts were recorded still reads: types are compared
    path = data_folder / "products/flights_daily/v1/flight_date=2013-01-01/_manifest.json"
    path.write_text(json.dumps({k: v for k, v in meta.items() if k != "contract"}))
    assert main(["validate", str(folder), "--against", "published"]) == 1
    out, err = capsys.readouterr()
    assert "column flights: type BIGINT -> INTEGER (narrowed); read by" in err
    assert "predates contract recording" in out
    path.write_text(json.dumps(meta))

    (folder / "flights_daily.yaml").write_text(original)
    edit(folder, "flights_daily", "- invalid: {valid_min: 0, valid_max: 100}",
         "- invalid: {valid_min: -1, valid_max: 100}")
    edit(folder, "flights_daily", "version: 1.0.0", "version: 1.1.0")
    assert main(["validate", str(folder), "--against", "published"]) == 0
    out, _ = capsys.readouterr()
    assert ("compatible  invalid check on column on_time_pct: loosened: valid range [0, 100] -> "
            "[-1, 100]") in out


def test_major_bump_publishes_v2_next_to_untouched_v1_and_retire_waits_for_consumers(
        data_folder, tmp_path, capsys):
    folder = products_folder(tmp_path, ["flights_daily", "weather_daily", "delays_weather_daily"])
    assert run("flights_daily", JAN1, folder).state == "success"
    v1 = data_folder / "products/flights_daily/v1"
    before = tree_bytes(v1)
    assert "flight_date=2013-01-01/part-0.parquet" in before

    edit(folder, "flights_daily", CARRIER_NAME, "")
    sql_line = next(line for line in (folder / "flights_daily.yaml").read_text().splitlines(True)
                    if line.rstrip().endswith("as carrier_name,"))
    edit(folder, "flights_daily", sql_line, "")
    edit(folder, "flights_daily", "version: 1.0.0", "version: 2.0.0")
    edit(folder, "delays_weather_daily",
         "{name: flights, type: product, product: flights_daily}",
         "{name: flights, type: product, product: flights_daily, major: 1}")
    assert main(["validate", str(folder), "--against", "published"]) == 0
    out, _ = capsys.readouterr()
    assert "breaking    column carrier_name: removed (was VARCHAR)" in out
    assert "the product publishes to products/flights_daily/v2/" in out

    for day in (JAN1, JAN2):
        assert run("flights_daily", day, folder).state == "success"

    assert tree_bytes(v1) == before
    assert published(data_folder, "flights_daily", major=1)[0].keys() >= {"carrier_name"}
    rows_v2 = published(data_folder, "flights_daily", major=2)
    assert {r["flight_date"] for r in rows_v2} == {JAN1, JAN2}
    assert "carrier_name" not in rows_v2[0]
    meta = manifest(data_folder, "flights_daily", "flight_date=2013-01-02", major=2)
    assert meta["version"] == "2.0.0"

    retire = ["--folder", str(folder), "retire", "flights_daily"]
    assert main([*retire, "--major", "1"]) == 1
    assert ("refusing to retire flights_daily v1: flights_daily v1 is still read by "
            "delays_weather_daily (input flights, pins major 1)") in capsys.readouterr().err
    assert main([*retire, "--major", "2"]) == 1
    assert "v2 is the version it publishes now" in capsys.readouterr().err

    edit(folder, "delays_weather_daily", "product: flights_daily, major: 1}",
         "product: flights_daily, major: 2}")
    assert main([*retire, "--major", "1", "--dry-run"]) == 0
    assert f"would remove {v1}: 1 partition(s)" in capsys.readouterr().out
    assert v1.is_dir()
    assert main([*retire, "--major", "1"]) == 0
    assert not v1.exists()
    assert {r["flight_date"] for r in published(data_folder, "flights_daily", major=2)} \
        == {JAN1, JAN2}
