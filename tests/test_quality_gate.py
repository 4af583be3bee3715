"""The quality gate on its own: Soda Core v4 on an in-memory DuckDB table, every outcome."""

from __future__ import annotations

import pytest

from dag_factory.engines.duckdb import connect
from dag_factory.quality.contract import contract_yaml
from dag_factory.quality.gate import GateResult, verify

COLUMNS = [{"name": "day", "data_type": "date", "checks": [{"missing": None}]},
           {"name": "carrier", "data_type": "varchar"},
           {"name": "on_time_pct", "data_type": "double",
            "checks": [{"invalid": {"valid_min": 0, "valid_max": 100}}]}]


@pytest.fixture
def con():
    con = connect()
    con.execute("""create table main.staged_p as select day, carrier, on_time_pct::double as on_time_pct from (values
        (date '2013-01-01', 'AA', 80.0), (date '2013-01-01', 'UA', 40.0),
        (date '2013-01-01', 'UA', 120.0)) t(day, carrier, on_time_pct)""")
    yield con
    con.close()


def gate(con, columns=COLUMNS, checks=None) -> GateResult:
    return verify(con, contract_yaml("p", columns, checks), rows=3)


def by_type(result: GateResult) -> dict[str, dict]:
    return {c.type + (f":{c.qualifier}" if c.qualifier else ""): c for c in result.checks}


def test_a_failing_check_fails_the_gate_with_measured_value_and_threshold(con):
    result = gate(con)
    assert result.outcome == "fail"
    invalid = by_type(result)["invalid"]
    assert (invalid.outcome, invalid.column, invalid.value) == ("failed", "on_time_pct", 1)
    assert invalid.diagnostics["invalid_count"] == 1
    assert "must be: 0" in invalid.threshold
    assert result.counts() == {"passed": 1, "warned": 0, "failed": 1, "not_evaluated": 0}


def test_a_warn_level_check_warns_and_the_gate_passes_with_warnings(con):
    columns = [COLUMNS[0], COLUMNS[1], {"name": "on_time_pct", "data_type": "double", "checks": [
        {"invalid": {"valid_min": 50, "threshold": {"level": "warn"}}}]}]
    result = gate(con, columns, [{"row_count": {"threshold": {"must_be_greater_than": 0}}}])
    assert result.outcome == "warn"
    assert by_type(result)["invalid"].outcome == "warned"
    assert by_type(result)["invalid"].level == "warn"
    assert by_type(result)["row_count"].outcome == "passed"


def test_dataset_checks_duplicate_and_schema_are_evaluated(con):
    result = gate(con, COLUMNS[:2] + [{"name": "on_time_pct", "data_type": "double"}],
                  [{"duplicate": {"columns": ["day", "carrier"]}}, {"schema": None}])
    checks = by_type(result)
    assert checks["duplicate"].outcome == "failed" and checks["duplicate"].value == 1
    assert checks["schema"].outcome == "passed", checks["schema"]


def test_schema_check_catches_a_type_drift(con):
    drifted = [COLUMNS[0], {"name": "carrier", "data_type": "bigint"}, {"name": "on_time_pct"}]
    result = gate(con, drifted, [{"schema": None}])
    assert by_type(result)["schema"].outcome == "failed"


def test_the_record_round_trips_through_json(con):
    import json

    result = gate(con)
    again = GateResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
