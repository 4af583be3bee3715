"""SLO statuses and run records (dataclasses, datetimes, tuples) as JSON-ready data: what the
plugin's API returns and what alert payloads carry."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

_PLAIN = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def to_jsonable(value: Any) -> Any:
    """Dataclasses, datetimes and tuples as JSON-ready data."""
    kind = type(value)
    if kind in _PLAIN:  # the bulk of the values: returned as they are, as below
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value):
        names = tuple(f.name for f in dataclasses.fields(value))
        if not isinstance(value, type):  # an instance: its class's fields never change
            _FIELD_NAMES[kind] = names
    if names is not None:
        return {name: to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
