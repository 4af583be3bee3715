"""A product's contract as people read it on the plugin's product page: columns with types
and checks, dataset checks, SLO targets and the products that consume it.

Built from the ODCS export (:func:`~dag_factory.contract.odcs.odcs_contract`), so the page
shows what the contract promises, in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import yaml

from dag_factory.contract.ids import contract_id
from dag_factory.spec.models import ProductInput, ProductSpec

_SYMBOLS = {"mustBe": "=", "mustNotBe": "≠", "mustBeGreaterThan": ">",
            "mustBeGreaterOrEqualTo": "≥", "mustBeLessThan": "<", "mustBeLessOrEqualTo": "≤"}


@dataclass
class CheckView:
    """One quality rule: ``text`` in words, ``severity`` (error or warning), ``odcs`` how the
    contract states it (``library nullValues``, ``sql``, ``custom soda``), Soda ``name``."""

    text: str
    severity: str
    odcs: str
    name: str | None = None


@dataclass
class ColumnView:
    """One output column: SQL and ODCS logical type, whether every row has a value
    (``required``), is unique, is the partition key, and its checks."""

    name: str
    data_type: str | None
    logical_type: str | None
    required: bool
    unique: bool
    partition_key: bool
    checks: list[CheckView] = field(default_factory=list)


@dataclass
class SloView:
    """One SLA/SLO entry: ``name`` (ODCS property), ``label`` and ``target`` in words."""

    name: str
    label: str
    target: str


_SLO_LABELS = {"freshness": "Freshness", "frequency": "Update frequency",
               "successRate": "Success rate", "qualityPassRate": "Quality pass rate"}


@dataclass
class ContractView:
    """The contract section of a product page.

    Attributes:
        product, contract_id, version: identity (contract id as in the ODCS export);
        columns, dataset_checks, slos: what the contract promises;
        consumers: products whose ``type: product`` inputs read this one and that the user
            may read; hidden_consumers: how many others read it (names withheld).
    """

    product: str
    contract_id: str
    version: str
    columns: list[ColumnView]
    dataset_checks: list[CheckView]
    slos: list[SloView]
    consumers: list[str]
    hidden_consumers: int


def _operator_text(rule: dict) -> str:
    unit = " %" if rule.get("unit") == "percent" else ""
    for key, symbol in _SYMBOLS.items():
        if key in rule:
            return f"{symbol} {rule[key]}{unit}"
    if "mustBeBetween" in rule:
        low, high = rule["mustBeBetween"]
        return f"between {low} and {high}{unit}"
    return ""


def rule_text(rule: dict) -> str:
    """An ODCS quality rule in words, e.g. ``no nulls``, ``row count > 0``, ``values in
    EWR, JFK, LGA``, ``no duplicates of (flight_date, carrier)``, ``Soda check: schema``."""
    none = rule.get("mustBe") == 0
    metric, args = rule.get("metric"), rule.get("arguments") or {}
    if rule.get("type") == "custom":
        body = yaml.safe_dump(rule["implementation"], default_flow_style=True, width=10_000).strip()
        return f"Soda check {body}"
    if rule.get("type") == "sql" and rule.get("description") and none:
        return rule["description"].rstrip(".")
    if rule.get("type") == "sql":
        query = rule["query"].split(" WHERE ", 1)[-1].replace("{property}", "value")
        return (f"no rows where {query}" if none
                else f"rows where {query}: {_operator_text(rule)}")
    if metric == "nullValues":
        return "no nulls" if none else f"nulls {_operator_text(rule)}"
    if metric == "missingValues":
        values = ", ".join("null" if v is None else repr(v) for v in args["missingValues"])
        return (f"no missing values ({values})" if none
                else f"missing values ({values}) {_operator_text(rule)}")
    if metric == "invalidValues":
        valid = (f"values in {', '.join(map(str, args['validValues']))}" if "validValues" in args
                 else f"values match {args.get('pattern')}")
        return valid if none else f"{valid}, invalid {_operator_text(rule)}"
    if metric == "duplicateValues":
        of = f" of ({', '.join(args['properties'])})" if args.get("properties") else ""
        return f"no duplicates{of}" if none else f"duplicates{of} {_operator_text(rule)}"
    if metric == "rowCount":
        return f"row count {_operator_text(rule)}"
    return str(metric)


def _check(rule: dict) -> CheckView:
    how = rule.get("type", "library")
    odcs = {"library": f"library {rule.get('metric')}", "custom": f"custom {rule.get('engine')}"}
    return CheckView(text=rule_text(rule), severity=rule.get("severity", "error"),
                     odcs=odcs.get(how, how), name=rule.get("name"))


def _slo_text(item: dict) -> str:
    if item["property"] == "frequency":
        if item.get("scheduler") == "airflow-assets":
            return f"on publish of {item['schedule']}"
        unit = f" {item['unit']}" if item.get("unit") else ""
        return f"every {item['value']}{unit} (cron {item['schedule']})"
    if item.get("unit") == "percent":
        return f"≥ {item['value']}% over {item.get('valueExt')}"
    return f"≤ {item['value']} {item.get('unit', '')}".rstrip()


def consumers_of(name: str, specs: Mapping[str, ProductSpec]) -> list[str]:
    """The products whose ``type: product`` inputs read ``name``, sorted."""
    return sorted(n for n, s in specs.items()
                  if any(isinstance(i, ProductInput) and i.product == name for i in s.inputs))


def contract_view(spec: ProductSpec, specs: Mapping[str, ProductSpec], readable: set[str],
                  contract: dict) -> ContractView:
    """The page's view of ``spec``'s contract.

    Args:
        spec: the product; specs: every valid product of the folder by name;
        readable: dag_ids the user may read (consumers outside it are only counted);
        contract: ``odcs_contract(spec, ...)``.
    """
    obj = contract["schema"][0]
    columns = [ColumnView(name=p["name"], data_type=p.get("physicalType"),
                          logical_type=p.get("logicalType"), required=p.get("required", False),
                          unique=p.get("unique", False), partition_key=p.get("partitioned", False),
                          checks=[_check(r) for r in p.get("quality", [])])
               for p in obj["properties"]]
    slos = [SloView(name=i["property"], label=_SLO_LABELS.get(i["property"], i["property"]),
                    target=_slo_text(i))
            for i in contract.get("slaProperties", []) if i["property"] != "latency"]
    consumers = consumers_of(spec.name, specs)
    visible = [c for c in consumers if c in readable]
    return ContractView(product=spec.name, contract_id=contract_id(spec.name, spec.major_version),
                        version=spec.version, columns=columns,
                        dataset_checks=[_check(r) for r in obj.get("quality", [])], slos=slos,
                        consumers=visible, hidden_consumers=len(consumers) - len(visible))
