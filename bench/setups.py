"""Run time per partition on each production setup of issue 6, for the same product file.

Setups (``--setups``, default all four):

* ``embedded``: the default; local data folder, DuckDB, ``dag.test()`` in one process;
* ``s3``: the data folder on S3 (moto's server on 127.0.0.1, through the amazon provider);
* ``postgres``: ``engine: postgres`` on the local PostgreSQL, local data folder;
* ``celery``: CeleryExecutor with two Celery workers (one task slot each) on the local
  Postgres and Redis, the data folder on S3, the scheduler catching up the days (the harness
  of ``tests/test_distributed.py``, ``tests/airflow_services.py``).

The product is the demo ``fleet_daily`` (its SQL is portable between DuckDB and PostgreSQL; one
CSV input from the landing zone and one S3 input), run for ``--days`` daily partitions. The
``dag.test()`` setups each run in a fresh subprocess with its own ``AIRFLOW_HOME`` (SQLite) and
report, per run, the wall time and each stage's task duration (Airflow's task records); the
Celery setup reports each DAG run's duration (``end_date - start_date``) and the
catch-up's wall time. The first run of each setup warms the process up and is left out of the
medians (``--days`` + 1 runs). Exit status is non-zero only on an error (a failed run).

Usage::

    .venv/bin/python bench/setups.py                          # 5 days per setup (~6 min)
    .venv/bin/python bench/setups.py --setups embedded,s3 --days 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PRODUCT = "fleet_daily"
SETUPS = ("embedded", "s3", "postgres", "celery")
STAGES = ("ingest", "transform", "quality_gate", "publish")
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ENGINE = "engine: {type: postgres, conn_id: warehouse, schema: dataproducts}\n"


def product_yaml(setup: str, days: int) -> str:
    """fleet_daily for ``days`` + 1 days from 2013-01-01 (catchup for the scheduler)."""
    text = (REPO / "products" / f"{PRODUCT}.yaml").read_text()
    last = dt.date(2013, 1, 1) + dt.timedelta(days=days)
    text = re.sub(r"^end_date: .*\n", f"end_date: {last.isoformat()}\ncatchup: true\n", text,
                  flags=re.M)
    return text + (ENGINE if setup == "postgres" else "")


def write_products_folder(work: Path, setup: str, days: int) -> Path:
    """``work/products``: the product file plus the loader module Airflow parses (dag.test()
    serializes the DAG by parsing the folder)."""
    folder = work / "products"
    folder.mkdir()
    (folder / f"{PRODUCT}.yaml").write_text(product_yaml(setup, days))
    for loader_file in ("load_products.py", ".airflowignore"):
        (folder / loader_file).write_bytes((REPO / "products" / loader_file).read_bytes())
    return folder


def seeded_s3_data_folder(endpoint: str, last: dt.date) -> str:
    """A fresh bucket on the moto server at ``endpoint`` with the landing zone for
    2013-01-01..``last`` under ``data/``; sets connection ``aws_data`` (and makes it
    ``[dataproducts] data_conn_id``) in this process's environment. Returns the bucket name."""
    import boto3

    from dag_factory.datastore import S3Path
    from dag_factory.demo.s3server import connection_json
    from dag_factory.demo.seed import seed_landing

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                 aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    os.environ["AIRFLOW_CONN_AWS_DATA"] = connection_json(endpoint)
    os.environ["AIRFLOW__DATAPRODUCTS__DATA_CONN_ID"] = "aws_data"
    seed_landing(S3Path(bucket, "data"), dt.date(2013, 1, 1), last, log=lambda _: None)
    return bucket


# --- in the child process: one dag.test() setup ---

def child(setup: str, days: int, work: Path) -> dict:
    """Run the product ``days`` + 1 times with ``dag.test()``; returns per-run timings."""
    from dag_factory.build.folder import build_dags
    from dag_factory.runner import run_product
    from dag_factory.spec.loading import load_products

    folder = work / "products"
    specs = load_products(folder).products
    dag = build_dags(folder)[PRODUCT]
    runs = []
    for i in range(days + 1):
        day = dt.date(2013, 1, 1) + dt.timedelta(days=i)
        started = time.perf_counter()
        summary = run_product(dag, specs[PRODUCT].spec.schedule, day, stream=open(os.devnull, "w"),
                              folder=folder)
        wall = time.perf_counter() - started
        if summary.state != "success":
            raise SystemExit(f"{setup}: run of {day} ended {summary.state}: {summary.tasks}")
        stages = {stage: sum(d or 0 for t, (_, d) in summary.tasks.items() if t.startswith(stage))
                  for stage in STAGES}
        runs.append({"day": day.isoformat(), "wall": wall, "stages": stages,
                     "rows": summary.rows})
    return {"setup": setup, "runs": runs}


def prepare_and_run_child(setup: str, days: int) -> None:
    """The child's entry point: data folder, connections and services for ``setup``."""
    from dag_factory.demo.s3server import DEMO_CONN_ID, connection_json, moto_s3
    from dag_factory.demo.seed import seed_landing, seed_s3

    work = Path(os.environ["BENCH_WORK"])
    last = dt.date(2013, 1, 1) + dt.timedelta(days=days)
    with moto_s3() as endpoint:
        os.environ[f"AIRFLOW_CONN_{DEMO_CONN_ID.upper()}"] = connection_json(endpoint)
        seed_s3("s3://landing/nycflights13/planes.csv", DEMO_CONN_ID, log=lambda _: None)
        if setup == "s3":
            bucket = seeded_s3_data_folder(endpoint, last)
            os.environ["AIRFLOW__DATAPRODUCTS__DATA_FOLDER"] = f"s3://{bucket}/data"
        else:
            seed_landing(Path(os.environ["AIRFLOW__DATAPRODUCTS__DATA_FOLDER"]),
                         dt.date(2013, 1, 1), last, log=lambda _: None)
        result = child(setup, days, work)
    print("BENCH-RESULT " + json.dumps(result))


def run_in_subprocess(setup: str, days: int) -> dict:
    """One ``dag.test()`` setup in a fresh process and AIRFLOW_HOME."""
    with tempfile.TemporaryDirectory(prefix=f"bench-setup-{setup}-") as tmp:
        work = Path(tmp)
        write_products_folder(work, setup, days)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update({
            "AIRFLOW_HOME": str(work / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__DAGS_FOLDER": str(work / "products"),
            "AIRFLOW__DATAPRODUCTS__DATA_FOLDER": str(work / "data"),
            "SODA_CORE_TELEMETRY_ENABLED": "false", "BENCH_WORK": str(work),
            "AIRFLOW__OPENLINEAGE__DISABLED": "true",
        })
        database = None
        if setup == "postgres":
            database = create_database()
            env["AIRFLOW_CONN_WAREHOUSE"] = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{database}"
        try:
            subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                           capture_output=True)
            done = subprocess.run([sys.executable, __file__, "--child", setup, "--days", str(days)],
                                  env=env, capture_output=True, text=True)
        finally:
            if database:
                drop_database(database)
        lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"{setup} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return json.loads(lines[-1].split(" ", 1)[1])


def create_database() -> str:
    import psycopg

    name = f"bench_wh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    return name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


# --- the Celery setup (real scheduler and workers) ---

def run_celery(days: int) -> dict:
    """Catch up ``days`` + 1 partitions under CeleryExecutor with 2 workers, data on S3."""
    sys.path.insert(0, str(REPO / "tests"))
    from airflow_services import Celery, drop_database as drop_metadata, flush_redis_db, \
        free_redis_db, start_airflow
    from dag_factory.demo.s3server import DEMO_CONN_ID, connection_json, free_port, moto_s3
    from dag_factory.demo.seed import seed_s3

    last = dt.date(2013, 1, 1) + dt.timedelta(days=days)
    with tempfile.TemporaryDirectory(prefix="bench-setup-celery-") as tmp, moto_s3() as endpoint:
        work = Path(tmp)
        write_products_folder(work, "celery", days)
        os.environ[f"AIRFLOW_CONN_{DEMO_CONN_ID.upper()}"] = connection_json(endpoint)
        seed_s3("s3://landing/nycflights13/planes.csv", DEMO_CONN_ID, log=lambda _: None)
        bucket = seeded_s3_data_folder(endpoint, last)
        broker = free_redis_db()
        env = {f"AIRFLOW_CONN_{DEMO_CONN_ID.upper()}": connection_json(endpoint),
               "AIRFLOW_CONN_AWS_DATA": connection_json(endpoint),
               "AIRFLOW__DATAPRODUCTS__DATA_CONN_ID": "aws_data"}
        services = start_airflow(work / "home", work / "products", f"s3://{bucket}/data",
                                 POSTGRES_ADMIN, free_port(), extra_env=env,
                                 celery=Celery(broker_url=broker, workers=2, concurrency=1))
        try:
            started = time.perf_counter()
            services.wait_runs_ended({PRODUCT: days + 1}, timeout=1800, period=1)
            wall = time.perf_counter() - started
            rows = services.query("select state, extract(epoch from end_date - start_date), "
                                  "data_interval_start from dag_run where dag_id = :d order by "
                                  "data_interval_start", d=PRODUCT)
            stages = services.query(
                "select r.data_interval_start, t.task_id, t.duration from task_instance t join "
                "dag_run r on r.run_id = t.run_id and r.dag_id = t.dag_id where t.dag_id = :d",
                d=PRODUCT)
        finally:
            services.stop()
            drop_metadata(POSTGRES_ADMIN, services.db_url)
            flush_redis_db(broker)
    if any(state != "success" for state, _, _ in rows):
        raise SystemExit(f"celery: runs failed: {rows}")
    runs = []
    for state, seconds, start in rows:
        per_stage = {s: sum(float(d or 0) for st, t, d in stages if st == start and t.startswith(s))
                     for s in STAGES}
        runs.append({"day": start.date().isoformat(), "wall": float(seconds), "stages": per_stage})
    return {"setup": "celery", "runs": runs, "catchup_wall": wall}


# --- report ---

def report(results: list[dict], days: int) -> str:
    lines = [f"## Run time per partition by setup ({PRODUCT}, {days} partitions after a warm-up "
             f"run; {dt.date.today().isoformat()}, {platform.node()}, {os.cpu_count()} cores)", "",
             "| setup | run wall, median (s) | min-max (s) | " + " | ".join(
                 f"{s} (s)" for s in STAGES) + " |",
             "|---|---:|---:|" + "---:|" * len(STAGES)]
    for result in results:
        runs = result["runs"][1:] or result["runs"]
        walls = [r["wall"] for r in runs]
        stage = {s: statistics.median(r["stages"][s] for r in runs) for s in STAGES}
        lines.append(f"| {result['setup']} | {statistics.median(walls):.2f} | "
                     f"{min(walls):.2f}-{max(walls):.2f} | "
                     + " | ".join(f"{stage[s]:.2f}" for s in STAGES) + " |")
    for result in results:
        if "catchup_wall" in result:
            lines.append(f"\ncelery: the scheduler caught up {len(result['runs'])} runs in "
                         f"{result['catchup_wall']:.0f} s of wall time (runs of one product "
                         "are sequential: max_active_runs 1).")
    lines.append("\nStage columns: the task durations Airflow recorded (ingest: every input "
                 "task summed). Run wall: dag.test() wall time per run (embedded, s3, "
                 "postgres) or the DAG run's duration in the metadata DB (celery), which "
                 "includes queueing on the workers.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--days", type=int, default=5, help="measured partitions per setup")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        prepare_and_run_child(args.child, args.days)
        return 0
    results = []
    for setup in args.setups.split(","):
        if setup not in SETUPS:
            parser.error(f"unknown setup {setup!r}; expected some of {', '.join(SETUPS)}")
        print(f"[setups] {setup}: {args.days + 1} runs ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        results.append(run_celery(args.days) if setup == "celery"
                       else run_in_subprocess(setup, args.days))
        print(f"[setups] {setup}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(report(results, args.days))
    return 0


if __name__ == "__main__":
    sys.exit(main())
