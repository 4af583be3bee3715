"""docs/product.schema.json: up to date with the models, a valid draft 2020-12 schema, and it
accepts the demo products and rejects unknown keys and misspelt Soda checks like the loader."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from dag_factory.spec.json_schema import product_json_schema
from helpers import PRODUCTS, REPO, demo_yaml
from test_spec_errors import marked_text

SCHEMA_FILE = REPO / "docs" / "product.schema.json"
REGENERATE = "dataproducts schema -o docs/product.schema.json"


@pytest.fixture(scope="module")
def schema() -> dict:
    """The committed schema file."""
    return json.loads(SCHEMA_FILE.read_text())


@pytest.fixture(scope="module")
def validator(schema) -> jsonschema.protocols.Validator:
    """A validator of the committed schema, checking formats (dates, ...) too."""
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def as_json(text: str):
    """YAML text as an editor's JSON view of it: dates become ISO strings."""
    return json.loads(json.dumps(yaml.safe_load(text), default=str))


def test_committed_schema_is_up_to_date(schema):
    fresh = json.loads(json.dumps(product_json_schema()))
    assert schema == fresh, f"docs/product.schema.json is stale; regenerate it with `{REGENERATE}`"


def test_schema_is_a_valid_draft_2020_12_schema(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", sorted(PRODUCTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_demo_products_validate_against_the_schema(validator, path):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(
        as_json(path.read_text()))]
    assert errors == []


def unexpected_keys(errors) -> set[tuple[tuple, str]]:
    """(path of the mapping, message) of every additionalProperties error, anyOf/oneOf
    sub-errors included."""
    found = set()
    for error in errors:
        if error.validator == "additionalProperties":
            found.add((tuple(error.absolute_path), error.message))
        found |= unexpected_keys(error.context)
    return found


@pytest.mark.parametrize("old, new, path, key", [
    ("domain: aviation", "domain: aviation\ncolour: red", (), "colour"),
    ("  team: ops-analytics", "  team: ops-analytics\n  pager: 555", ("owner",), "pager"),
    ("checks: [{missing: }]}\n    - name: carrier_name",
     "checks: [{missin: }]}\n    - name: carrier_name",
     ("output", "columns", 1, "checks", 0), "missin"),
    ("    - row_count: {threshold: {must_be_greater_than: 0}}",
     "    - row_count: {threshold: {must_be_grater_than: 0}}",
     ("output", "checks", 0, "row_count", "threshold"), "must_be_grater_than"),
], ids=["unknown-key", "unknown-owner-key", "misspelt-soda-check", "misspelt-soda-threshold"])
def test_schema_rejects_unknown_keys_and_misspelt_soda_checks(validator, old, new, path, key):
    text, _ = marked_text(demo_yaml("flights_daily"), (old, new))
    errors = list(validator.iter_errors(as_json(text)))
    assert errors, "the schema accepted a file the loader rejects"
    message = f"Additional properties are not allowed ('{key}' was unexpected)"
    assert (path, message) in unexpected_keys(errors)
