"""The data interval of a run, for each way a run can start."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from dag_factory.interval import DataInterval, NoDataInterval, resolve_data_interval

UTC = dt.timezone.utc
D1, D2, D3 = (dt.datetime(2013, 1, d, tzinfo=UTC) for d in (1, 2, 3))


def event(start, end):
    return SimpleNamespace(extra={"data_interval_start": start.isoformat(),
                                  "data_interval_end": end.isoformat()})


def test_run_conf_wins_over_airflow_interval():
    context = {"dag_run": SimpleNamespace(conf={"data_interval_start": "2013-01-02T00:00:00+00:00",
                                                "data_interval_end": "2013-01-03T00:00:00+00:00"}),
               "data_interval_start": D1, "data_interval_end": D2}
    assert resolve_data_interval(context) == DataInterval(D2, D3)


def test_scheduled_run_uses_airflow_interval():
    context = {"dag_run": SimpleNamespace(conf={}), "data_interval_start": D1, "data_interval_end": D2}
    assert resolve_data_interval(context) == DataInterval(D1, D2)


def test_asset_triggered_run_spans_the_triggering_events():
    context = {"dag_run": SimpleNamespace(conf=None), "data_interval_start": None,
               "data_interval_end": None,
               "triggering_asset_events": {"a": [event(D2, D3)], "b": [event(D1, D2), event(D2, D3)]}}
    assert resolve_data_interval(context) == DataInterval(D1, D3)


def test_empty_interval_and_no_events_is_a_clear_error():
    context = {"dag_run": SimpleNamespace(conf={}), "data_interval_start": D1, "data_interval_end": D1}
    with pytest.raises(NoDataInterval, match="data_interval_start"):
        resolve_data_interval(context)


def test_conf_with_end_before_start_is_rejected():
    context = {"dag_run": SimpleNamespace(conf={"data_interval_start": "2013-01-02",
                                                "data_interval_end": "2013-01-01"})}
    with pytest.raises(NoDataInterval, match="start before end"):
        resolve_data_interval(context)


@pytest.mark.parametrize("value, inside", [("2013-01-01", True), ("2013-01-01 23:59:59", True),
                                           ("2013-01-02", False), ("2012-12-31", False),
                                           ("EWR", None)])
def test_partition_membership(value, inside):
    assert DataInterval(D1, D2).contains_partition(value) is inside
