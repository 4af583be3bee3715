"""Gate-scaling benchmark: Soda gate time vs rows (10^4..10^7) and vs number of checks.

What it measures (issue 7, part 3)
----------------------------------
The quality gate exactly as ``QualityGateOperator.run`` does it, on a staged Parquet file:
a fresh in-memory DuckDB connection (``dag_factory.engines.duckdb.connect``, 2 threads),
``create table main.staged_<product> as select * from read_parquet(<staged>)`` (**load**),
``dag_factory.quality.gate.verify`` with ``contract_yaml(product, columns, checks)`` (**soda**,
the Soda Core v4 contract verification), and ``measure_columns`` (**metrics**, the one-query
row/null/distinct counts the operator stores for the SLO page).

Data: the real output of the flights product: the transform SQL of
``products/flights_daily.yaml`` over all 336,776 flights of 2013 (5,432 rows: one per day and
carrier), replicated with ``flight_date`` shifted by 365 days per copy (so the duplicate check on
(flight_date, carrier) still sees unique keys and every other column keeps its real
distribution), cut to N rows and written as zstd Parquet, like the transform's staging file.

* **rows**: N = 10^4, 10^5, 10^6 (``--quick`` stops here), 10^7 (when at least 4 GB are free),
  with the product's own 10 checks (7 column checks incl. one warn-level, row_count, duplicate,
  schema).
* **checks**: 1, 5, 10 (the product's), 20 checks (the product's + 10 more of the same kinds,
  with qualifiers) at 10^6 rows; plus the product's duplicate check alone and the product's
  other 9 checks without it (Soda runs each duplicate check as its own query).

Sizes / check counts are measured round-robin (A, B, C, ... A, B, C ...) ``--repeats`` times
(default 3) so load hits all alike; the tables show medians, rows/s and ms per check, and a
note on the growth: time ratio per decade and a least-squares fit t = fixed + per-row x N
(and t = fixed + per-check x checks). Exit 1 only on an error (e.g. a check that fails on data
where it must pass).

Usage::

    .venv/bin/python bench/gate.py --quick        # up to 10^6 rows (~40 s)
    .venv/bin/python bench/gate.py                # + 10^7 rows (~1.5 min)
    .venv/bin/python bench/gate.py --profile      # + cProfile of one 10^6-row gate
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PRODUCT = "flights_daily"
BASE_DAYS = 365

# 10 more checks of the product's kinds, on its columns (qualifiers keep them distinct)
EXTRA_COLUMN_CHECKS = {
    "flights": [{"missing": {"qualifier": "x1"}}, {"invalid": {"qualifier": "x2", "valid_max": 100000}}],
    "cancelled": [{"missing": {"qualifier": "x1"}}, {"invalid": {"qualifier": "x2", "valid_max": 100000}}],
    "avg_dep_delay_min": [{"invalid": {"qualifier": "x1", "valid_min": -120, "valid_max": 1440}}],
    "on_time_pct": [{"missing": {"qualifier": "x1", "threshold": {"must_be_less_than": 1000000}}}],
    "carrier": [{"invalid": {"qualifier": "x1", "valid_min_length": 2, "valid_max_length": 2}}],
    "carrier_name": [{"invalid": {"qualifier": "x1", "valid_max_length": 100}}],
    "flight_date": [{"missing": {"qualifier": "x1"}}],
}
EXTRA_DATASET_CHECKS = [{"duplicate": {"qualifier": "x1", "columns": ["flight_date", "carrier", "carrier_name"]}}]

# What the benchmark is for (issue 7, part 3): the figures are the result, nothing is enforced.
TARGET_TEXT = "document how the gate scales with rows and checks"


def spec():
    import yaml

    return yaml.safe_load((REPO / "products" / "flights_daily.yaml").read_text())


def count_checks(columns, checks) -> int:
    return sum(len(c.get("checks") or []) for c in columns) + len(checks or [])


def check_sets(columns, checks) -> dict[int, tuple[list, list]]:
    """{n: (columns, checks)} with exactly n checks: 1, 5, 10 (the product's), 20."""
    def strip(cols):
        return [{k: v for k, v in c.items() if k != "checks"} for c in cols]

    by_name = {c["name"]: c for c in columns}
    one = (strip(columns), [{"row_count": {"threshold": {"must_be_greater_than": 0}}}])
    five_cols = strip(columns)
    for c in five_cols:
        if c["name"] in ("flight_date", "carrier"):
            c["checks"] = [{"missing": None}]
        if c["name"] == "on_time_pct":
            c["checks"] = [by_name["on_time_pct"]["checks"][0]]
    five = (five_cols, [checks[0], checks[1]])
    ten = (copy.deepcopy(columns), copy.deepcopy(checks))
    twenty_cols = copy.deepcopy(columns)
    for c in twenty_cols:
        c["checks"] = (c.get("checks") or []) + copy.deepcopy(EXTRA_COLUMN_CHECKS.get(c["name"], []))
    twenty = (twenty_cols, copy.deepcopy(checks) + copy.deepcopy(EXTRA_DATASET_CHECKS))
    sets = {"1": one, "5": five, "10": ten, "20": twenty,
            "1 (duplicate only)": (strip(columns), [c for c in checks if "duplicate" in c]),
            "9 (product's without duplicate)": (copy.deepcopy(columns),
                                                [c for c in checks if "duplicate" not in c])}
    for label, (cols, chks) in sets.items():
        got = count_checks(cols, chks)
        if got != int(label.split()[0]):
            raise RuntimeError(f"check set {label} has {got} checks")
    return sets


def base_rows(con, product_spec) -> None:
    """Table ``base``: the product's real output over the whole of 2013 (5,432 rows)."""
    from dag_factory.demo.seed import package_data

    source = package_data()
    work = Path(tempfile.mkdtemp(prefix="bench-gate-src-"))
    try:
        with zipfile.ZipFile(source / "flights.csv.zip") as archive:
            member = next(n for n in archive.namelist() if n.endswith(".csv"))
            archive.extract(member, work)
        flights = work / member
        con.execute(f"create view flights as select * from read_csv('{flights}', nullstr='NA')")
        con.execute(f"create view airlines as select * from read_csv('{source / 'airlines.csv'}')")
        columns = product_spec["output"]["columns"]
        select = ", ".join(f'cast("{c["name"]}" as {c["data_type"]}) as "{c["name"]}"' for c in columns)
        con.execute(f"create table base as select {select} from ({product_spec['transform']['sql']})",
                    {"data_interval_start": "2013-01-01", "data_interval_end": "2014-01-01"})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_staged(con, rows: int, target: Path) -> None:
    """N rows: copies of ``base`` with flight_date shifted 365 days per copy, zstd Parquet."""
    base = con.execute("select count(*) from base").fetchone()[0]
    copies = -(-rows // base)
    con.execute(
        f"copy (select base.* replace (flight_date + cast(k * {BASE_DAYS} as integer) as flight_date) "
        f"from base, range({copies}) r(k) order by k, flight_date, carrier limit {rows}) "
        f"to '{target}' (format parquet, compression zstd)")


def gate_once(staged: Path, columns, checks, rows_expected: int) -> dict[str, float]:
    """The gate as QualityGateOperator.run does it; seconds per part."""
    from dag_factory.engines import duckdb as engine
    from dag_factory.quality.contract import SCHEMA, contract_yaml, staged_table
    from dag_factory.quality.gate import measure_columns, verify

    t0 = time.perf_counter()
    con = engine.connect()
    try:
        table = f"{engine.quote_ident(SCHEMA)}.{engine.quote_ident(staged_table(PRODUCT))}"
        con.execute(f"create table {table} as select * from read_parquet('{staged}')")
        rows = con.execute(f"select count(*) from {table}").fetchone()[0]
        t1 = time.perf_counter()
        result = verify(con, contract_yaml(PRODUCT, columns, checks), rows)
        t2 = time.perf_counter()
        measure_columns(con, table, [c["name"] for c in columns])
        t3 = time.perf_counter()
    finally:
        con.close()
    if rows != rows_expected or result.outcome == "fail" or \
            len(result.checks) != count_checks(columns, checks):
        raise RuntimeError(f"gate on {rows} rows: {result.outcome}, {result.summary()}, "
                           f"{len(result.checks)} checks; errors {result.errors[:3]}; failed: "
                           + "; ".join(c.describe() for c in result.checks if c.outcome == "failed"))
    return {"load": t1 - t0, "soda": t2 - t1, "metrics": t3 - t2, "total": t3 - t0}


def free_gb() -> float:
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) for line in f}
    return info["MemAvailable"] / 1024 / 1024


def load() -> str:
    la = os.getloadavg()
    return f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f}"


def fit(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return my - b * mx, b


def run_round_robin(variants: dict, repeats: int, label: str) -> dict:
    results = {k: [] for k in variants}
    loads = []
    for r in range(repeats):
        for key, fn in variants.items():
            results[key].append(fn())
            loads.append(os.getloadavg()[0])
            print(f"  {label} {key}: repeat {r + 1}: {results[key][-1]['total']:.3f}s "
                  f"(soda {results[key][-1]['soda']:.3f}s), load1 {loads[-1]:.2f}",
                  file=sys.stderr, flush=True)
    med = {k: {part: statistics.median(m[part] for m in v) for part in v[0]}
           for k, v in results.items()}
    return med, (min(loads), max(loads))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="stop at 10^6 rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one 10^6-row gate")
    args = parser.parse_args()
    os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
    import logging

    import duckdb

    logging.disable(logging.WARNING)
    product_spec = spec()
    columns, checks = product_spec["output"]["columns"], product_spec["output"]["checks"]
    sizes = [10 ** 4, 10 ** 5, 10 ** 6]
    note = ""
    if not args.quick:
        if free_gb() >= 4:
            sizes.append(10 ** 7)
        else:
            note = f"10^7 skipped: only {free_gb():.1f} GB free"
    work = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    try:
        con = duckdb.connect()
        con.execute("SET threads TO 2")
        base_rows(con, product_spec)
        staged = {}
        for n in sizes:
            staged[n] = work / f"staged_{n}.parquet"
            write_staged(con, n, staged[n])
        con.close()
        print(f"# bench/gate.py: product {PRODUCT} output ({count_checks(columns, checks)} checks), "
              f"{args.repeats} round-robin repeats after one warm-up; free memory "
              f"{free_gb():.1f} GB; load before: {load()}", flush=True)
        gate_once(staged[sizes[0]], columns, checks, sizes[0])  # warm-up: Soda imports
        med, loads = run_round_robin(
            {n: (lambda n=n: gate_once(staged[n], columns, checks, n)) for n in sizes},
            args.repeats, "rows")
        print(f"\n## Gate time vs rows (product's {count_checks(columns, checks)} checks; "
              f"medians; load1 {loads[0]:.2f}-{loads[1]:.2f})\n")
        print("| rows | load (s) | soda verify (s) | metrics (s) | gate total (s) | rows/s (total) | ms per check (soda) | x per decade (total) |")
        print("|-----:|---------:|----------------:|------------:|---------------:|---------------:|--------------------:|---------------------:|")
        prev = None
        nchecks = count_checks(columns, checks)
        for n in sizes:
            m = med[n]
            growth = f"{m['total'] / prev:.2f}" if prev else "-"
            prev = m["total"]
            print(f"| {n:,} | {m['load']:.3f} | {m['soda']:.3f} | {m['metrics']:.3f} | {m['total']:.3f} | "
                  f"{n / m['total']:,.0f} | {1000 * m['soda'] / nchecks:.1f} | {growth} |")
        a, b = fit(sizes, [med[n]["total"] for n in sizes])
        sa, sb = fit(sizes, [med[n]["soda"] for n in sizes])
        print(f"\nfit total = {a:.3f}s + {b * 1e6:.3f}s per million rows; "
              f"soda = {sa:.3f}s + {sb * 1e6:.3f}s per million rows. {note}")
        print(f"target: {TARGET_TEXT}")

        sets = check_sets(columns, checks)
        n = 10 ** 6
        med_c, loads = run_round_robin(
            {k: (lambda k=k: gate_once(staged[n], sets[k][0], sets[k][1], n)) for k in sets},
            args.repeats, "checks")
        print(f"\n## Gate time vs checks at {n:,} rows (medians; load1 {loads[0]:.2f}-{loads[1]:.2f})\n")
        print("| checks | load (s) | soda verify (s) | metrics (s) | gate total (s) | ms per check (soda) |")
        print("|-------:|---------:|----------------:|------------:|---------------:|--------------------:|")
        for k in sets:
            m = med_c[k]
            print(f"| {k} | {m['load']:.3f} | {m['soda']:.3f} | {m['metrics']:.3f} | {m['total']:.3f} | "
                  f"{1000 * m['soda'] / int(k.split()[0]):.1f} |")
        plain = [k for k in sets if k.isdigit()]
        ca, cb = fit([int(k) for k in plain], [med_c[k]["soda"] for k in plain])
        print(f"\nfit soda = {ca:.3f}s + {cb * 1000:.1f} ms per check (at {n:,} rows); load after: {load()}")
        print(f"target: {TARGET_TEXT}")
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            gate_once(staged[n], columns, checks, n)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
            print(f"\n## cProfile of one {n:,}-row gate (cumulative, top 25)\n{out.getvalue()}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
