"""DagBag parse-time benchmark: how long Airflow takes to build the DAGs of N data products.

What it measures
----------------
For each size N (default 10, 100, 1000) and each *variant* (default: ``dataproducts``, this
project's YAML factory), the script generates a temporary DAGs folder holding N products and
fills an Airflow ``DagBag`` from it, the way the DAG processor parses a DAGs folder. The
variants write the same N products (``flights_daily_0001`` ...) three ways:

* ``dataproducts``: N copies of ``products/flights_daily.yaml`` renamed, plus a copy of the
  loader ``products/load_products.py`` (and ``products/transforms/`` when the product reads a
  ``transform.file``);
* ``python_dags`` (the floor): N hand-written Python DAG files, one per product, from the
  template ``PY_DAG_TEMPLATE``: the same DAG as our factory builds for the product (dag_id,
  task ids, task groups, dependencies, ``CronDataIntervalTimetable``, start/end dates,
  default_args with retries and an on-failure notifier, tags, owner_links, a doc_md of about
  the same size, the publish task's asset outlet), but every task is a standard-provider
  ``PythonOperator`` calling a no-op (``bench_noop.noop``, a module beside the DAG files) with
  the configuration our operators receive (SQL, columns, checks, sources) as ``op_kwargs``.
  They do not do the work; they have the shape, which is what parsing costs;
* ``dag_factory_yaml``: astronomer's ``dag-factory`` (``DAG_FACTORY_VERSION``), N YAML files
  of one DAG each (dag-factory 1.x list form of ``tasks`` / ``task_groups``, the same DAG as
  ``python_dags``), loaded by one module calling ``load_yaml_dags(globals_dict=globals(),
  dags_folder=...)``, dag-factory's documented way to load every YAML file of a folder. It is
  measured with the interpreter of its own virtualenv ``bench/.venvs/dag-factory`` (git-ignored),
  which the script creates on first use (~1.5-3 minutes) and reuses while its requirement list
  is unchanged: ``apache-airflow`` and every ``apache-airflow-providers-*`` at the versions of
  the environment running the script, every shared dependency pinned to this environment's
  version (constraints file), plus ``dag-factory``; not this project. ``--prepare`` only
  creates it. dag-factory's usage telemetry (sent at run time, not while parsing) is turned
  off with ``AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY=False`` and ``DO_NOT_TRACK=1``;
* the sizes are the outer loop and the variants the inner one, so the variants of one size are
  measured close in time (the machine may be shared);
* each (variant, N) runs in a **fresh Python subprocess** (nothing imported is shared between sizes) with
  ``AIRFLOW_HOME`` in a temporary directory, ``AIRFLOW__CORE__LOAD_EXAMPLES=false`` and
  ``AIRFLOW__CORE__DAGS_FOLDER`` / ``AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER`` pointing at the
  generated folder. Other ``AIRFLOW__*`` variables of the caller pass through (e.g.
  ``AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT``, 30 s by default, which bounds one file's parse),
  except ``PYTHONDONTWRITEBYTECODE``: bytecode caching is on, so the cold fill compiles the DAG
  files and writes their ``.pyc`` and the warm fills read them, as when the DAG processor
  re-parses unchanged files (this matters for ``python_dags``: N files of Python source);
* inside the subprocess ``airflow`` and ``DagBag`` are imported first (not timed), then:

  1. one **cold** fill: ``DagBag(folder)``, which also pays for importing ``dag_factory`` and
     its dependencies and for Airflow's lazy first-use set-up. The DAG processor forks a fresh
     child per file parse and pre-imports only the ``airflow.*`` modules the file imports, so
     a production parse of the loader is closer to this than to a warm fill;
  2. ``--repeats`` (default 3) **warm** fills, each a new ``DagBag(folder)``: Airflow removes
     the loader module from ``sys.modules`` and executes the file again, so every product is
     re-read, re-validated and its DAG rebuilt; only the library imports are cached. The table
     reports the median and best wall-clock time of these, their median CPU time
     (``time.process_time``, less disturbed by other load on the machine) and the time spent
     in Python's cyclic garbage collector (``gc.callbacks``);
  3. memory: peak RSS of the subprocess (``resource.getrusage(...).ru_maxrss``, after the
     cold and warm fills, before any tracing) and, in one extra untimed fill under
     ``tracemalloc``, the peak of Python allocations during that fill (it includes the DagBag
     and its DAGs, which are alive at the end of the fill). Tracing slows a fill several times,
     so that fill (and the profiled one) runs without Airflow's ``dagbag_import_timeout``;
  4. the DAGs and import errors of every fill. Anything but exactly the N expected DAG ids,
     0 import errors, no ``invalid-spec`` placeholder DAG (what dag_factory builds, under
     the product's own dag_id, for a product file that fails validation) and every DAG of the
     template product's shape is an **error**: the script reports it and exits 1. The shape
     (``_dag_shape``; ``expected_shape`` derives it from the template product) is: the task
     ids with their upstream task ids, retries and outlet URIs, the task group ids, the
     timetable, start and end date, catchup and max_active_runs. Every variant is held to it,
     ours included, so the three variants build the same DAGs.

As the DAG processor's ``BundleDagBag`` does, the subprocess puts the DAGs folder on
``sys.path`` (the no-op callable's module is imported from there).

On a shared machine seconds follow the load. ``--rounds R`` measures each (variant, N) R
times, the variants alternating within each size, pools the rounds in the table and prints
each round's **paired ratio** (the variants' median warm fills measured next to each other).
``--instructions`` also counts the instructions of one warm fill under valgrind's callgrind,
which the load does not change: for each N of ``--instruction-sizes`` and each variant, a
process with the cold fill and ``--instruction-repeats`` (default 1) warm fills minus one
with the cold fill only, divided by those repeats (~50x slower; the counted warm fills run without Airflow's import
timeout, without the ``gc.collect()`` before them and without the shape check, which the cold
fill keeps).

Targets are printed beside the figures but a missed target never changes the exit code (only
errors do). ``--profile`` runs one more subprocess for N=100 (``--profile-size``) and prints the
top 15 cumulative entries of ``cProfile`` for one warm fill (``--profile-cold`` profiles the
cold fill instead, i.e. with the ``dag_factory`` imports).

Adding a variant: write a function ``generate(folder: Path, n: int) -> list[str]`` that fills
``folder`` with an N-product DAGs folder of the template's shape and returns the DAG ids it
must yield, and register it in ``VARIANTS`` (with ``python=`` for another interpreter).
``TARGETS`` holds the comparisons of the issue: ``dataproducts`` at least 3x faster than
``dag_factory_yaml`` and within 1.5x of ``python_dags`` (median wall-clock fill time at the
same N; the table also gives the CPU-time ratio).

Usage (from the repo root)::

    .venv/bin/python bench/parse.py                      # N = 10, 100, 1000
    .venv/bin/python bench/parse.py --sizes 10,100 --profile
    .venv/bin/python bench/parse.py --json results.json  # also write the raw figures
    .venv/bin/python bench/parse.py --variants dataproducts,python_dags,dag_factory_yaml
    .venv/bin/python bench/parse.py --variants dataproducts,python_dags --rounds 3 --instructions
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gc_timer import GcTimer  # bench/ is on sys.path: the script's own folder

# Only the standard library is imported at module level: the measuring subprocess runs this
# same file, and must not have airflow or dag_factory imported before it starts timing.

REPO = Path(__file__).resolve().parent.parent
PRODUCTS = REPO / "products"
TEMPLATE_PRODUCT = PRODUCTS / "flights_daily.yaml"
LOADER = PRODUCTS / "load_products.py"

DEFAULT_SIZES = (10, 100, 1000)
PROFILE_TOP = 15

# astronomer's dag-factory (import name ``dagfactory``, not to be confused with this project's
# ``dag_factory``): the release the comparison installs into its own virtualenv. 1.1.0 is the
# latest release when this was written; it requires apache-airflow>=2.9 and supports Airflow 3.
DAG_FACTORY_VERSION = "1.1.0"
VENVS = Path(__file__).resolve().parent / ".venvs"  # ignored by git; cached between runs


# --- variants: one function per way of writing N products as an Airflow DAGs folder ----------

def _needs_transform_files(spec_text: str) -> bool:
    """Whether a product reads its SQL from ``transform.file`` (then ``transforms/`` is copied)."""
    import yaml  # the driver process only; the measuring subprocess never calls this

    spec = yaml.safe_load(spec_text)
    transform = spec.get("transform") if isinstance(spec, dict) else None
    return isinstance(transform, dict) and transform.get("file") is not None


def generate_dataproducts(folder: Path, n: int) -> list[str]:
    """N renamed copies of ``products/flights_daily.yaml`` plus the products loader.

    Returns:
        the DAG ids the folder must yield (the N product names).
    """
    text = TEMPLATE_PRODUCT.read_text(encoding="utf-8")
    name_line = re.compile(r"^name: flights_daily$", re.MULTILINE)
    if len(name_line.findall(text)) != 1:
        raise RuntimeError(f"{TEMPLATE_PRODUCT}: expected exactly one 'name: flights_daily' line")
    names = [f"flights_daily_{i:04d}" for i in range(1, n + 1)]
    for name in names:
        (folder / f"{name}.yaml").write_text(name_line.sub(f"name: {name}", text), encoding="utf-8")
    shutil.copy2(LOADER, folder / LOADER.name)
    if _needs_transform_files(text):
        shutil.copytree(PRODUCTS / "transforms", folder / "transforms")
    return names


# The other variants build DAGs of the same shape as the template product's DAG, without this
# project: same dag_id, task ids, task groups and dependencies, schedule (timetable), start and
# end dates, default_args, tags and a doc_md of about the same size. Their tasks are
# ``PythonOperator``s of the standard provider calling a no-op function with the configuration
# our operators receive (SQL, columns, checks, sources) as ``op_kwargs``: they do not do the
# work, they have the shape, which is what parsing costs.

NOOP_MODULE = "bench_noop"  # a module in the DAGs folder; the DAG processor puts that folder on sys.path
# Neither of the two words Airflow's safe mode looks for, so the DagBag skips this file.
NOOP_SOURCE = ('"""No-op task callable of the parse benchmark: the tasks have the shape, '
               'not the work."""\n\n\ndef noop(**context):\n    return None\n')
PYTHON_OPERATOR = "airflow.providers.standard.operators.python.PythonOperator"
NOTIFIER = "airflow.providers.smtp.notifications.smtp.SmtpNotifier"
CRON_PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0",
                "@monthly": "0 0 1 * *", "@quarterly": "0 0 1 */3 *", "@yearly": "0 0 1 1 *",
                "@annually": "0 0 1 1 *"}
GROUP_TOOLTIPS = {"ingest": "One task per input port", "transform": "DuckDB SQL over the staged inputs",
                  "quality_gate": "Soda Core v4 contract on the staged output",
                  "publish": "Atomic partition swap + manifest + asset event"}
# the spec's defaults (dag_factory.spec.models.ProductSpec) for what the template leaves out
SPEC_DEFAULTS = {"catchup": False, "max_active_runs": 1, "retries": 2, "retry_delay": "5m"}


def _template_spec() -> dict:
    import yaml  # the driver process only

    spec = yaml.safe_load(TEMPLATE_PRODUCT.read_text(encoding="utf-8"))
    schedule = spec.get("schedule")
    unsupported = [what for what, present in [
        ("a schedule other than a cron or preset", not isinstance(schedule, str)
         or schedule in ("@once", "@continuous")),
        ("output.exports", bool(spec["output"].get("exports"))),
        ("an input with wait", any(i.get("wait") for i in spec["inputs"])),
        ("an input of type product", any(i.get("type") == "product" for i in spec["inputs"])),
    ] if present]
    if unsupported:
        raise RuntimeError(f"{TEMPLATE_PRODUCT}: the python_dags / dag_factory_yaml templates do not "
                           f"cover {', '.join(unsupported)}; extend them in bench/parse.py")
    return {**SPEC_DEFAULTS, **spec}


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(duration[:-1]) * units[duration[-1]]


def _day_start(day):
    import datetime as dt

    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def _product_values(spec: dict, name: str) -> dict:
    """Everything the DAG of product ``name`` (a renamed copy of ``spec``) is built from."""
    import datetime as dt

    major = int(str(spec["version"]).split(".")[0])
    columns = spec["output"]["columns"]
    end = spec.get("end_date")
    to = list(spec.get("alerts", {}).get("email") or [])
    return {
        "dag_id": name,
        "description": spec["title"],
        "doc_md": _doc_md(spec, name, f"{name}.yaml"),
        "cron": CRON_PRESETS.get(spec["schedule"], spec["schedule"]),
        "start": _day_start(spec["start_date"]),
        "end": _day_start(end) + dt.timedelta(days=1) - dt.timedelta(microseconds=1) if end else None,
        "catchup": spec["catchup"],
        "max_active_runs": spec["max_active_runs"],
        "tags": sorted({"dataproduct", *spec.get("tags", []),
                        *([f"domain:{spec['domain']}"] if spec.get("domain") else [])}),
        "owner": spec["owner"]["team"],
        "owner_links": {spec["owner"]["team"]: f"mailto:{spec['owner']['email']}"},
        "retries": spec["retries"],
        "retry_delay_s": _seconds(spec["retry_delay"]),
        "alert_to": to,
        "pacing": {"product": name, "max_active_runs": 4, "pool_slots": 4, "allowed_hours": None,
                   "max_runs_per_hour": None, **spec.get("backfill", {})},
        "inputs": {i["name"]: {**{k: v for k, v in i.items() if k not in ("wait", "description")},
                               "product": name} for i in spec["inputs"]},
        # the output columns (with their checks) are written once and referenced by three tasks,
        # as a person writing the file would (a Python name; a YAML anchor)
        "columns": columns,
        "transform": {"product": name, "sql": spec["transform"].get("sql")
                      or (PRODUCTS / spec["transform"]["file"]).read_text(encoding="utf-8"),
                      "input_names": [i["name"] for i in spec["inputs"]], "columns": columns,
                      "partition_by": spec["output"]["partition_by"]},
        "gate": {"product": name, "columns": columns, "checks": spec["output"].get("checks")},
        "publish": {"product": name, "version": str(spec["version"]), "major": major,
                    "partition_by": spec["output"]["partition_by"], "columns": columns,
                    "documentation": spec.get("description") or spec["title"]},
        "asset": {"name": f"{name}.v{major}", "uri": f"dataproduct://{name}/v{major}",
                  "group": "dataproduct"},
    }


def _doc_md(spec: dict, name: str, source_file: str) -> str:
    """About the Markdown dag_factory writes into ``doc_md`` (same sections, same size)."""
    owner = spec["owner"]
    lines = [f"# {spec['title']}", "", (spec.get("description") or "").strip(), "", "| | |", "|---|---|",
             f"| Product | `{name}` v{spec['version']} |", f"| Domain | {spec.get('domain') or '-'} |",
             f"| Owner | {owner['team']} ({owner['email']}) |",
             f"| Runbook | {owner.get('runbook') or '-'} |", f"| Spec file | `{source_file}` |", "",
             "## Input ports", "", "| name | type | source |", "|---|---|---|"]
    lines += [f"| `{i['name']}` | {i['type']} | `{i.get('path') or i.get('uri') or i.get('url') or '-'}` |"
              for i in spec["inputs"]]
    lines += ["", f"## Output port (partitioned by `{spec['output']['partition_by']}`)", "",
              "| column | type | checks |", "|---|---|---|"]
    for c in spec["output"]["columns"]:
        checks = ", ".join(next(iter(k)) if isinstance(k, dict) else str(k) for k in c.get("checks") or [])
        lines.append(f"| `{c['name']}` | {c.get('data_type') or '-'} | {checks or '-'} |")
    if spec["output"].get("checks"):
        lines += ["", "Dataset checks: " + ", ".join(next(iter(k)) if isinstance(k, dict) else str(k)
                                                     for k in spec["output"]["checks"])]
    slo = spec.get("slo", {})
    lines += ["", "## SLOs", "", f"freshness {slo.get('freshness', '-')} · success rate "
              f"{slo.get('success_rate', '-')} · quality pass rate {slo.get('quality_pass_rate', '-')} "
              f"· window {slo.get('window', '-')}"]
    return "\n".join(lines)


def expected_shape(spec: dict, name: str) -> dict:
    """What ``_dag_shape`` (in the measuring subprocess) must report for every DAG, any variant."""
    v = _product_values(spec, name)
    ingest = [f"ingest.{i}" for i in v["inputs"]]
    tasks = {"pacing": {"upstream": [], "retries": v["retries"], "outlets": []}}
    tasks.update({t: {"upstream": ["pacing"], "retries": v["retries"], "outlets": []} for t in ingest})
    tasks["transform.run_sql"] = {"upstream": sorted(ingest), "retries": v["retries"], "outlets": []}
    tasks["quality_gate.verify_contract"] = {"upstream": ["transform.run_sql"], "retries": 0, "outlets": []}
    tasks["publish.swap_partitions"] = {"upstream": ["quality_gate.verify_contract"],
                                        "retries": v["retries"], "outlets": [v["asset"]["uri"]]}
    return _normalise_shape({
        "timetable": f"CronDataIntervalTimetable(expression='{v['cron']}', timezone='UTC')",
        "start": v["start"].timestamp(), "end": v["end"].timestamp() if v["end"] else None,
        "catchup": v["catchup"], "max_active_runs": v["max_active_runs"],
        "groups": sorted(GROUP_TOOLTIPS), "tasks": tasks,
    }, name)


def _normalise_shape(shape: dict, dag_id: str) -> str:
    """One string per shape: the dag_id (in asset URIs) replaced, keys sorted."""
    return json.dumps(shape, sort_keys=True).replace(dag_id, "{dag_id}")


PY_DAG_TEMPLATE = '''\
"""{dag_id}: a hand-written Airflow DAG of the same shape as the data product (parse benchmark).

The tasks call a no-op: they have the product DAG's shape, not its work.
"""

import datetime as dt

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, TaskGroup

from {noop_module} import noop

DOC_MD = {doc_md!r}

SQL = {sql!r}

COLUMNS = {columns!r}

ALERT_TO = {alert_to!r}

with DAG(
    dag_id={dag_id!r},
    description={description!r},
    doc_md=DOC_MD,
    schedule=CronDataIntervalTimetable({cron!r}, timezone="UTC"),
    start_date={start},
    end_date={end},
    catchup={catchup!r},
    max_active_runs={max_active_runs!r},
    tags={tags!r},
    owner_links={owner_links!r},
    default_args={{
        "owner": {owner!r},
        "retries": {retries!r},
        "retry_delay": dt.timedelta(seconds={retry_delay_s!r}),
        "on_failure_callback": [SmtpNotifier(to=ALERT_TO, subject="[FAIL] {dag_id}")],
    }},
    params={{}},
) as dag:
    pacing = PythonOperator(task_id="pacing", python_callable=noop, op_kwargs={{"pacing": {pacing!r}}})
    with TaskGroup("ingest", tooltip={tip_ingest!r}) as ingest:
{ingest_tasks}
    with TaskGroup("transform", tooltip={tip_transform!r}) as transform:
        PythonOperator(task_id="run_sql", python_callable=noop,
                       op_kwargs={{**{transform_kwargs!r}, "sql": SQL, "columns": COLUMNS}})
    with TaskGroup("quality_gate", tooltip={tip_gate!r}) as quality_gate:
        PythonOperator(
            task_id="verify_contract", python_callable=noop, retries=0,
            on_success_callback=[SmtpNotifier(to=ALERT_TO, subject="[WARN] {dag_id}")],
            op_kwargs={{**{gate!r}, "columns": COLUMNS}},
        )
    with TaskGroup("publish", tooltip={tip_publish!r}) as publish:
        PythonOperator(
            task_id="swap_partitions", python_callable=noop,
            outlets=[Asset(name={asset_name!r}, uri={asset_uri!r}, group={asset_group!r})],
            op_kwargs={{**{publish!r}, "columns": COLUMNS}},
        )
    pacing >> ingest >> transform >> quality_gate >> publish
'''


def _py_datetime(value) -> str:
    if value is None:
        return "None"
    return (f"dt.datetime({value.year}, {value.month}, {value.day}, {value.hour}, {value.minute}, "
            f"{value.second}, {value.microsecond}, tzinfo=dt.timezone.utc)")


def generate_python_dags(folder: Path, n: int) -> list[str]:
    """N hand-written Python DAG files (one per product) + the no-op callable's module."""
    spec = _template_spec()
    names = [f"flights_daily_{i:04d}" for i in range(1, n + 1)]
    for name in names:
        v = _product_values(spec, name)
        ingest_tasks = "\n".join(
            f"        PythonOperator(task_id={iname!r}, python_callable=noop, "
            f"op_kwargs={{\"source\": {source!r}}})" for iname, source in v["inputs"].items())
        def without(d: dict, *keys: str) -> dict:
            return {k: val for k, val in d.items() if k not in keys}
        text = PY_DAG_TEMPLATE.format(
            dag_id=name, noop_module=NOOP_MODULE, doc_md=v["doc_md"], sql=v["transform"]["sql"],
            description=v["description"], cron=v["cron"], start=_py_datetime(v["start"]),
            end=_py_datetime(v["end"]), catchup=v["catchup"], max_active_runs=v["max_active_runs"],
            tags=v["tags"], owner_links=v["owner_links"], owner=v["owner"], retries=v["retries"],
            retry_delay_s=v["retry_delay_s"], alert_to=v["alert_to"], pacing=v["pacing"],
            tip_ingest=GROUP_TOOLTIPS["ingest"], tip_transform=GROUP_TOOLTIPS["transform"],
            tip_gate=GROUP_TOOLTIPS["quality_gate"], tip_publish=GROUP_TOOLTIPS["publish"],
            ingest_tasks=ingest_tasks, transform_kwargs=without(v["transform"], "sql", "columns"),
            gate=without(v["gate"], "columns"), columns=v["columns"],
            asset_name=v["asset"]["name"], asset_uri=v["asset"]["uri"], asset_group=v["asset"]["group"],
            publish=without(v["publish"], "columns"))
        compile(text, name, "exec")  # a template mistake fails here, not as N import errors
        (folder / f"{name}.py").write_text(text, encoding="utf-8")
    (folder / f"{NOOP_MODULE}.py").write_text(NOOP_SOURCE, encoding="utf-8")
    return names


DAG_FACTORY_LOADER = '''\
"""Airflow DAG loader: astronomer's dag-factory builds one DAG per YAML file of this folder."""

from pathlib import Path

from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder=str(Path(__file__).parent))
'''


def _dag_factory_config(v: dict) -> dict:
    """The dag-factory 1.x YAML config of one product DAG (list form of tasks and task groups)."""
    def task(task_id: str, group: str | None, op_kwargs: dict, **extra) -> dict:
        return {"task_id": task_id, "operator": PYTHON_OPERATOR,
                **({"task_group_name": group} if group else {}),
                "python_callable": f"{NOOP_MODULE}.noop", **extra, "op_kwargs": op_kwargs}

    def notifier(subject: str) -> dict:
        return {"callback": NOTIFIER, "to": v["alert_to"], "subject": f"{subject} {v['dag_id']}"}

    groups, previous = [], "pacing"
    for group, tooltip in GROUP_TOOLTIPS.items():
        groups.append({"group_name": group, "tooltip": tooltip, "dependencies": [previous]})
        previous = group
    return {
        "description": v["description"],
        "doc_md": v["doc_md"],
        # dag-factory builds any object from a mapping with __type__ (its "custom object" syntax)
        "schedule": {"__type__": "airflow.sdk.CronDataIntervalTimetable", "expression": v["cron"],
                     "timezone": "UTC"},
        "start_date": v["start"],
        "end_date": v["end"],
        "catchup": v["catchup"],
        "max_active_runs": v["max_active_runs"],
        "tags": v["tags"],
        "params": {},
        "default_args": {"owner": v["owner"], "retries": v["retries"],
                         "retry_delay": {"__type__": "datetime.timedelta", "seconds": v["retry_delay_s"]},
                         "on_failure_callback": notifier("[FAIL]")},
        "task_groups": groups,
        "tasks": [
            task("pacing", None, {"pacing": v["pacing"]}),
            *[task(name, "ingest", {"source": source}) for name, source in v["inputs"].items()],
            task("run_sql", "transform", v["transform"]),
            task("verify_contract", "quality_gate", v["gate"], retries=0,
                 on_success_callback=notifier("[WARN]")),
            task("swap_partitions", "publish", v["publish"],
                 outlets=[{"__type__": "airflow.sdk.Asset", **v["asset"]}]),
        ],
    }


def _yaml_dumper():
    import yaml

    class Dumper(yaml.SafeDumper):
        """Multi-line strings (SQL, docs) as ``|`` blocks, like a person writes them."""

        def represent_str(self, data):
            if "\n" in data:
                return self.represent_scalar("tag:yaml.org,2002:str", data, style="|")
            return super().represent_str(data)

    Dumper.add_representer(str, Dumper.represent_str)
    return Dumper


def generate_dag_factory_yaml(folder: Path, n: int) -> list[str]:
    """N dag-factory YAML files (one DAG each) + one loader calling ``load_yaml_dags``."""
    import yaml  # the driver process only

    _YamlDumper = _yaml_dumper()
    spec = _template_spec()
    names = [f"flights_daily_{i:04d}" for i in range(1, n + 1)]
    for name in names:
        config = {name: _dag_factory_config(_product_values(spec, name))}
        (folder / f"{name}.yml").write_text(
            yaml.dump(config, Dumper=_YamlDumper, sort_keys=False, allow_unicode=True, width=100),
            encoding="utf-8")
    (folder / "load_dags.py").write_text(DAG_FACTORY_LOADER, encoding="utf-8")
    (folder / f"{NOOP_MODULE}.py").write_text(NOOP_SOURCE, encoding="utf-8")
    return names


# --- the dag-factory virtualenv -----------------------------------------------------------------

def _installed() -> dict[str, str]:
    """name -> version of the distributions of this (the project's) environment."""
    from importlib import metadata

    found = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name:
            found[name] = dist.version
    return found


def dag_factory_python() -> str:
    """The interpreter of ``bench/.venvs/dag-factory`` (created or reused).

    The virtualenv gets the same Airflow and the same providers at the same versions as this
    project's environment (every shared dependency pinned to this environment's version through
    a constraints file), plus ``dag-factory==DAG_FACTORY_VERSION`` and its own dependencies; not
    this project. It is rebuilt when that list changes, else reused.
    """
    venv = VENVS / "dag-factory"
    python = venv / "bin" / "python"
    ours = _installed()
    if "apache-airflow" not in ours:
        raise BenchError("apache-airflow is not installed in the environment running parse.py")
    requirements = [f"apache-airflow=={ours['apache-airflow']}"] + sorted(
        f"{name}=={version}" for name, version in ours.items()
        if name.startswith("apache-airflow-providers-")) + [f"dag-factory=={DAG_FACTORY_VERSION}"]
    constraints = sorted(f"{name}=={version}" for name, version in ours.items()
                         if name not in ("airflow-dataproducts", "pip", "setuptools", "wheel"))
    wanted = {"python": platform.python_version(), "requirements": requirements,
              "constraints": hashlib.sha256("\n".join(constraints).encode()).hexdigest()}
    marker = venv / "bench-venv.json"
    if python.exists() and marker.exists():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == wanted:
                _progress(f"dag_factory_yaml: reusing {venv}")
                return str(python)
        except ValueError:
            pass
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    log_path = VENVS / "dag-factory-install.log"
    _progress(f"dag_factory_yaml: creating {venv} (dag-factory {DAG_FACTORY_VERSION}, "
              f"Airflow {ours['apache-airflow']}; several minutes, once; log: {log_path})")
    started = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        steps = [[sys.executable, "-m", "venv", str(venv)]]
        constraints_path = VENVS / "dag-factory-constraints.txt"
        constraints_path.write_text("\n".join(constraints) + "\n", encoding="utf-8")
        steps.append([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                      "-c", str(constraints_path), *requirements])
        steps.append([str(python), "-c", "import airflow, dagfactory"])
        for step in steps:
            log.write(f"$ {' '.join(step)}\n")
            log.flush()
            if subprocess.run(step, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                log.close()
                tail = log_path.read_text(encoding="utf-8")[-3000:]
                raise BenchError(f"dag_factory_yaml: creating {venv} failed at {step[2:4]}:\n{tail}")
    marker.write_text(json.dumps(wanted, indent=1), encoding="utf-8")
    _progress(f"dag_factory_yaml: {venv} ready in {time.perf_counter() - started:.0f}s")
    return str(python)


@dataclass(frozen=True)
class Variant:
    """A way of writing N products as an Airflow DAGs folder.

    Attributes:
        generate: fills the folder with N products; returns the DAG ids the folder must yield.
        profile_focus: (label, file path suffix, function name) of the functions whose
            cumulative profile time ``--profile`` summarises, as a share of the whole fill.
        python: returns the interpreter that measures (creating its virtualenv if need be);
            None: the one running this script.
        env: extra environment variables of the measuring subprocess.
    """

    name: str
    generate: Callable[[Path, int], list[str]]
    description: str
    profile_focus: tuple[tuple[str, str, str], ...] = ()
    python: Callable[[], str] | None = None  # the measuring interpreter (default: this one)
    env: tuple[tuple[str, str], ...] = ()  # extra environment of the measuring subprocess


VARIANTS: dict[str, Variant] = {
    v.name: v for v in [
        Variant("dataproducts", generate_dataproducts,
                "this project: N YAML product files + products/load_products.py",
                profile_focus=(
                    ("build_dags (the whole loader)", "dag_factory/build/folder.py", "build_dags"),
                    ("  load_products: read + validate all files", "dag_factory/spec/loading.py",
                     "load_products"),
                    ("    YAML parse without marks (valid files)", "dag_factory/spec/yaml_marks.py",
                     "load_plain"),
                    ("    YAML parse with line marks (invalid files)", "dag_factory/spec/yaml_marks.py",
                     "load_marked"),
                    ("    pydantic ProductSpec validation", "pydantic/main.py", "model_validate"),
                    ("    Soda contract JSON Schema check", "dag_factory/spec/soda_schema.py",
                     "soda_contract_errors"),
                    ("  build_product_dag: DAG + tasks", "dag_factory/build/dag.py", "build_product_dag"),
                )),
        Variant("python_dags", generate_python_dags,
                "the floor: N hand-written Python DAG files of the same shape (standard-provider "
                "PythonOperators calling a no-op)",
                profile_focus=(
                    ("DagBag.process_file (all N files)", "dag_processing/dagbag.py", "process_file"),
                    ("  the DAG files executed", "<frozen importlib._bootstrap_external>", "exec_module"),
                    ("  DagBag.bag_dag (checks, policies)", "dag_processing/dagbag.py", "bag_dag"),
                )),
        Variant("dag_factory_yaml", generate_dag_factory_yaml,
                f"astronomer's dag-factory {DAG_FACTORY_VERSION} in bench/.venvs/dag-factory: N YAML "
                "files of one DAG each, loaded by one load_yaml_dags() module",
                profile_focus=(
                    ("load_yaml_dags (the whole loader)", "dagfactory/dagfactory.py", "load_yaml_dags"),
                    ("  YAML load (dag-factory's loader, casts)", "dagfactory/_yaml.py", "load_yaml_file"),
                    ("  DagBuilder.build: DAG + tasks", "dagfactory/dagbuilder.py", "build"),
                    ("  config dumped into doc_md", "dagfactory/dagfactory.py", "_serialise_config_md"),
                ),
                python=dag_factory_python,
                # its usage telemetry is sent by a listener at run time only; off all the same
                env=(("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False"), ("DO_NOT_TRACK", "1"),
                     ("SCARF_NO_ANALYTICS", "true"))),
    ]
}


@dataclass(frozen=True)
class Target:
    """``variant``'s median fill time must be at most ``max_ratio`` x ``baseline``'s."""

    variant: str
    baseline: str
    max_ratio: float
    text: str


TARGETS = [
    # The dataproducts factory should parse 3x faster than astronomer's dag-factory ...
    Target("dataproducts", "dag_factory_yaml", 1 / 3, "3x faster than astronomer dag-factory"),
    # ... and within 1.5x of the same DAGs written by hand in Python.
    Target("dataproducts", "python_dags", 1.5, "within 1.5x of hand-written Python DAGs"),
]
STANDALONE_TARGET = "document the figures"

# A DAG carrying one of these tags stands for a product that failed to load (dag_factory's
# placeholder for an invalid spec keeps the product's dag_id): an error, like an import error.
INVALID_TAGS = {"invalid-spec"}


# --- the measuring subprocess ----------------------------------------------------------------

def _dag_shape(dag) -> str:
    """What must be equal between the variants' DAGs: tasks, groups, edges, schedule, dates."""
    def ts(value):
        return value.timestamp() if value is not None else None

    tasks = {t.task_id: {"upstream": sorted(t.upstream_task_ids), "retries": t.retries,
                         "outlets": sorted(getattr(o, "uri", str(o)) for o in t.outlets or ())}
             for t in dag.tasks}
    return _normalise_shape({
        "timetable": repr(dag.timetable), "start": ts(dag.start_date), "end": ts(dag.end_date),
        "catchup": dag.catchup, "max_active_runs": dag.max_active_runs,
        "groups": sorted(g for g in dag.task_group.get_task_group_dict() if g), "tasks": tasks,
    }, dag.dag_id)


def _child(folder: str, repeats: int, result_path: str,
           profile_path: str | None, profile_cold: bool, counting: bool = False) -> None:
    """Runs in a fresh interpreter: measure the DagBag fills of ``folder``; write JSON results.

    ``counting``: the process runs under callgrind, which counts every instruction between the
    fills too: no traced fill, no ``gc.collect()`` before a warm fill and the DAGs' shapes
    checked on the cold fill only (the warm fills build the same DAGs again)."""
    import gc
    import resource
    import tracemalloc

    def rss_mb() -> float:  # ru_maxrss is in KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t0 = time.perf_counter()
    import airflow  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag
    airflow_import_s = time.perf_counter() - t0
    rss_before = rss_mb()
    # The DAG processor's DagBag (BundleDagBag) puts the DAGs folder on sys.path, so DAG files
    # can import modules that sit beside them (the other variants' no-op callable does).
    if folder not in sys.path:
        sys.path.append(folder)

    fills: list[dict] = []
    gc_timer = GcTimer()

    def fill(kind: str, profiler=None) -> float:
        if not (counting and kind == "warm"):
            gc.collect()  # not timed: start each fill from the same collected heap
        if profiler:
            profiler.enable()
        gc_timer.reset()
        start, cpu_start = time.perf_counter(), time.process_time()
        bag = DagBag(folder)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if profiler:
            profiler.disable()
        shapes: dict[str, int] = {}
        if kind != "traced" and not (counting and kind == "warm"):  # (not while tracemalloc records)
            for dag_id, dag in bag.dags.items():
                shape = _dag_shape(dag)
                shapes[shape] = shapes.get(shape, 0) + 1
        fills.append({"kind": kind, "seconds": seconds, "cpu_seconds": cpu, "gc_seconds": gc_timer.seconds,
                      "dags": len(bag.dags), "dag_ids": sorted(bag.dags), "shapes": shapes,
                      "invalid": {dag_id: f"{dag.description}\n{(dag.doc_md or '')[-1500:]}"
                                  for dag_id, dag in bag.dags.items()
                                  if INVALID_TAGS & set(dag.tags or ())},
                      "import_errors": {str(k): str(v)[-2000:] for k, v in bag.import_errors.items()}})
        del bag
        return seconds

    def no_import_timeout() -> None:
        # tracemalloc and cProfile slow a fill down several times; their times are not reported,
        # so lift Airflow's per-file import timeout for them (read from the env at each parse).
        os.environ["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"] = "0"

    from airflow.configuration import conf

    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("apache-airflow", "apache-airflow-task-sdk", "dag-factory", "airflow-dataproducts",
                 "pydantic", "PyYAML"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    result: dict = {"airflow_import_s": airflow_import_s, "rss_before_mb": rss_before,
                    "import_timeout_s": conf.getfloat("core", "dagbag_import_timeout"),
                    "python_executable": sys.executable, "versions": versions}
    if profile_path:
        import cProfile
        if not profile_cold:
            fill("cold")
        no_import_timeout()
        profiler = cProfile.Profile()
        fill("profiled", profiler)
        profiler.dump_stats(profile_path)
    else:
        fill("cold")
        for _ in range(repeats):
            fill("warm")
        result["rss_peak_mb"] = rss_mb()
        if not counting:
            no_import_timeout()
            gc.collect()
            tracemalloc.start()
            fill("traced")
            result["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    result["fills"] = fills
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")


# --- the driver ------------------------------------------------------------------------------

class BenchError(Exception):
    """A run that did not produce the expected DAGs, or a subprocess that failed."""


def _progress(message: str) -> None:
    print(f"[parse] {message}", file=sys.stderr, flush=True)


def run_size(variant: Variant, n: int, repeats: int, *, python: str | None = None,
             profile_path: Path | None = None, profile_cold: bool = False, keep: bool = False,
             callgrind_out: Path | None = None) -> dict:
    """Generate the folder for (variant, N) and measure it in a fresh subprocess of ``python``
    (default: this interpreter); with ``callgrind_out``, under valgrind's callgrind (which
    counts the instructions the process executes into that file) and without the traced fill."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-parse-{variant.name}-{n}-"))
    try:
        folder = work / "dags"
        home = work / "airflow_home"
        folder.mkdir()
        home.mkdir()
        started = time.perf_counter()
        expected_ids = variant.generate(folder, n)
        expected = len(expected_ids)
        spec = _template_spec()
        expected_shapes = {expected_shape(spec, dag_id) for dag_id in expected_ids}
        _progress(f"{variant.name} N={n}: generated {folder} in {time.perf_counter() - started:.1f}s")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
            "AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER": str(folder),
            "PYTHONHASHSEED": "0",
            **dict(variant.env),
        }
        # Bytecode caching on, as Python's default: the cold fill compiles the DAG files and
        # writes their .pyc, warm fills read them, as a re-parse of unchanged files does.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        result_path = work / "result.json"
        cmd = [python or sys.executable, str(Path(__file__).resolve()), "--_child", str(folder),
               "--repeats", str(repeats), "--_result", str(result_path)]
        if profile_path:
            cmd += ["--_profile-out", str(profile_path)] + (["--profile-cold"] if profile_cold else [])
        what = "profiled fill" if profile_path else f"cold + {repeats} warm + traced fills"
        if callgrind_out:  # ~50x slower: no import timeout (the fills' times are not reported)
            env["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"] = "0"
            cmd = ["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={callgrind_out}",
                   *cmd, "--_counting"]
            what = f"cold + {repeats} warm fills under callgrind"
        _progress(f"{variant.name} N={n}: measuring ({what}) in a fresh subprocess ...")
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        log = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 or not result_path.exists():
            raise BenchError(f"{variant.name} N={n}: measuring subprocess exited {proc.returncode}\n"
                             + log[-5000:])
        result = json.loads(result_path.read_text(encoding="utf-8"))
        _progress(f"{variant.name} N={n}: done in {elapsed:.1f}s")
        for f in result["fills"]:
            missing = sorted(set(expected_ids) - set(f["dag_ids"]))
            unexpected = sorted(set(f["dag_ids"]) - set(expected_ids))
            wrong_shapes = {shape: count for shape, count in f["shapes"].items()
                            if shape not in expected_shapes}
            if missing or unexpected or f["import_errors"] or f["invalid"] or wrong_shapes:
                details = [f"  import error in {path}:\n{msg}" for path, msg in f["import_errors"].items()]
                details += [f"  {count} DAG(s) of another shape than the template product's:\n    "
                            f"{shape}\n  expected:\n    {next(iter(expected_shapes))}"
                            for shape, count in list(wrong_shapes.items())[:2]]
                details += [f"  invalid product DAG {dag_id}: {doc}" for dag_id, doc in
                            list(f["invalid"].items())[:3]]
                raise BenchError(
                    f"{variant.name} N={n}: {f['kind']} fill found {f['dags']} DAGs (expected "
                    f"{expected}), {len(f['import_errors'])} import error(s), {len(f['invalid'])} "
                    f"invalid-spec DAG(s), {sum(wrong_shapes.values())} of another shape, "
                    f"missing {missing[:5]}, unexpected {unexpected[:5]}\n"
                    + "\n".join(details) + f"\n--- subprocess log (tail) ---\n{log[-3000:]}")
            del f["dag_ids"], f["shapes"]  # checked; keep the --json output small
        result.update(variant=variant.name, n=n, expected_dags=expected, load_before=load_before,
                      load_after=os.getloadavg()[0])
        if keep:
            _progress(f"kept {work}")
        return result
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def merge_rounds(results: list[dict]) -> dict:
    """One result of the rounds of a (variant, N): their fills together (the summary takes
    the medians over all warm fills), the peaks' maxima, the first round's load."""
    merged = dict(results[0])
    merged["fills"] = [f for r in results for f in r["fills"]]
    for key in ("rss_peak_mb", "traced_peak_mb"):
        merged[key] = max(r[key] for r in results)
    merged["rounds"] = len(results)
    return merged


def _callgrind_total(path: Path) -> int:
    """The instructions executed (``Ir``) that callgrind recorded in its output file."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise BenchError(f"{path}: no totals line (did callgrind finish?)")


def count_instructions(variant: Variant, n: int, repeats: int, python: str) -> dict:
    """Instructions of one warm fill of (variant, N), by difference: a process that does the
    cold fill and ``repeats`` warm fills, minus one that does the cold fill only, divided by
    ``repeats``. Instruction counts do not depend on the machine's load (seconds do)."""
    if shutil.which("valgrind") is None:
        raise BenchError("--instructions needs valgrind (apt-get install valgrind)")
    totals = {}
    with tempfile.TemporaryDirectory(prefix="bench-parse-callgrind-") as tmp:
        for k in (0, repeats):
            out = Path(tmp) / f"callgrind.{k}.out"
            started = time.perf_counter()
            run_size(variant, n, k, python=python, callgrind_out=out)
            totals[k] = _callgrind_total(out)
            _progress(f"{variant.name} N={n}: {k} warm fills: {totals[k] / 1e9:.2f} G instructions "
                      f"in all ({time.perf_counter() - started:.0f}s under callgrind)")
    per_fill = (totals[repeats] - totals[0]) / repeats
    return {"variant": variant.name, "n": n, "repeats": repeats, "instructions_per_fill": per_fill,
            "per_product": per_fill / n}


def print_instructions(rows: list[dict]) -> None:
    """The instruction counts' table, with the targets' ratios where both variants were counted."""
    by = {(r["variant"], r["n"]): r for r in rows}
    print("instructions per warm DagBag fill (callgrind; by difference of a process with and one "
          "without the warm fills):")
    print(f"{'variant':<16} {'N':>5} {'M instr/fill':>13} {'M instr/prod':>13}  target")
    for r in rows:
        cells = []
        for t in TARGETS:
            base = by.get((t.baseline, r["n"]))
            if t.variant == r["variant"] and base:
                ratio = r["instructions_per_fill"] / base["instructions_per_fill"]
                cells.append(f"{ratio:.2f}x the instructions of {t.baseline} (target {t.text}, "
                             f"i.e. <= {t.max_ratio:.2f}x: {'met' if ratio <= t.max_ratio else 'MISSED'})")
        print(f"{r['variant']:<16} {r['n']:>5} {r['instructions_per_fill'] / 1e6:>13.1f} "
              f"{r['per_product'] / 1e6:>13.2f}  {'; '.join(cells) or STANDALONE_TARGET}")
    print()


def paired_ratios(raw: list[dict]) -> list[str]:
    """Per target and N, the median and range over rounds of the ratio of the two variants'
    median warm fills measured in the same round (next to each other in time)."""
    lines = []
    for t in TARGETS:
        for n in sorted({r["n"] for r in raw}):
            pairs = []
            for rnd in sorted({r.get("round", 0) for r in raw}):
                a = [r for r in raw if (r["variant"], r["n"], r.get("round", 0)) == (t.variant, n, rnd)]
                b = [r for r in raw if (r["variant"], r["n"], r.get("round", 0)) == (t.baseline, n, rnd)]
                if a and b:
                    pairs.append(_median_warm(a[0]) / _median_warm(b[0]))
            if len(pairs) > 1:
                lines.append(f"  N={n}: {t.variant}/{t.baseline} {statistics.median(pairs):.2f} "
                             f"(rounds: {', '.join(f'{p:.2f}' for p in pairs)})")
    return lines


def _median_warm(result: dict) -> float:
    return statistics.median(f["seconds"] for f in result["fills"] if f["kind"] == "warm")


def summarize(result: dict) -> dict:
    warm = [f["seconds"] for f in result["fills"] if f["kind"] == "warm"]
    warm_cpu = [f["cpu_seconds"] for f in result["fills"] if f["kind"] == "warm"]
    cold = next(f["seconds"] for f in result["fills"] if f["kind"] == "cold")
    median = statistics.median(warm)
    return {
        "variant": result["variant"], "n": result["n"], "dags": result["fills"][0]["dags"],
        "slowest_s": max([cold, *warm]), "import_timeout_s": result["import_timeout_s"],
        "cold_ms": cold * 1000, "median_ms": median * 1000, "best_ms": min(warm) * 1000,
        "cpu_median_ms": statistics.median(warm_cpu) * 1000,
        "gc_median_ms": statistics.median(f["gc_seconds"] for f in result["fills"]
                                          if f["kind"] == "warm") * 1000,
        "per_product_ms": median * 1000 / result["n"],
        "rss_peak_mb": result["rss_peak_mb"], "rss_before_mb": result["rss_before_mb"],
        "traced_peak_mb": result["traced_peak_mb"], "load": result["load_before"],
    }


def _targets_text(variant: str, rows_by_variant: dict[str, dict[int, dict]], n: int) -> str:
    """The target cell of (variant, N): the planned comparisons whose baseline was measured."""
    cells = []
    for t in TARGETS:
        if t.variant != variant:
            continue
        base = rows_by_variant.get(t.baseline, {}).get(n)
        if base is None:
            continue
        row = rows_by_variant[variant][n]
        ratio = row["median_ms"] / base["median_ms"]
        cpu_ratio = row["cpu_median_ms"] / base["cpu_median_ms"]
        cells.append(f"{ratio:.2f}x the time of {t.baseline} (CPU {cpu_ratio:.2f}x; target {t.text}, "
                     f"i.e. <= {t.max_ratio:.2f}x: {'met' if ratio <= t.max_ratio else 'MISSED'})")
    return "; ".join(cells) or STANDALONE_TARGET


def print_report(rows: list[dict], repeats: int, raw: list[dict] | None = None) -> None:
    by_variant: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_variant.setdefault(r["variant"], {})[r["n"]] = r
    print()
    print(f"DagBag fill times ({repeats} warm fills per N, each a new DagBag in the same process):")
    print("  total ms  wall-clock median of the warm fills (best ms: the fastest one); ms/prod = total / N")
    print("  CPU ms    median process CPU time of the warm fills (less sensitive to other load)")
    print("  GC ms     median time spent in Python's cyclic garbage collector during the warm fills")
    print("  cold ms   the first fill of the process (also imports what the DAG files use: dag_factory,")
    print("            dagfactory, the operators, and their dependencies)")
    print("  RSS MB    peak RSS of the process; traced MB: tracemalloc peak of one extra fill")
    print("  load      1-minute load average of the machine when the size started")
    print()
    header = (f"{'variant':<16} {'N':>5} {'DAGs':>5} {'total ms':>9} {'best ms':>8} {'CPU ms':>8} "
              f"{'GC ms':>6} {'ms/prod':>8} {'cold ms':>8} {'RSS MB':>7} {'traced MB':>9} {'load':>5}  target")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['variant']:<16} {r['n']:>5} {r['dags']:>5} {r['median_ms']:>9.0f} "
              f"{r['best_ms']:>8.0f} {r['cpu_median_ms']:>8.0f} {r['gc_median_ms']:>6.0f} {r['per_product_ms']:>8.2f} "
              f"{r['cold_ms']:>8.0f} {r['rss_peak_mb']:>7.0f} {r['traced_peak_mb']:>9.1f} "
              f"{r['load']:>5.1f}  {_targets_text(r['variant'], by_variant, r['n'])}")
    print()
    if len(by_variant) > 1:
        print("ratios of the median fill time (wall-clock; CPU in brackets), same N:")
        names = list(by_variant)
        for n in sorted({r["n"] for r in rows}):
            cells = []
            for i, a in enumerate(names):
                for b in names[i + 1:]:
                    if n in by_variant[a] and n in by_variant[b]:
                        ra, rb = by_variant[a][n], by_variant[b][n]
                        cells.append(f"{a}/{b} {ra['median_ms'] / rb['median_ms']:.2f} "
                                     f"({ra['cpu_median_ms'] / rb['cpu_median_ms']:.2f})")
            print(f"  N={n}: " + "; ".join(cells))
        print()
    paired = paired_ratios(raw or [])
    if paired:
        print("paired ratios (median warm fill of each variant in the same round; the rounds "
              "alternate the variants, so a change of load hits both):")
        print("\n".join(paired))
        print()
    if raw:
        seen = {}
        for result in raw:
            key = (result["variant"], json.dumps(result.get("versions", {}), sort_keys=True))
            seen.setdefault(key, result)
        for (variant, _), result in seen.items():
            versions = ", ".join(f"{k} {v}" for k, v in result.get("versions", {}).items())
            print(f"versions [{variant}]: {versions} ({result.get('python_executable')})")
        print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}; 1-minute load average "
              f"{min(r['load_before'] for r in raw):.1f}-{max(r['load_before'] for r in raw):.1f} "
              f"when the sizes started")
        print()
    for variant, by_n in by_variant.items():
        sizes = sorted(by_n)
        if len(sizes) < 2:
            r = by_n[sizes[0]]
            print(f"per-product cost [{variant}]: {r['per_product_ms']:.2f} ms/product "
                  f"(N={r['n']} only; give two sizes for the marginal cost)")
            continue
        steps = []
        for a, b in zip(sizes, sizes[1:]):
            lo, hi = by_n[a], by_n[b]
            dn = b - a
            steps.append(f"N={a}->{b}: {(hi['median_ms'] - lo['median_ms']) / dn:.2f} ms wall, "
                         f"{(hi['cpu_median_ms'] - lo['cpu_median_ms']) / dn:.2f} ms CPU, "
                         f"{(hi['traced_peak_mb'] - lo['traced_peak_mb']) * 1024 / dn:.0f} KiB traced")
        print(f"per-product cost [{variant}] (marginal, per added product): " + "; ".join(steps)
              + f"; target: {STANDALONE_TARGET}")
        lo, hi = by_n[sizes[0]], by_n[sizes[-1]]
        ms = (hi["median_ms"] - lo["median_ms"]) / (hi["n"] - lo["n"])
        fixed = lo["median_ms"] - ms * lo["n"]
        timeout = hi["import_timeout_s"]
        if timeout > 0 and ms > 0:
            print(f"import timeout [{variant}]: slowest timed fill at N={hi['n']} took "
                  f"{hi['slowest_s']:.1f}s of the {timeout:.0f}s [core] dagbag_import_timeout; at "
                  f"{ms:.2f} ms/product a single loader file reaches it near "
                  f"N={(timeout * 1000 - fixed) / ms:,.0f}")


def print_profile(path: Path, variant: Variant, top: int = PROFILE_TOP) -> None:
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    text = out.getvalue()
    # Drop pstats' preamble up to the summary line; keep totals and the table.
    print(text[text.find("function calls") - 10:].rstrip() if "function calls" in text else text)
    stats = pstats.Stats(str(path), stream=io.StringIO())  # strip_dirs() above lost the paths
    if variant.profile_focus:
        total = max(v[3] for v in stats.stats.values())  # the outermost call: the whole fill
        print(f"\nwhere the time goes (cumulative, of {total:.2f}s profiled; the profiler inflates "
              "code made of many small Python calls):")
        for label, suffix, func in variant.profile_focus:
            found = [v for (file, _, name), v in stats.stats.items()
                     if name == func and file.endswith(suffix)]
            if found:
                cum = sum(v[3] for v in found)
                calls = sum(v[1] for v in found)
                print(f"  {label:<45} {cum:7.3f}s {100 * cum / total:5.1f}%  ({calls} calls)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated product counts (default: %(default)s)")
    parser.add_argument("--variants", default="dataproducts",
                        help=f"comma-separated variants, of: {', '.join(VARIANTS)} (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="warm fills per size (default: 3)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure each (N, variant) this many times, the variants alternating "
                             "(default: 1); the table pools the rounds, paired ratios are per round")
    parser.add_argument("--instructions", action="store_true",
                        help="also count the instructions of a warm fill with valgrind's callgrind "
                             "(independent of the machine's load; ~50x slower: keep N <= 100)")
    parser.add_argument("--instruction-sizes", default="10,100",
                        help="the N to count instructions for (default: %(default)s)")
    parser.add_argument("--instruction-repeats", type=int, default=1,
                        help="warm fills counted per (variant, N) (default: 1; the counts hardly vary)")
    parser.add_argument("--profile", action="store_true",
                        help=f"also cProfile one fill and print the top {PROFILE_TOP} cumulative entries")
    parser.add_argument("--profile-size", type=int, default=100, help="N to profile (default: 100)")
    parser.add_argument("--profile-cold", action="store_true",
                        help="profile the cold fill (with the dag_factory imports) instead of a warm one")
    parser.add_argument("--profile-out", type=Path, help="also keep the cProfile stats in this file")
    parser.add_argument("--json", type=Path, help="write the raw results to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders (prints where)")
    parser.add_argument("--prepare", action="store_true",
                        help="only create (or check) the variants' virtualenvs, then exit")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_result", help=argparse.SUPPRESS)
    parser.add_argument("--_profile-out", dest="child_profile_out", help=argparse.SUPPRESS)
    parser.add_argument("--_counting", dest="child_counting", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._child:
        _child(args._child, args.repeats, args._result,
               args.child_profile_out, args.profile_cold, counting=args.child_counting)
        return 0

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes: give at least one size >= 1")
    if min(args.repeats, args.rounds, args.instruction_repeats) < 1:
        parser.error("--repeats, --rounds, --instruction-repeats: at least 1")
    try:
        instruction_sizes = [int(s) for s in args.instruction_sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--instruction-sizes: expected comma-separated integers, got {args.instruction_sizes!r}")
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; known: {list(VARIANTS)}")
    variants = [VARIANTS[v] for v in args.variants.split(",")]

    rows, raw, counted = [], [], []
    reported = False
    try:
        pythons = {v.name: v.python() if v.python else sys.executable for v in variants}
        if args.prepare:
            for name, python in pythons.items():
                print(f"{name}: {python}")
            return 0
        # sizes outside, variants inside: the variants of one size are measured close in time,
        # under about the same load of the (shared) machine
        for n in sizes:
            rounds: dict[str, list[dict]] = {v.name: [] for v in variants}
            for rnd in range(args.rounds):
                for variant in variants:
                    result = run_size(variant, n, args.repeats, python=pythons[variant.name],
                                      keep=args.keep)
                    result["round"] = rnd
                    raw.append(result)
                    rounds[variant.name].append(result)
            rows += [summarize(merge_rounds(results)) for results in rounds.values()]
        rows.sort(key=lambda r: ([v.name for v in variants].index(r["variant"]), r["n"]))
        print_report(rows, args.repeats * args.rounds, raw)
        reported = True
        if args.instructions:
            counted += [count_instructions(variant, n, args.instruction_repeats, pythons[variant.name])
                       for n in instruction_sizes for variant in variants]
            print_instructions(counted)
        if args.profile:
            for variant in variants:
                with tempfile.TemporaryDirectory(prefix="bench-parse-profile-") as tmp:
                    prof = args.profile_out or Path(tmp) / "parse.prof"
                    run_size(variant, args.profile_size, 1, python=pythons[variant.name],
                             profile_path=prof, profile_cold=args.profile_cold, keep=args.keep)
                    print(f"\ncProfile of one {'cold' if args.profile_cold else 'warm'} DagBag fill, "
                          f"{variant.name} N={args.profile_size} (top {PROFILE_TOP} by cumulative time):")
                    print_profile(prof, variant)
    except BenchError as exc:
        if rows and not reported:  # what was measured before the error
            print_report(rows, args.repeats * args.rounds, raw)
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "raw": raw, "instructions": counted},
                                        indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
