"""Compare two versions of one Soda Core v4 check: tightened, loosened, or unchanged.

A check is *tightened* when some data that passed the old check can fail the new one, and
*loosened* when everything that passed still passes. Only the fail level matters: a warn-level
threshold never stops a publish. Where a change cannot be shown to loosen the check (a changed
regex, SQL expression or filter, a threshold switched from count to percent), it counts as
tightened. Soda's semantics used here (default thresholds, levels, ``additional``) are those of
soda-core 4: see https://docs.soda.io/soda-v4/reference/contract-language-reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TIGHTENED, LOOSENED = "tightened", "loosened"

COMPARISON_KEYS = ("must_be", "must_not_be", "must_be_greater_than",
                   "must_be_greater_than_or_equal", "must_be_less_than",
                   "must_be_less_than_or_equal", "must_be_between", "must_be_not_between")
# soda_core.contracts.impl.check_types.*: the threshold a check has when none is written
DEFAULT_THRESHOLDS = {
    "missing": {"must_be": 0}, "invalid": {"must_be": 0}, "duplicate": {"must_be": 0},
    "failed_rows": {"must_be": 0}, "row_count": {"must_be_greater_than": 0},
    "schema": {"must_be_less_than_or_equal": 0},
}
# keys that only label a check
_COSMETIC = {"name", "qualifier", "attributes", "threshold"}
_OPAQUE_NARROWING = ("missing_format", "valid_format", "invalid_format", "valid_reference_data")


@dataclass(frozen=True)
class CheckRef:
    """Identity of a check in a contract: its column (None: dataset level), type and qualifier
    (Soda requires a qualifier to tell two checks of one type apart)."""

    column: str | None
    kind: str
    qualifier: str | None = None

    def __str__(self) -> str:
        where = f"column {self.column}" if self.column else "the dataset"
        qualifier = f" ({self.qualifier})" if self.qualifier else ""
        return f"{self.kind} check{qualifier} on {where}"


@dataclass(frozen=True)
class CheckDelta:
    """One difference between two versions of a check: ``direction`` is TIGHTENED or LOOSENED,
    ``text`` says what changed, old -> new."""

    direction: str
    text: str


def parse_checks(checks: list[Any] | None, column: str | None) -> dict[CheckRef, dict]:
    """Index a Soda ``checks`` list (column or dataset level) by :class:`CheckRef`.

    Args:
        checks: items like ``{"missing": None}`` or ``{"invalid": {"valid_min": 0}}``.
        column: the column the list belongs to, or None for dataset-level checks.

    Returns:
        ref -> the check's parameters (``{}`` for a bare check).
    """
    indexed: dict[CheckRef, dict] = {}
    for item in checks or []:
        if not isinstance(item, dict):
            continue
        for kind, params in item.items():
            params = params if isinstance(params, dict) else {}
            indexed[CheckRef(column, kind, params.get("qualifier"))] = params
    return indexed


def fail_threshold(kind: str, params: dict) -> dict | None:
    """The comparisons that fail the check (``{"must_be": 0}``, ``{"metric": "percent", ...}``),
    or None when the check can only warn.

    Soda's rules: a level other than ``warn`` is ``fail``; a threshold without comparisons
    takes the check type's default; ``additional`` adds one more comparison with the other
    level; ``metric`` (count/percent) and ``unit`` belong to the outer threshold.
    """
    threshold = params.get("threshold") or {}
    scale = {k: threshold[k] for k in ("metric", "unit") if k in threshold}
    if not _is_warn(threshold.get("level")):
        comparisons = _comparisons(threshold) or DEFAULT_THRESHOLDS.get(kind, {})
        return {**comparisons, **scale}
    additional = threshold.get("additional")
    if isinstance(additional, dict) and not _is_warn(additional.get("level")):
        return {**_comparisons(additional), **scale}
    return None


def is_fail_level(kind: str, params: dict) -> bool:
    """Whether a failing check stops the publish (has a fail-level threshold)."""
    return fail_threshold(kind, params) is not None


def compare_check(kind: str, old: dict, new: dict) -> list[CheckDelta]:
    """What changed between two versions of one check (same :class:`CheckRef`).

    Returns:
        the deltas, empty when the check gates exactly as before. A change that only concerns
        a warn-level check is LOOSENED (it never blocks a publish).
    """
    old_fail, new_fail = fail_threshold(kind, old), fail_threshold(kind, new)
    if new_fail is None:
        if old_fail is not None:
            return [CheckDelta(LOOSENED, "level fail -> warn")]
        changed = _strip(old) != _strip(new) or old.get("threshold") != new.get("threshold")
        return [CheckDelta(LOOSENED, "warn-level check changed")] if changed else []
    if old_fail is None:
        return [CheckDelta(TIGHTENED, "level warn -> fail")]
    deltas = []
    threshold = _compare_thresholds(old_fail, new_fail)
    if threshold:
        deltas.append(threshold)
    deltas += compare_parameters(_strip(old), _strip(new))
    return deltas


def _is_warn(level: Any) -> bool:
    return isinstance(level, str) and level.lower() == "warn"


def _comparisons(threshold: dict) -> dict:
    return {k: threshold[k] for k in COMPARISON_KEYS if k in threshold}


def _strip(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in _COSMETIC}


# ---- thresholds: the set of metric values that pass, as a union of intervals ----------------

Interval = tuple[float, bool, float, bool]  # (low, low included, high, high included)
_ALL: list[Interval] = [(-math.inf, False, math.inf, False)]


def _compare_thresholds(old: dict, new: dict) -> CheckDelta | None:
    if old == new:
        return None
    text = f"threshold {describe_threshold(old)} -> {describe_threshold(new)}"
    scale = ("metric", "unit")
    if any(old.get(k) != new.get(k) for k in scale):
        return CheckDelta(TIGHTENED, text + " (a different metric or unit cannot be compared)")
    try:
        old_set, new_set = passing_values(old), passing_values(new)
    except (TypeError, ValueError):
        return CheckDelta(TIGHTENED, text + " (not numeric, cannot be compared)")
    if _subset(old_set, new_set):  # every metric value that passed still passes
        return CheckDelta(LOOSENED, text) if not _subset(new_set, old_set) else None
    return CheckDelta(TIGHTENED, text)


def describe_threshold(comparisons: dict) -> str:
    """A short text of a threshold: ``{"must_be_greater_than": 0}`` -> ``"> 0"``."""
    symbols = {"must_be": "=", "must_not_be": "!=", "must_be_greater_than": ">",
               "must_be_greater_than_or_equal": ">=", "must_be_less_than": "<",
               "must_be_less_than_or_equal": "<="}
    parts = []
    for key, value in comparisons.items():
        if key in symbols:
            parts.append(f"{symbols[key]} {value}")
        elif key in ("must_be_between", "must_be_not_between") and isinstance(value, dict):
            inner = " and ".join(f"{symbols['must_be_' + k]} {v}" for k, v in value.items()
                                 if "must_be_" + k in symbols)
            parts.append(("not " if key == "must_be_not_between" else "") + f"({inner})")
        elif key in ("metric", "unit"):
            parts.append(f"[{value}]")
    return " ".join(parts) or "(none)"


def passing_values(comparisons: dict) -> list[Interval]:
    """The metric values a threshold accepts, as sorted disjoint intervals.

    Raises:
        ValueError / TypeError: a bound is not a number (a variable, a duration text).
    """
    accepted = list(_ALL)
    for key, value in comparisons.items():
        if key in ("metric", "unit"):
            continue
        accepted = _intersect(accepted, _comparison_set(key, value))
    return accepted


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def _comparison_set(key: str, value: Any) -> list[Interval]:
    inf = math.inf
    if key == "must_be":
        return [(_num(value), True, _num(value), True)]
    if key == "must_not_be":
        return [(-inf, False, _num(value), False), (_num(value), False, inf, False)]
    if key == "must_be_greater_than":
        return [(_num(value), False, inf, False)]
    if key == "must_be_greater_than_or_equal":
        return [(_num(value), True, inf, False)]
    if key == "must_be_less_than":
        return [(-inf, False, _num(value), False)]
    if key == "must_be_less_than_or_equal":
        return [(-inf, False, _num(value), True)]
    if key in ("must_be_between", "must_be_not_between") and isinstance(value, dict):
        inside = list(_ALL)
        for bound, bound_value in value.items():
            inside = _intersect(inside, _comparison_set("must_be_" + bound, bound_value))
        return inside if key == "must_be_between" else _complement(inside)
    raise ValueError(f"unknown threshold comparison {key!r}")


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    result = []
    for lo1, lc1, hi1, hc1 in a:
        for lo2, lc2, hi2, hc2 in b:
            lo, lc = (lo1, lc1) if (lo1, not lc1) > (lo2, not lc2) else (lo2, lc2)
            hi, hc = (hi1, hc1) if (hi1, hc1) < (hi2, hc2) else (hi2, hc2)
            if lo < hi or (lo == hi and lc and hc):
                result.append((lo, lc, hi, hc))
    return sorted(result)


def _complement(intervals: list[Interval]) -> list[Interval]:
    result, lo, lc = [], -math.inf, False
    for i_lo, i_lc, i_hi, i_hc in sorted(intervals):
        if lo < i_lo or (lo == i_lo and lc and not i_lc):
            result.append((lo, lc, i_lo, not i_lc))
        lo, lc = i_hi, not i_hc
    if lo < math.inf:
        result.append((lo, lc, math.inf, False))
    return result


def _subset(a: list[Interval], b: list[Interval]) -> bool:
    """Whether every value in ``a`` is in ``b`` (both disjoint intervals; an interval of ``a``
    is connected, so it must lie inside one interval of ``b`` once ``b``'s touching parts are
    merged)."""
    merged: list[Interval] = []
    for interval in sorted(b):
        if merged and (merged[-1][2] > interval[0] or
                       (merged[-1][2] == interval[0] and (merged[-1][3] or interval[1]))):
            lo, lc, hi, hc = merged[-1]
            if (interval[2], interval[3]) > (hi, hc):
                hi, hc = interval[2], interval[3]
            merged[-1] = (lo, lc, hi, hc)
        else:
            merged.append(interval)
    return all(any(_inside(i, m) for m in merged) for i in a)


def _inside(inner: Interval, outer: Interval) -> bool:
    lo_ok = outer[0] < inner[0] or (outer[0] == inner[0] and (outer[1] or not inner[1]))
    hi_ok = outer[2] > inner[2] or (outer[2] == inner[2] and (outer[3] or not inner[3]))
    return lo_ok and hi_ok


# ---- what counts as a missing / invalid / duplicate value ------------------------------------

def compare_parameters(old: dict, new: dict) -> list[CheckDelta]:
    """Compare a check's non-threshold parameters (``valid_min``, ``valid_values``, ``columns``,
    ``filter``, ...). Unknown parameters that changed count as tightened."""
    deltas: list[CheckDelta] = []
    seen: set[str] = set()
    for low, high, label in (("valid_min", "valid_max", "valid range"),
                             ("valid_min_length", "valid_max_length", "valid length")):
        seen |= {low, high}
        old_range, new_range = _range(old, low, high), _range(new, low, high)
        if label == "valid length":
            seen.add("valid_length")
            old_range = _exact_length(old, old_range)
            new_range = _exact_length(new, new_range)
        if old_range != new_range:
            deltas.append(_range_delta(label, old_range, new_range))
    for key, valid in (("valid_values", True), ("invalid_values", False),
                       ("missing_values", False)):
        seen.add(key)
        if old.get(key) != new.get(key):
            deltas.append(_values_delta(key, old.get(key), new.get(key), valid))
    for key in (*_OPAQUE_NARROWING, "filter", "scope"):
        seen.add(key)
        if old.get(key) != new.get(key):
            deltas.append(_opaque_delta(key, old.get(key), new.get(key)))
    if old.get("columns") != new.get("columns"):
        seen.add("columns")
        old_cols, new_cols = set(old.get("columns") or []), set(new.get("columns") or [])
        looser = old_cols <= new_cols and bool(old_cols)  # a wider key is a weaker uniqueness
        deltas.append(CheckDelta(LOOSENED if looser else TIGHTENED,
                                 f"columns {sorted(old_cols)} -> {sorted(new_cols)}"))
    for key in sorted((set(old) | set(new)) - seen):
        if old.get(key) == new.get(key):
            continue
        if key.startswith("allow_"):  # schema check: allow_extra_columns, ...
            looser = bool(new.get(key)) and not old.get(key)
            deltas.append(CheckDelta(LOOSENED if looser else TIGHTENED,
                                     f"{key} {old.get(key)} -> {new.get(key)}"))
        else:
            deltas.append(CheckDelta(TIGHTENED, f"{key} {old.get(key)!r} -> {new.get(key)!r}"))
    return deltas


Range = tuple[Any, Any]  # (low or None, high or None), both inclusive


def _range(params: dict, low: str, high: str) -> Range:
    return params.get(low), params.get(high)


def _exact_length(params: dict, bounds: Range) -> Range:
    exact = params.get("valid_length")
    if exact is None:
        return bounds
    return (exact if bounds[0] is None else max(exact, bounds[0]),
            exact if bounds[1] is None else min(exact, bounds[1]))


def _range_delta(label: str, old: Range, new: Range) -> CheckDelta:
    text = f"{label} {_show_range(old)} -> {_show_range(new)}"
    try:
        low_ok = new[0] is None or (old[0] is not None and new[0] <= old[0])
        high_ok = new[1] is None or (old[1] is not None and new[1] >= old[1])
    except TypeError:  # a number against a text bound
        return CheckDelta(TIGHTENED, text)
    return CheckDelta(LOOSENED if low_ok and high_ok else TIGHTENED, text)


def _show_range(bounds: Range) -> str:
    if bounds == (None, None):
        return "(any)"
    low = "-inf" if bounds[0] is None else bounds[0]
    high = "inf" if bounds[1] is None else bounds[1]
    return f"[{low}, {high}]"


def _values_delta(key: str, old: list | None, new: list | None, valid: bool) -> CheckDelta:
    text = f"{key} {old if old is not None else '(none)'} -> {new if new is not None else '(none)'}"
    if valid:  # absent: every value is valid
        looser = new is None or (old is not None and set(old) <= set(new))
    else:  # absent: no value is listed as invalid / missing
        looser = new is None or (old is not None and set(new) <= set(old))
    return CheckDelta(LOOSENED if looser else TIGHTENED, text)


def _opaque_delta(key: str, old: Any, new: Any) -> CheckDelta:
    text = f"{key} {old!r} -> {new!r}" if old is not None and new is not None else \
        (f"{key} {new!r} added" if old is None else f"{key} {old!r} removed")
    if key in ("filter", "scope"):  # a filter checks fewer rows: adding one loosens
        return CheckDelta(LOOSENED if old is None else TIGHTENED, text)
    return CheckDelta(LOOSENED if new is None else TIGHTENED, text)
