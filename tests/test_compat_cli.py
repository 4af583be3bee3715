"""``dataproducts validate --against <git ref>`` on a temporary git repository of product
files, and ``dataproducts retire`` refusing while a product still reads the version."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dag_factory.cli.main import main
from helpers import products_folder

PRODUCTS = ["flights_daily", "weather_daily", "delays_weather_daily"]


def git(repo, *args):
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def repo(tmp_path):
    """A git repository whose products/ holds three demo products, committed as HEAD."""
    if shutil.which("git") is None:
        pytest.skip("not available: git")
    folder = products_folder(tmp_path, PRODUCTS)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "products")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "v1")
    return folder


def edit(folder, name, old, new):
    path = folder / f"{name}.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def validate(capsys, folder, against="HEAD"):
    code = main(["validate", str(folder), "--against", against])
    out, err = capsys.readouterr()
    return code, out, err


REMOVE_CARRIER_NAME = ("""    - name: carrier_name
      data_type: varchar
      checks: [{missing: {name: Every carrier code is in the airlines reference}}]
""", "")


def test_breaking_edit_without_major_bump_fails_naming_change_and_consumer(repo, capsys):
    edit(repo, "flights_daily", *REMOVE_CARRIER_NAME)
    edit(repo, "flights_daily", "{name: flights, data_type: bigint",
         "{name: flights, data_type: integer")
    edit(repo, "flights_daily", "version: 1.0.0", "version: 1.1.0")

    code, out, err = validate(capsys, repo)

    assert code == 1
    assert (f"{repo / 'flights_daily.yaml'}: flights_daily: breaking change without a major version bump (1.0.0 -> "
            "1.1.0): column carrier_name: removed (was VARCHAR); column flights: type BIGINT -> "
            "INTEGER (narrowed); read by delays_weather_daily (input flights, follows the "
            "current major). Bump version to 2.0.0") in err
    assert "flights_daily 1.0.0 -> 1.1.0: FAIL" in out
    assert "weather_daily 1.0.0: no contract change" in out
    assert "2 product(s) compatible or properly versioned, 1 failing" in out


def test_breaking_major_bump_fails_while_a_consumer_follows_the_current_major(repo, capsys):
    edit(repo, "flights_daily", *REMOVE_CARRIER_NAME)
    edit(repo, "flights_daily", "version: 1.0.0", "version: 2.0.0")

    code, _, err = validate(capsys, repo)

    assert code == 1
    assert ("flights_daily: breaking major bump 1.0.0 -> 2.0.0 would reach an unpinned consumer: "
            "delays_weather_daily does not pin a major for input flights: it reads v2 "
            "from its next run. Pin `major: 1`") in err


def test_breaking_edit_with_major_bump_passes_and_names_the_new_storage_path(repo, capsys):
    edit(repo, "flights_daily", *REMOVE_CARRIER_NAME)
    edit(repo, "flights_daily", "version: 1.0.0", "version: 2.0.0")
    edit(repo, "delays_weather_daily", "{name: flights, type: product, product: flights_daily}",
         "{name: flights, type: product, product: flights_daily, major: 1}")

    code, out, err = validate(capsys, repo)

    assert code == 0, err
    assert "flights_daily 1.0.0 -> 2.0.0: changed" in out
    assert "breaking    column carrier_name: removed (was VARCHAR)" in out
    assert "the product publishes to products/flights_daily/v2/" in out
    assert "products/flights_daily/v1/ keeps its partitions and stays readable until retired" in out


def test_consumer_pinning_the_old_major_keeps_reading_it(repo, capsys):
    edit(repo, "flights_daily", *REMOVE_CARRIER_NAME)
    edit(repo, "flights_daily", "version: 1.0.0", "version: 2.0.0")
    edit(repo, "delays_weather_daily", "{name: flights, type: product, product: flights_daily}",
         "{name: flights, type: product, product: flights_daily, major: 1}")

    code, out, _ = validate(capsys, repo)

    assert code == 0
    assert "delays_weather_daily pins major 1: it keeps reading v1's partitions" in out
    assert "WARNING" not in out


def test_compatible_edit_passes(repo, capsys):
    edit(repo, "flights_daily", "title: NYC departures - daily carrier performance",
         "title: NYC departures per carrier and day")
    edit(repo, "flights_daily", "- {name: avg_dep_delay_min, data_type: double}",
         "- {name: avg_dep_delay_min, data_type: double}\n"
         "    - {name: avg_arr_delay_min, data_type: double}")
    edit(repo, "flights_daily", "- {name: cancelled, data_type: bigint, checks: "
         "[{invalid: {valid_min: 0}}]}", "- {name: cancelled, data_type: hugeint}")
    edit(repo, "flights_daily", "version: 1.0.0", "version: 1.1.0")

    code, out, err = validate(capsys, repo)

    assert code == 0, err
    for line in ("compatible  column avg_arr_delay_min: added as optional (DOUBLE)",
                 "compatible  column cancelled: type BIGINT -> HUGEINT (widened)",
                 "compatible  invalid check on column cancelled: removed",
                 "compatible  title: changed (documentation)"):
        assert line in out


def test_removed_product_with_consumers_fails(repo, capsys):
    (repo / "weather_daily.yaml").unlink()

    code, _, err = validate(capsys, repo)

    assert code == 1
    assert ("weather_daily: removed, but read by delays_weather_daily (input weather, follows "
            "the current major)") in err


def test_added_product_and_unknown_ref(repo, capsys):
    shutil.copyfile(repo / "flights_daily.yaml", repo / "flights_copy.yaml")
    edit(repo, "flights_copy", "name: flights_daily", "name: flights_copy")
    code, out, _ = validate(capsys, repo)
    assert code == 0 and "flights_copy 1.0.0: no contract change" in out
    assert "new product (not in git ref HEAD" in out

    code, _, err = validate(capsys, repo, against="no-such-branch")
    assert code == 1 and "git ref 'no-such-branch' names no commit" in err


def test_pin_of_a_major_not_yet_published_is_a_spec_error(repo, capsys):
    edit(repo, "delays_weather_daily", "{name: flights, type: product, product: flights_daily}",
         "{name: flights, type: product, product: flights_daily, major: 2}")

    assert main(["validate", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "delays_weather_daily.yaml:17:" in err
    assert ("inputs[0].major: product 'flights_daily' is at version 1.0.0 and publishes v1; "
            "no v2 exists to read") in err


def test_pinned_input_reads_and_schedules_on_its_major(repo):
    from dag_factory.build.folder import build_dags

    edit(repo, "flights_daily", "version: 1.0.0", "version: 2.0.0")
    edit(repo, "delays_weather_daily", "{name: flights, type: product, product: flights_daily}",
         "{name: flights, type: product, product: flights_daily, major: 1}")

    dags = build_dags(repo)

    consumer = dags["delays_weather_daily"]
    ingest = consumer.task_dict["ingest.flights"]
    assert ingest.source["major"] == 1
    assert [a.uri for a in ingest.inlets] == ["dataproduct://flights_daily/v1"]
    uris = {a.uri for a in consumer.timetable.asset_condition.objects}
    assert uris == {"dataproduct://flights_daily/v1", "dataproduct://weather_daily/v1"}
    assert [o.uri for o in dags["flights_daily"].task_dict["publish.swap_partitions"].outlets] \
        == ["dataproduct://flights_daily/v2"]
    from dag_factory.lineage.graph import build_graph
    from dag_factory.spec.loading import load_products

    graph = build_graph({n: p.spec for n, p in load_products(repo).products.items()})
    reads = {source for source, target in graph.edges if target == "product|delays_weather_daily"}
    assert any(s.endswith("/products/flights_daily/v1") for s in reads), reads
    assert not any(s.endswith("/products/flights_daily/v2") for s in reads), reads
