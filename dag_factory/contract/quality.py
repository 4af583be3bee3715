"""Soda Core v4 checks of a spec's ``output`` -> ODCS v3.1 ``quality`` rules.

Where ODCS has an equivalent the check becomes an ODCS rule that any ODCS tool can run:

| Soda check (v4 contract syntax)                     | ODCS v3.1 rule                                   |
|-----------------------------------------------------|--------------------------------------------------|
| column ``missing`` (no ``missing_values``)          | library ``nullValues``                           |
| column ``missing`` with ``missing_values``          | library ``missingValues``, ``arguments.missingValues`` (null + the values) |
| column ``invalid`` with ``valid_values``            | library ``invalidValues``, ``arguments.validValues`` |
| column ``invalid`` with ``valid_format.regex``      | library ``invalidValues``, ``arguments.pattern`` |
| column ``invalid`` with ``valid_min``/``valid_max`` | ``sql``: count of rows outside the range          |
| column ``duplicate``                                | library ``duplicateValues``                      |
| dataset ``row_count``                               | library ``rowCount``                             |
| dataset ``duplicate`` with ``columns``              | library ``duplicateValues``, ``arguments.properties`` |

The threshold becomes the ODCS operator (``must_be`` -> ``mustBe``, ``must_be_greater_than``
-> ``mustBeGreaterThan``, ``must_be_greater_than_or_equal`` -> ``mustBeGreaterOrEqualTo``,
... , an inclusive ``must_be_between`` -> ``mustBeBetween``), Soda's default when it has none
(``must_be: 0``; ``row_count``: ``must_be_greater_than: 0``, see soda-core's check types);
``metric: percent`` -> ``unit: percent``, else ``unit: rows``; ``level: warn`` ->
``severity: warning``, else ``error``. Everything else (other check kinds: ``schema``,
``freshness``, ``aggregate``, ``metric``, ``failed_rows``; a ``filter`` or ``scope``; other
``invalid`` options; thresholds ODCS cannot state in one operator, such as exclusive
``between`` bounds or an ``additional`` threshold) becomes ``type: custom``, ``engine: soda``
with the check itself as ``implementation``, so nothing is lost.

Sources: ODCS v3.1.0 "Data Quality" (library metrics and their arguments, operators), the
official JSON Schema ``odcs-json-schema-v3.1.0.json`` (``DataQuality*`` definitions), Soda Core
v4's contract JSON Schema and check types (keys, defaults).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_OPERATORS = {
    "must_be": "mustBe", "must_not_be": "mustNotBe",
    "must_be_greater_than": "mustBeGreaterThan",
    "must_be_greater_than_or_equal": "mustBeGreaterOrEqualTo",
    "must_be_less_than": "mustBeLessThan",
    "must_be_less_than_or_equal": "mustBeLessOrEqualTo",
}
_COMPARISONS = set(_OPERATORS) | {"must_be_between", "must_be_not_between"}
_DEFAULT_THRESHOLD = {"row_count": {"must_be_greater_than": 0}}
_DIMENSIONS = {"missing": "completeness", "row_count": "completeness", "invalid": "conformity",
               "schema": "conformity", "duplicate": "uniqueness", "freshness": "timeliness"}
#: keys any mapped check may have besides its own: Soda Cloud names and attributes
_COMMON = {"name", "qualifier", "threshold", "attributes"}


@dataclass
class ColumnFacts:
    """What the column's fail-level checks guarantee for every row, for the ODCS property:
    ``required`` (no nulls), ``unique``, and the inclusive ``minimum``/``maximum``."""

    required: bool = False
    unique: bool = False
    minimum: float | int | None = None
    maximum: float | int | None = None


@dataclass
class ColumnQuality:
    """The ODCS rules of one column's checks and the facts they guarantee."""

    rules: list[dict] = field(default_factory=list)
    facts: ColumnFacts = field(default_factory=ColumnFacts)


def check_kind(check: Any) -> tuple[str, dict]:
    """``{"missing": {...}}`` -> ``("missing", {...})``; a body of None becomes ``{}``.

    Raises:
        ValueError: ``check`` is not a mapping with exactly one key (Soda's check syntax).
    """
    if not isinstance(check, dict) or len(check) != 1:
        raise ValueError(f"expected a Soda check such as {{missing: }} (one key), got {check!r}")
    kind, body = next(iter(check.items()))
    if body is not None and not isinstance(body, dict):
        raise ValueError(f"expected the body of Soda check {kind!r} to be a mapping, got {body!r}")
    return str(kind), dict(body or {})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def odcs_operator(kind: str, threshold: dict | None) -> dict | None:
    """The ODCS operator (``{"mustBe": 0}``) of a Soda threshold, Soda's default for ``kind``
    when the threshold has no comparison; None when one ODCS operator cannot state it."""
    threshold = threshold or {}
    if "additional" in threshold:
        return None
    comparisons = {k: v for k, v in threshold.items() if k in _COMPARISONS}
    if not comparisons:
        comparisons = _DEFAULT_THRESHOLD.get(kind, {"must_be": 0})
    if len(comparisons) != 1:
        return None
    key, value = next(iter(comparisons.items()))
    if key in _OPERATORS:
        return {_OPERATORS[key]: value} if _number(value) else None
    if key == "must_be_between" and isinstance(value, dict):
        return _between(value)
    return None


def _between(bounds: dict) -> dict | None:
    """Soda's ``must_be_between`` bounds as one ODCS operator (ODCS ``mustBeBetween`` is
    inclusive at both ends and needs two different numbers)."""
    if not all(_number(v) for v in bounds.values()):
        return None
    low = {k: v for k, v in bounds.items() if k.startswith("greater_than")}
    high = {k: v for k, v in bounds.items() if k.startswith("less_than")}
    if low and high:
        if "greater_than_or_equal" in low and "less_than_or_equal" in high \
                and low["greater_than_or_equal"] < high["less_than_or_equal"]:
            return {"mustBeBetween": [low["greater_than_or_equal"], high["less_than_or_equal"]]}
        return None
    (key, value), = (low or high).items()
    return {_OPERATORS[f"must_be_{key}"]: value}


def _stable_id(*parts: str) -> str:
    """An ODCS StableId (``^[A-Za-z0-9_-]+$``) from the parts, other characters as ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", "-".join(p for p in parts if p)) or "check"


def _base(kind: str, body: dict, rule_id: str) -> dict:
    threshold = body.get("threshold") or {}
    rule: dict[str, Any] = {"id": rule_id}
    if body.get("name"):
        rule["name"] = str(body["name"])
    if kind in _DIMENSIONS:
        rule["dimension"] = _DIMENSIONS[kind]
    rule["severity"] = "warning" if str(threshold.get("level", "")).lower() == "warn" else "error"
    if body.get("attributes"):
        rule["customProperties"] = [{"property": str(k), "value": v}
                                    for k, v in body["attributes"].items()]
    return rule


def custom_rule(kind: str, body: dict, rule_id: str) -> dict:
    """The check as an ODCS ``type: custom`` rule run by Soda: ``implementation`` is the check
    exactly as written in the spec (``{kind: body}``)."""
    rule = _base(kind, body, rule_id)
    rule.update({"type": "custom", "engine": "soda", "implementation": {kind: body or None}})
    return rule


def _library(kind: str, body: dict, rule_id: str, metric: str, operator: dict,
             arguments: dict | None = None) -> dict:
    rule = _base(kind, body, rule_id)
    rule.update({"type": "library", "metric": metric})
    if arguments:
        rule["arguments"] = arguments
    rule.update(operator)
    rule["unit"] = "percent" if (body.get("threshold") or {}).get("metric") == "percent" else "rows"
    return rule


def _range_text(valid_min, valid_max) -> str:
    if valid_min is not None and valid_max is not None:
        return f"Every value is between {valid_min!r} and {valid_max!r} (inclusive)."
    if valid_min is not None:
        return f"Every value is at least {valid_min!r}."
    return f"Every value is at most {valid_max!r}."


def _range_sql(valid_min, valid_max) -> str:
    outside = []
    if valid_min is not None:
        outside.append(f"{{property}} < {valid_min!r}")
    if valid_max is not None:
        outside.append(f"{{property}} > {valid_max!r}")
    return "SELECT COUNT(*) FROM {object} WHERE " + " OR ".join(outside)


def _guarantees(rule: dict) -> bool:
    """A fail-level rule that no row may break (``mustBe: 0`` rows or percent)."""
    return rule.get("severity") == "error" and rule.get("mustBe") == 0


def column_rule(column: str, check: Any) -> tuple[dict, dict]:
    """One column check as an ODCS rule and the facts it guarantees (keys of
    :class:`ColumnFacts`, possibly none).

    Args:
        column: the column name; check: one Soda check, e.g. ``{"invalid": {"valid_min": 0}}``.

    Returns:
        ``(rule, facts)``.

    Raises:
        ValueError: ``check`` is not a Soda check (see :func:`check_kind`).
    """
    kind, body = check_kind(check)
    rule_id = _stable_id(column, kind, str(body.get("qualifier") or ""))
    keys = set(body) - _COMMON
    operator = odcs_operator(kind, body.get("threshold"))
    if operator is None:
        return custom_rule(kind, body, rule_id), {}
    if kind == "missing" and keys <= {"missing_values"}:
        values = body.get("missing_values")
        if values:
            rule = _library(kind, body, rule_id, "missingValues", operator,
                            {"missingValues": [None, *values]})
        else:
            rule = _library(kind, body, rule_id, "nullValues", operator)
        return rule, ({"required": True} if _guarantees(rule) else {})
    if kind == "duplicate" and not keys:
        rule = _library(kind, body, rule_id, "duplicateValues", operator)
        return rule, ({"unique": True} if _guarantees(rule) else {})
    if kind == "invalid" and keys == {"valid_values"} and isinstance(body["valid_values"], list):
        return _library(kind, body, rule_id, "invalidValues", operator,
                        {"validValues": body["valid_values"]}), {}
    if kind == "invalid" and keys == {"valid_format"} \
            and isinstance(body["valid_format"], dict) and body["valid_format"].get("regex"):
        return _library(kind, body, rule_id, "invalidValues", operator,
                        {"pattern": body["valid_format"]["regex"]}), {}
    if kind == "invalid" and keys and keys <= {"valid_min", "valid_max"} \
            and all(_number(body[k]) for k in keys):
        rule = _base(kind, body, rule_id)
        rule.update({"description": _range_text(body.get("valid_min"), body.get("valid_max")),
                     "type": "sql", "query": _range_sql(body.get("valid_min"),
                                                        body.get("valid_max"))})
        rule.update(operator)
        facts = {}
        if _guarantees(rule):
            for fact, key in (("minimum", "valid_min"), ("maximum", "valid_max")):
                if key in body:
                    facts[fact] = body[key]
        return rule, facts
    return custom_rule(kind, body, rule_id), {}


def column_quality(column: str, checks: list | None) -> ColumnQuality:
    """The ODCS rules of a column's Soda ``checks`` and what they guarantee together
    (the tightest minimum and maximum of its fail-level range checks)."""
    result = ColumnQuality()
    for check in checks or []:
        rule, facts = column_rule(column, check)
        result.rules.append(rule)
        f = result.facts
        f.required = f.required or facts.get("required", False)
        f.unique = f.unique or facts.get("unique", False)
        if "minimum" in facts:
            f.minimum = facts["minimum"] if f.minimum is None else max(f.minimum, facts["minimum"])
        if "maximum" in facts:
            f.maximum = facts["maximum"] if f.maximum is None else min(f.maximum, facts["maximum"])
    _unique_ids(result.rules)
    return result


def dataset_rule(check: Any) -> dict:
    """One dataset-level Soda check (``output.checks``) as an ODCS schema-level rule.

    Raises:
        ValueError: ``check`` is not a Soda check (see :func:`check_kind`).
    """
    kind, body = check_kind(check)
    rule_id = _stable_id(kind, str(body.get("qualifier") or ""))
    keys = set(body) - _COMMON
    operator = odcs_operator(kind, body.get("threshold"))
    if operator is None:
        return custom_rule(kind, body, rule_id)
    if kind == "row_count" and not keys:
        return _library(kind, body, rule_id, "rowCount", operator)
    columns = body.get("columns")
    if kind == "duplicate" and keys == {"columns"} and isinstance(columns, list) and columns:
        return _library(kind, body, rule_id, "duplicateValues", operator,
                        {"properties": [str(c) for c in columns]})
    return custom_rule(kind, body, rule_id)


def dataset_quality(checks: list | None) -> list[dict]:
    """The ODCS rules of the spec's dataset-level ``output.checks`` (in order)."""
    rules = [dataset_rule(check) for check in checks or []]
    _unique_ids(rules)
    return rules


def _unique_ids(rules: list[dict]) -> None:
    """ODCS wants ids unique within their array: a repeat gets ``-2``, ``-3``, ..."""
    seen: dict[str, int] = {}
    for rule in rules:
        base = rule["id"]
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            rule["id"] = f"{base}-{seen[base]}"
