"""The breaking-change rules of an output contract (dag_factory/contract), one edit per row:
each edit of a product spec and the verdict and message it must get."""

from __future__ import annotations

import copy

import pytest

from dag_factory.contract.checks import passing_values
from dag_factory.contract.compat import (
    BREAKING, COMPATIBLE, Consumer, compare_contracts, contract_of_manifest, contract_of_spec,
    judge,
)
from dag_factory.contract.types import canonical_type, widens
from dag_factory.spec.models import ProductSpec

BASE = {
    "name": "orders_daily", "version": "1.0.0", "title": "Orders per day and customer",
    "description": "One row per day and customer.",
    "owner": {"team": "sales-data", "email": "sales@example.com"},
    "start_date": "2013-01-01",
    "inputs": [{"name": "orders", "type": "file", "path": "landing/orders/{{ ds }}.csv"}],
    "transform": {"sql": "select * from orders"},
    "output": {
        "partition_by": "day",
        "columns": [
            {"name": "day", "data_type": "date", "checks": [{"missing": None}]},
            {"name": "customer", "data_type": "varchar", "checks": [
                {"missing": {"threshold": {"metric": "percent", "must_be_less_than": 5}}}]},
            {"name": "amount", "data_type": "integer",
             "checks": [{"invalid": {"valid_min": 0, "valid_max": 1000}}]},
            {"name": "status", "data_type": "varchar",
             "checks": [{"invalid": {"valid_values": ["open", "closed"]}}]},
            {"name": "note", "data_type": "varchar"},
            {"name": "on_time_pct", "data_type": "double", "checks": [
                {"invalid": {"valid_min": 0, "valid_max": 100}},
                {"invalid": {"qualifier": "floor", "valid_min": 50,
                             "threshold": {"level": "warn"}}}]},
        ],
        "checks": [{"row_count": {"threshold": {"must_be_greater_than": 0}}},
                   {"duplicate": {"columns": ["day", "customer"]}}],
    },
}


def column(spec: dict, name: str) -> dict:
    return next(c for c in spec["output"]["columns"] if c["name"] == name)


def check(spec: dict, column_name: str | None, kind: str, index: int = 0) -> dict:
    checks = spec["output"]["checks"] if column_name is None else column(spec, column_name)["checks"]
    found = [c for c in checks if kind in c][index]
    if found[kind] is None:
        found[kind] = {}
    return found[kind]


def drop_column(spec, name):
    spec["output"]["columns"] = [c for c in spec["output"]["columns"] if c["name"] != name]


def set_(path_fn, key, value):
    def edit(spec):
        path_fn(spec)[key] = value
    return edit


def add_check(column_name, item):
    def edit(spec):
        col = column(spec, column_name)
        col["checks"] = [*(col.get("checks") or []), item]
    return edit


def remove_key(path_fn, key):
    def edit(spec):
        path_fn(spec).pop(key)
    return edit


CASES = [
    # (id, edit, verdict, message of the change)
    ("column removed", lambda s: drop_column(s, "note"),
     BREAKING, "column note: removed (was VARCHAR)"),
    ("column renamed", set_(lambda s: column(s, "note"), "name", "remark"),
     BREAKING, "column note: renamed to remark (VARCHAR)"),
    ("type narrowed", set_(lambda s: column(s, "amount"), "data_type", "smallint"),
     BREAKING, "column amount: type INTEGER -> SMALLINT (narrowed)"),
    ("type to varchar", set_(lambda s: column(s, "amount"), "data_type", "varchar"),
     BREAKING, "column amount: type INTEGER -> VARCHAR (not a widening)"),
    ("type no longer declared", remove_key(lambda s: column(s, "amount"), "data_type"),
     BREAKING, "column amount: type INTEGER -> not declared (the column may publish any type)"),
    ("partition column type", set_(lambda s: column(s, "day"), "data_type", "timestamp"),
     BREAKING, "column day: type DATE -> TIMESTAMP (partition column: its values name the "
               "partition directories)"),
    ("column made required", add_check("note", {"missing": None}),
     BREAKING, "column note: made required: new fail-level missing check"),
    ("missing tightened",
     set_(lambda s: check(s, "customer", "missing"), "threshold",
          {"metric": "percent", "must_be_less_than": 1}),
     BREAKING, "missing check on column customer: tightened: threshold < 5 [percent] -> "
               "< 1 [percent]"),
    ("partition key changed", set_(lambda s: s["output"], "partition_by", "customer"),
     BREAKING, "partition key: day -> customer"),
    ("row_count bound tightened",
     set_(lambda s: check(s, None, "row_count"), "threshold",
          {"must_be_between": {"greater_than_or_equal": 10, "less_than": 1000}}),
     BREAKING, "row_count check on the dataset: tightened: threshold > 0 -> "
               "(>= 10 and < 1000)"),
    ("valid range narrowed", set_(lambda s: check(s, "amount", "invalid"), "valid_max", 500),
     BREAKING, "invalid check on column amount: tightened: valid range [0, 1000] -> [0, 500]"),
    ("valid values narrowed",
     set_(lambda s: check(s, "status", "invalid"), "valid_values", ["open"]),
     BREAKING, "invalid check on column status: tightened: valid_values ['open', 'closed'] "
               "-> ['open']"),
    ("duplicate key narrowed", set_(lambda s: check(s, None, "duplicate"), "columns", ["day"]),
     BREAKING, "duplicate check on the dataset: tightened: columns ['customer', 'day'] -> "
               "['day']"),
    ("metric count -> percent",
     set_(lambda s: check(s, "amount", "invalid"), "threshold",
          {"metric": "percent", "must_be_less_than": 1}),
     BREAKING, "invalid check on column amount: tightened: threshold = 0 -> < 1 [percent] "
               "(a different metric or unit cannot be compared)"),
    ("new fail-level check", lambda s: s["output"]["checks"].append({"schema": None}),
     BREAKING, "schema check on the dataset: new fail-level check"),
    ("warn -> fail", remove_key(lambda s: check(s, "on_time_pct", "invalid", 1), "threshold"),
     BREAKING, "invalid check (floor) on column on_time_pct: tightened: level warn -> fail"),
    ("column added as required",
     lambda s: s["output"]["columns"].append(
         {"name": "region", "data_type": "varchar", "checks": [{"missing": None}]}),
     BREAKING, "column region: added as required (fail-level missing check): published "
               "partitions lack it"),
    ("column added as optional",
     lambda s: s["output"]["columns"].append(
         {"name": "discount", "data_type": "decimal(10, 2)",
          "checks": [{"invalid": {"valid_min": 0}}]}),
     COMPATIBLE, "column discount: added as optional (DECIMAL(10,2))"),
    ("type widened", set_(lambda s: column(s, "amount"), "data_type", "bigint"),
     COMPATIBLE, "column amount: type INTEGER -> BIGINT (widened)"),
    ("type alias", set_(lambda s: column(s, "amount"), "data_type", "int4"), None, None),
    ("valid range widened", set_(lambda s: check(s, "amount", "invalid"), "valid_max", 2000),
     COMPATIBLE, "invalid check on column amount: loosened: valid range [0, 1000] -> [0, 2000]"),
    ("missing loosened",
     set_(lambda s: check(s, "customer", "missing"), "threshold",
          {"metric": "percent", "must_be_less_than_or_equal": 5}),
     COMPATIBLE, "missing check on column customer: loosened: threshold < 5 [percent] -> "
                 "<= 5 [percent]"),
    ("row_count loosened",
     set_(lambda s: check(s, None, "row_count"), "threshold", {"must_be_greater_than_or_equal": 0}),
     COMPATIBLE, "row_count check on the dataset: loosened: threshold > 0 -> >= 0"),
    ("check removed", lambda s: s["output"].__setitem__("checks", s["output"]["checks"][1:]),
     COMPATIBLE, "row_count check on the dataset: removed"),
    ("fail -> warn",
     set_(lambda s: check(s, "amount", "invalid"), "threshold", {"level": "warn"}),
     COMPATIBLE, "invalid check on column amount: level fail -> warn"),
    ("warn-level check tightened",
     set_(lambda s: check(s, "on_time_pct", "invalid", 1), "valid_min", 70),
     COMPATIBLE, "invalid check (floor) on column on_time_pct: warn-level check changed"),
    ("new warn-level check",
     add_check("note", {"missing": {"threshold": {"level": "warn"}}}),
     COMPATIBLE, "missing check on column note: new warn-level check"),
    ("filter added",
     set_(lambda s: check(s, "amount", "invalid"), "filter", "status = 'open'"),
     COMPATIBLE, "invalid check on column amount: loosened: filter \"status = 'open'\" added"),
    ("duplicate key widened",
     set_(lambda s: check(s, None, "duplicate"), "columns", ["day", "customer", "status"]),
     COMPATIBLE, "duplicate check on the dataset: loosened: columns ['customer', 'day'] -> "
                 "['customer', 'day', 'status']"),
    ("title", set_(lambda s: s, "title", "Orders"), COMPATIBLE, "title: changed (documentation)"),
    ("description", set_(lambda s: s, "description", "Orders."),
     COMPATIBLE, "description: changed (documentation)"),
    ("owner", set_(lambda s: s["owner"], "team", "finance-data"),
     COMPATIBLE, "owner: changed (documentation)"),
    ("column description", set_(lambda s: column(s, "note"), "description", "Free text"),
     COMPATIBLE, "column note: description changed (documentation)"),
]


def spec_of(data: dict) -> ProductSpec:
    return ProductSpec.model_validate(data)


@pytest.mark.parametrize("edit,verdict,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_contract_edit_verdict(edit, verdict, message):
    new = copy.deepcopy(BASE)
    edit(new)
    old_contract, new_contract = contract_of_spec(spec_of(BASE)), contract_of_spec(spec_of(new))

    changes = compare_contracts(old_contract, new_contract)

    if verdict is None:
        assert changes == []
        return
    assert [(c.verdict, str(c)) for c in changes] == [(verdict, message)]
    consumers = [Consumer("billing_daily", "orders", None)]
    report = judge(old_contract, new_contract, consumers, "test")
    if verdict == BREAKING:
        assert report.errors == [
            f"orders_daily: breaking change without a major version bump (1.0.0 -> 1.0.0): "
            f"{message}; read by billing_daily (input orders, follows the current major). "
            "Bump version to 2.0.0 to publish it as v2, or make the change compatible"]
    else:
        assert report.ok
        assert report.notes == ["the contract changed compatibly but version is still 1.0.0: "
                                "semver asks for a minor bump"]


def test_major_bump_allows_breaking_changes_and_names_the_new_storage_path():
    new = copy.deepcopy(BASE)
    drop_column(new, "note")
    new["version"] = "2.0.0"
    consumers = [Consumer("billing_daily", "orders", 2), Consumer("audit_daily", "o", 1)]

    report = judge(contract_of_spec(spec_of(BASE)), contract_of_spec(spec_of(new)), consumers,
                   "test")

    assert report.ok and [str(c) for c in report.breaking] == ["column note: removed (was VARCHAR)"]
    assert report.notes[0].startswith(
        "major 1 -> 2: the product publishes to products/orders_daily/v2/ (asset "
        "dataproduct://orders_daily/v2); products/orders_daily/v1/ keeps its partitions and "
        "stays readable until retired (dataproducts retire orders_daily --major 1)")
    assert report.notes[1].startswith("audit_daily pins major 1: it keeps reading v1")


def test_unpinned_consumer_fails_a_breaking_major_bump_and_is_warned_of_a_compatible_one():
    breaking = copy.deepcopy(BASE)
    drop_column(breaking, "note")
    breaking["version"] = "2.0.0"
    compatible = copy.deepcopy(BASE)
    compatible["version"] = "2.0.0"
    consumers = [Consumer("billing_daily", "orders", None)]
    old = contract_of_spec(spec_of(BASE))

    report = judge(old, contract_of_spec(spec_of(breaking)), consumers, "test")
    assert not report.ok
    assert report.errors[0].startswith(
        "orders_daily: breaking major bump 1.0.0 -> 2.0.0 would reach an unpinned consumer: "
        "billing_daily does not pin a major for input orders")

    report = judge(old, contract_of_spec(spec_of(compatible)), consumers, "test")
    assert report.ok
    assert any(n.startswith("WARNING: billing_daily does not pin a major") for n in report.notes)


def test_minor_bump_does_not_excuse_a_breaking_change_and_lower_major_fails():
    new = copy.deepcopy(BASE)
    drop_column(new, "note")
    new["version"] = "1.1.0"
    old = contract_of_spec(spec_of(BASE))
    report = judge(old, contract_of_spec(spec_of(new)), [], "test")
    assert report.errors == [
        "orders_daily: breaking change without a major version bump (1.0.0 -> 1.1.0): column "
        "note: removed (was VARCHAR); read by no consumer in the folder. Bump version to 2.0.0 "
        "to publish it as v2, or make the change compatible"]
    lower = copy.deepcopy(BASE)
    lower["version"] = "0.9.0"
    assert judge(old, contract_of_spec(spec_of(lower)), [], "test").errors == [
        "orders_daily: version 1.0.0 -> 0.9.0 lowers the major"]


def test_removed_product_is_breaking_only_while_read():
    old = contract_of_spec(spec_of(BASE))
    read = judge(old, None, [Consumer("billing_daily", "orders", 1)], "test")
    assert read.errors == ["orders_daily: removed, but read by billing_daily (input orders, "
                           "pins major 1)"]
    unread = judge(old, None, [], "test")
    assert unread.ok and "dataproducts retire orders_daily --major 1" in unread.notes[0]
    assert judge(None, old, [], "git ref main").notes == ["new product (not in git ref main)"]


def test_manifest_without_contract_compares_published_types_only():
    manifest = {"product": "orders_daily", "version": "1.0.0",
                "partition": {"key": "day", "value": "2013-01-01"},
                "schema": [{"name": c["name"], "type": t} for c, t in zip(
                    BASE["output"]["columns"],
                    ["DATE", "VARCHAR", "INTEGER", "VARCHAR", "VARCHAR", "DOUBLE"])]}
    old = contract_of_manifest(manifest)
    new = copy.deepcopy(BASE)
    column(new, "amount")["data_type"] = "tinyint"
    add_check("note", {"missing": None})(new)  # not comparable: the old checks are unknown

    report = judge(old, contract_of_spec(spec_of(new)), [], "published")

    assert [str(c) for c in report.changes] == ["column amount: type INTEGER -> TINYINT (narrowed)"]
    assert "predates contract recording" in report.notes[0]


WIDENING = [
    ("TINYINT", "SMALLINT", True), ("INTEGER", "BIGINT", True), ("BIGINT", "INTEGER", False),
    ("UINTEGER", "BIGINT", True), ("UINTEGER", "INTEGER", False), ("INTEGER", "UBIGINT", False),
    ("INTEGER", "DOUBLE", True), ("BIGINT", "DOUBLE", False), ("SMALLINT", "FLOAT", True),
    ("INTEGER", "FLOAT", False), ("INTEGER", "DECIMAL(10,0)", True),
    ("INTEGER", "DECIMAL(10,2)", False), ("DECIMAL(10,2)", "DECIMAL(12,3)", True),
    ("DECIMAL(10,2)", "DECIMAL(10,3)", False), ("DECIMAL(10,2)", "DOUBLE", True),
    ("DECIMAL(18,3)", "DOUBLE", False), ("FLOAT", "DOUBLE", True), ("DOUBLE", "FLOAT", False),
    ("DATE", "TIMESTAMP", True), ("TIMESTAMP", "DATE", False),
    ("TIMESTAMP_MS", "TIMESTAMP", True), ("TIMESTAMP", "TIMESTAMP_S", False),
    ("BIGINT", "VARCHAR", False), ("DATE", "VARCHAR", False), ("VARCHAR", "BLOB", False),
    ("BOOLEAN", "INTEGER", False),
]


@pytest.mark.parametrize("old,new,expected", WIDENING)
def test_widening_lattice(old, new, expected):
    assert widens(old, new) is expected


def test_type_names_are_compared_in_duckdb_spelling():
    assert [canonical_type(t) for t in ("int", "int8", "string", "numeric(5, 1)", "float8",
                                        "varchar(10)", "STRUCT(a INTEGER)", "no_such_type")] \
        == ["INTEGER", "BIGINT", "VARCHAR", "DECIMAL(5,1)", "DOUBLE", "VARCHAR",
            "STRUCT(A INTEGER)", "NO_SUCH_TYPE"]


def test_threshold_sets():
    inf = float("inf")
    assert passing_values({"must_be_not_between": {"greater_than": 0, "less_than_or_equal": 5}}) \
        == [(-inf, False, 0.0, True), (5.0, False, inf, False)]
    assert passing_values({"must_be_greater_than": 1, "must_be_less_than": 3}) \
        == [(1.0, False, 3.0, False)]
    with pytest.raises(ValueError):
        passing_values({"must_be": "${var.limit}"})
