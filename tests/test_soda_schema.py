"""The Soda contract check answers like ``jsonschema`` alone: the compiled validator that
decides valid plain-JSON contracts (dag_factory.spec.soda_schema) agrees with it."""

from __future__ import annotations

import copy
import datetime as dt
import json

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dag_factory.spec.soda_schema import (
    _fast_validator, _is_plain_json, soda_contract_errors, soda_contract_schema,
)
from helpers import PRODUCTS, demo_yaml

DEMO_NAMES = sorted(p.stem for p in PRODUCTS.glob("*.yaml"))


def reference_validator() -> jsonschema.protocols.Validator:
    """``jsonschema`` alone on Soda's schema: the verdict the check must give."""
    schema = soda_contract_schema()
    return jsonschema.validators.validator_for(schema)(schema)


REFERENCE = reference_validator()


def schema_words(node, found: set[str]) -> set[str]:
    """Every property name and enum string of Soda's schema: keys a mutation can add."""
    if isinstance(node, dict):
        found.update(k for k in node.get("properties", {}))
        found.update(v for v in node.get("enum", []) if isinstance(v, str))
        for value in node.values():
            schema_words(value, found)
    elif isinstance(node, list):
        for value in node:
            schema_words(value, found)
    return found


WORDS = sorted(schema_words(soda_contract_schema(), set()))
json_scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6)
                | st.floats(allow_nan=False) | st.sampled_from(WORDS) | st.text(max_size=8))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
# values JSON has no type for, as a YAML file can hold them
odd_values = (st.dates() | st.tuples(st.text(max_size=3), st.integers())
              | st.just(float("nan")) | st.just(float("inf")))


def demo_contract(name: str) -> dict:
    """The contract soda_contract_errors validates for a demo product."""
    output = yaml.safe_load(demo_yaml(name))["output"]
    contract = {"dataset": "ds/schema/table", "columns": output["columns"]}
    if output.get("checks") is not None:
        contract["checks"] = output["checks"]
    return contract


def paths(data, path: tuple = ()) -> list[tuple]:
    """Every path below ``data`` (dict keys and list indexes), the root included."""
    found = [path]
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        found += paths(value, (*path, key))
    return found


def at(data, path: tuple):
    for key in path:
        data = data[key]
    return data


@st.composite
def mangled_contracts(draw, values=json_values) -> dict:
    """A demo product's contract after 1-3 edits inside ``columns`` / ``checks`` (what a
    product file holds): replace a value, add a key (mostly one of Soda's own), delete a key or
    item."""
    contract = copy.deepcopy(demo_contract(draw(st.sampled_from(DEMO_NAMES))))
    for _ in range(draw(st.integers(1, 3))):
        inside = [p for p in paths(contract) if len(p) >= 2 and p[0] != "dataset"]
        if not inside:
            break
        path = draw(st.sampled_from(inside))
        parent, key = at(contract, path[:-1]), path[-1]
        edit = draw(st.sampled_from(["replace", "add", "delete"]))
        if edit == "replace":
            parent[key] = draw(values)
        elif edit == "add" and isinstance(at(contract, path), dict):
            at(contract, path)[draw(st.sampled_from(WORDS))] = draw(values)
        elif edit == "delete":
            del parent[key]
    return contract


def check(contract: dict) -> list:
    return soda_contract_errors(contract["columns"], contract.get("checks"))


@pytest.mark.parametrize("name", DEMO_NAMES)
def test_demo_contracts_are_valid_for_both(name):
    contract = demo_contract(name)
    assert _is_plain_json(contract)
    assert _fast_validator().is_valid(contract) and REFERENCE.is_valid(contract)
    assert check(contract) == []


@settings(max_examples=400, deadline=None)
@given(contract=mangled_contracts())
def test_both_validators_agree_on_plain_json(contract):
    assert _is_plain_json(contract)
    reference = REFERENCE.is_valid(contract)
    assert _fast_validator().is_valid(contract) == reference, json.dumps(contract)[:2000]
    assert (check(contract) == []) == reference


@settings(max_examples=200, deadline=None)
@given(contract=mangled_contracts(values=json_values | odd_values))
def test_the_check_gives_jsonschemas_verdict_on_any_data(contract):
    assert (check(contract) == []) == REFERENCE.is_valid(contract)


@pytest.mark.parametrize("value, plain", [
    ({"a": [1, 2.5, "x", None, True]}, True),
    ({"a": dt.date(2013, 1, 1)}, False),
    ({"a": ("x", 1)}, False),
    ({1: "x"}, False),
    ({"a": {"b": b"x"}}, False),
])
def test_plain_json_is_exactly_the_json_types(value, plain):
    assert _is_plain_json(value) is plain


def test_a_pairs_list_is_still_rejected():
    """``!!pairs`` makes tuples, which jsonschema-rs would read as arrays; the check must keep
    jsonschema's verdict (not an array, so not a list of checks)."""
    columns = yaml.safe_load("- name: a\n  checks: !!pairs [missing: ]\n")
    assert REFERENCE.is_valid({"dataset": "d", "columns": columns}) is False
    errors = check({"columns": columns})
    assert errors and errors[0][0][:2] == ("columns", 0)
