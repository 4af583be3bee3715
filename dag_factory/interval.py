"""The data interval a product run covers, for every way a run can start.

Airflow 3 gives asset-triggered and some manual runs no logical date and no data interval,
so the interval is resolved, first match wins, from:

1. the run's conf ``{"data_interval_start": ISO, "data_interval_end": ISO}`` (manual runs,
   ``dataproducts run`` of an asset-triggered product);
2. Airflow's own data interval, when it is not empty (scheduled runs, backfills);
3. the triggering asset events of upstream products: from the earliest
   ``data_interval_start`` to the latest ``data_interval_end`` their publish recorded
   (what Airflow 2 computed for dataset-triggered runs).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping


class NoDataInterval(ValueError):
    """Raised when a run carries no usable data interval."""


@dataclass(frozen=True)
class DataInterval:
    """A half-open UTC interval ``[start, end)``."""

    start: dt.datetime
    end: dt.datetime

    @property
    def ds(self) -> str:
        """``YYYY-MM-DD`` of the start, as Airflow's ``ds`` macro."""
        return self.start.strftime("%Y-%m-%d")

    def contains_partition(self, value: str) -> bool | None:
        """Whether a partition value (ISO date or timestamp) falls in the interval.

        Returns:
            True/False, or None when ``value`` is not a date or timestamp.
        """
        moment = parse_moment(value)
        if moment is None:
            return None
        return self.start <= moment < self.end

    def as_params(self) -> dict[str, Any]:
        """The parameters the transform SQL can use: ``$data_interval_start``,
        ``$data_interval_end`` (UTC timestamps) and ``$ds`` (YYYY-MM-DD)."""
        return {
            "data_interval_start": self.start.replace(tzinfo=None),
            "data_interval_end": self.end.replace(tzinfo=None),
            "ds": self.ds,
        }


def parse_moment(value: Any) -> dt.datetime | None:
    """Parse an ISO date or timestamp into an aware UTC datetime, or None."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def resolve_data_interval(context: Mapping[str, Any]) -> DataInterval:
    """Resolve the run's data interval from an Airflow task context (see module docstring).

    Raises:
        NoDataInterval: naming what to pass when none of the three sources has one.
    """
    dag_run = context.get("dag_run")
    conf = (getattr(dag_run, "conf", None) or {}) if dag_run is not None else {}
    if conf.get("data_interval_start") and conf.get("data_interval_end"):
        return _checked(parse_moment(conf["data_interval_start"]),
                        parse_moment(conf["data_interval_end"]), "the run conf")
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and end > start:
        return _checked(parse_moment(start), parse_moment(end), "Airflow's data interval")
    from_events = _interval_from_events(context.get("triggering_asset_events") or {})
    if from_events is not None:
        return from_events
    raise NoDataInterval(
        "this run has no data interval: it is neither scheduled, nor triggered by an upstream "
        "product's publish, nor started with conf "
        '{"data_interval_start": "2013-01-01T00:00:00+00:00", '
        '"data_interval_end": "2013-01-02T00:00:00+00:00"}'
    )


def _checked(start, end, source: str) -> DataInterval:
    if start is None or end is None or end <= start:
        raise NoDataInterval(f"{source} holds no valid data interval (start={start}, end={end}); "
                             "expected ISO timestamps with start before end")
    return DataInterval(start, end)


def _interval_from_events(events: Mapping[Any, Any]) -> DataInterval | None:
    starts, ends = [], []
    for event_list in events.values():
        for event in event_list:
            extra = getattr(event, "extra", None) or {}
            start = parse_moment(extra.get("data_interval_start"))
            end = parse_moment(extra.get("data_interval_end"))
            if start is not None and end is not None:
                starts.append(start)
                ends.append(end)
    if not starts:
        return None
    return DataInterval(min(starts), max(ends))


def template_values(interval: DataInterval) -> dict[str, Any]:
    """Context values for Jinja that Airflow leaves out when a run has no logical date."""
    return {
        "ds": interval.ds,
        "ds_nodash": interval.ds.replace("-", ""),
        "data_interval_start": interval.start,
        "data_interval_end": interval.end,
    }
