"""A products folder: cross-file checks of load_products(), placeholder DAGs of build_dags() for
invalid files, and the ``dataproducts validate`` / ``list`` commands."""

from __future__ import annotations

import json

import pytest

from dag_factory.build.folder import build_dags
from dag_factory.build.invalid import INVALID_TAG
from dag_factory.cli.main import main
from dag_factory.spec.loading import load_products
from helpers import PRODUCTS, demo_yaml, products_folder
from test_spec_errors import located, marked_text

DEMO_NAMES = sorted(p.stem for p in PRODUCTS.glob("*.yaml"))
BAD_EMAIL = ("  email: weather-data@example.com", "  ‸email: weather-data")
EMAIL_MESSAGE = "owner.email: expected an email address"


def renamed_flights(name: str, *edits: tuple[str, str]) -> tuple[str, list[tuple[int, int]]]:
    """flights_daily.yaml renamed to ``name``, with ``edits`` and their carets (see marked_text)."""
    return marked_text(demo_yaml("flights_daily"), ("name: flights_daily", f"name: {name}"), *edits)


def reading(product: str, caret: str = "") -> tuple[str, str]:
    """An edit that adds a ``type: product`` input reading ``product`` (``caret`` marks its key)."""
    anchor = "transform:\n"
    return anchor, f"  - {{name: upstream, type: product, {caret}product: {product}}}\n{anchor}"


def invalid_weather() -> tuple[str, tuple[int, int]]:
    """weather_daily.yaml with an invalid owner email, and where that error is."""
    text, [caret] = marked_text(demo_yaml("weather_daily"), BAD_EMAIL)
    return text, caret


def test_duplicate_name_the_first_file_keeps_it(tmp_path):
    text = demo_yaml("flights_daily")
    folder = products_folder(tmp_path, [], {"a_flights.yaml": text, "b_flights.yaml": text})
    result = load_products(folder)
    assert list(result.products) == ["flights_daily"]
    assert result.products["flights_daily"].path == folder / "a_flights.yaml"
    assert list(result.errors) == [folder / "b_flights.yaml"]
    (issue,) = result.errors[folder / "b_flights.yaml"].issues
    assert located(issue) == (2, 1, "name")
    assert issue.message == (f"product name 'flights_daily' is already used by "
                             f"{folder / 'a_flights.yaml'}")


def test_input_and_list_schedule_naming_no_product(tmp_path):
    text, carets = marked_text(
        demo_yaml("delays_weather_daily"),
        ("schedule: [flights_daily, weather_daily]", "schedule: [flights_daily, ‸weather_daily]"),
        ("{name: weather, type: product, product: weather_daily}",
         "{name: weather, type: product, ‸product: weather_daily}"),
    )
    folder = products_folder(tmp_path, ["flights_daily"], {"delays_weather_daily.yaml": text})
    result = load_products(folder)
    assert list(result.products) == ["flights_daily"]
    issues = result.errors[folder / "delays_weather_daily.yaml"].issues
    assert [located(i) for i in issues] == [(*carets[0], "schedule[1]"),
                                            (*carets[1], "inputs[1].product")]
    assert {i.message for i in issues} == {
        "no product named 'weather_daily' in the products folder"}


@pytest.mark.parametrize("edit, field", [
    (reading("flights_daily", caret="‸"), "inputs[2].product"),
    (('schedule: "@daily"', "schedule: [‸flights_daily]"), "schedule[0]"),
], ids=["input", "schedule"])
def test_a_product_cannot_depend_on_itself(tmp_path, edit, field):
    text, [caret] = marked_text(demo_yaml("flights_daily"), edit)
    folder = products_folder(tmp_path, [], {"flights_daily.yaml": text})
    result = load_products(folder)
    assert result.products == {}
    (issue,) = result.errors[folder / "flights_daily.yaml"].issues
    assert located(issue) == (*caret, field)
    assert issue.message == "a product cannot read or wait for itself"


def test_dependency_cycle_reports_every_member(tmp_path):
    files, carets = {}, {}
    for name, upstream in (("cycle_a", "cycle_b"), ("cycle_b", "cycle_a")):
        files[f"{name}.yaml"], [carets[f"{name}.yaml"]] = renamed_flights(
            name, reading(upstream), ("inputs:\n", "‸inputs:\n"))
    folder = products_folder(tmp_path, ["weather_daily"], files)
    result = load_products(folder)
    assert list(result.products) == ["weather_daily"]
    for file_name in files:
        (issue,) = result.errors[folder / file_name].issues
        assert located(issue) == (*carets[file_name], "inputs")
        assert issue.message == "dependency cycle: cycle_a -> cycle_b -> cycle_a"


def test_an_invalid_file_never_hides_valid_ones(tmp_path):
    broken = {
        "broken.yaml": "name: broken\nversion: 1.0.0: x\n",
        "impossible_date.yaml": "name: impossible_date\nstart_date: 2013-02-30\n",
        "deep.yaml": "name: deep\ntags: " + "[" * 100_000 + "]" * 100_000 + "\n",
    }
    folder = products_folder(tmp_path, DEMO_NAMES, {
        **broken, "notes.txt": "not a product", ".hidden.yaml": "name: [",
    })
    result = load_products(folder)
    assert list(result.products) == DEMO_NAMES
    assert sorted(result.errors) == sorted(folder / name for name in broken)
    for error in result.errors.values():
        (issue,) = error.issues
        assert issue.line == 2 and issue.message.startswith("YAML syntax error"), str(issue)
    assert result.claimed_names == {}


def test_reading_an_invalid_product_is_not_an_error_of_the_reader(tmp_path):
    """delays_weather_daily stays valid when weather_daily.yaml is invalid but names itself."""
    folder = products_folder(tmp_path, ["flights_daily", "delays_weather_daily"],
                             {"weather_daily.yaml": invalid_weather()[0]})
    result = load_products(folder)
    assert list(result.products) == ["delays_weather_daily", "flights_daily"]
    assert result.claimed_names == {folder / "weather_daily.yaml": "weather_daily"}


def test_build_dags_gives_invalid_files_a_placeholder(tmp_path):
    text, (line, column) = invalid_weather()
    folder = products_folder(tmp_path, ["flights_daily"], {
        "weather_daily.yaml": text, "garbage.yaml": "- not\n- a product\n"})
    dags = build_dags(folder)
    assert sorted(dags) == ["flights_daily", "invalid__garbage", "weather_daily"]
    assert INVALID_TAG not in dags["flights_daily"].tags
    assert len(dags["flights_daily"].tasks) > 1
    placeholder = dags["weather_daily"]
    assert INVALID_TAG in placeholder.tags
    assert f"{folder / 'weather_daily.yaml'}:{line}:{column}: {EMAIL_MESSAGE}" in placeholder.doc_md
    assert [t.task_id for t in placeholder.tasks] == ["spec_error"]
    assert placeholder.dag_display_name == "weather_daily - INVALID SPEC (1 error, see Dag docs)"
    assert INVALID_TAG in dags["invalid__garbage"].tags


@pytest.mark.parametrize("target, summary", [
    ("", "1 valid product(s), 1 invalid file(s)"),
    ("weather_daily.yaml", "0 valid product(s), 1 invalid file(s)"),
], ids=["folder", "file"])
def test_validate_prints_located_errors_and_fails(tmp_path, capsys, target, summary):
    text, (line, column) = invalid_weather()
    folder = products_folder(tmp_path, ["flights_daily"], {"weather_daily.yaml": text})
    assert main(["validate", str(folder / target)]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"{folder / 'weather_daily.yaml'}:{line}:{column}: {EMAIL_MESSAGE}"]
    assert out.strip() == summary


def test_validate_passes_on_the_demo_products(capsys):
    assert main(["validate", str(PRODUCTS)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.strip() == f"{len(DEMO_NAMES)} valid product(s), 0 invalid file(s)"


def test_list_json_shows_valid_and_invalid_products(tmp_path, capsys):
    folder = products_folder(tmp_path, ["flights_daily"],
                             {"weather_daily.yaml": invalid_weather()[0]})
    assert main(["--folder", str(folder), "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["file"], r["status"]) for r in rows] == [
        ("flights_daily", "flights_daily.yaml", "valid"),
        ("weather_daily", "weather_daily.yaml", "INVALID (1 errors)"),
    ]
    assert rows[0]["schedule"] == "@daily"
    assert rows[0]["inputs"] == "flights:file, airlines:file"
