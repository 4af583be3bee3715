"""DagBag parse-time benchmark: how long Airflow takes to build the DAGs of N data products.

What it measures
----------------
For each size N (default 10, 100, 1000) and each *variant* (default: ``dataproducts``, this
project's YAML factory), the script generates a temporary DAGs folder holding N products and
fills an Airflow ``DagBag`` from it, the way the DAG processor parses a DAGs folder:

* the ``dataproducts`` variant writes N copies of ``products/flights_daily.yaml`` renamed
  ``flights_daily_0001`` ... plus a copy of the loader ``products/load_products.py`` (and
  ``products/transforms/`` when the product reads a ``transform.file``);
* each N runs in a **fresh Python subprocess** (nothing imported is shared between sizes) with
  ``AIRFLOW_HOME`` in a temporary directory, ``AIRFLOW__CORE__LOAD_EXAMPLES=false`` and
  ``AIRFLOW__CORE__DAGS_FOLDER`` / ``AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER`` pointing at the
  generated folder. Other ``AIRFLOW__*`` variables of the caller pass through (e.g.
  ``AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT``, 30 s by default, which bounds one file's parse);
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
     0 import errors and no ``invalid-spec`` placeholder DAG (what dag_factory builds, under
     the product's own dag_id, for a product file that fails validation) is an **error**: the
     script reports it and exits 1.

Targets are printed beside the figures but a missed target never changes the exit code (only
errors do). ``--profile`` runs one more subprocess for N=100 (``--profile-size``) and prints the
top 15 cumulative entries of ``cProfile`` for one warm fill (``--profile-cold`` profiles the
cold fill instead, i.e. with the ``dag_factory`` imports).

Adding a variant (e.g. astronomer's dag-factory, hand-written Python DAGs): write a function
``generate(folder: Path, n: int) -> list[str]`` that fills ``folder`` with an N-product DAGs
folder and returns the DAG ids it must yield, and register it in ``VARIANTS``. ``TARGETS`` already
holds the comparisons planned against those variant names.

Usage (from the repo root)::

    .venv/bin/python bench/parse.py                      # N = 10, 100, 1000
    .venv/bin/python bench/parse.py --sizes 10,100 --profile
    .venv/bin/python bench/parse.py --json results.json  # also write the raw figures
"""

from __future__ import annotations

import argparse
import json
import os
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

# Only the standard library is imported at module level: the measuring subprocess runs this
# same file, and must not have airflow or dag_factory imported before it starts timing.

REPO = Path(__file__).resolve().parent.parent
PRODUCTS = REPO / "products"
TEMPLATE_PRODUCT = PRODUCTS / "flights_daily.yaml"
LOADER = PRODUCTS / "load_products.py"

DEFAULT_SIZES = (10, 100, 1000)
PROFILE_TOP = 15


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


@dataclass(frozen=True)
class Variant:
    """A way of writing N products as an Airflow DAGs folder.

    Attributes:
        generate: fills the folder with N products; returns the DAG ids the folder must yield.
        profile_focus: (label, file path suffix, function name) of the functions whose
            cumulative profile time ``--profile`` summarises, as a share of the whole fill.
    """

    name: str
    generate: Callable[[Path, int], list[str]]
    description: str
    profile_focus: tuple[tuple[str, str, str], ...] = ()


VARIANTS: dict[str, Variant] = {
    v.name: v for v in [
        Variant("dataproducts", generate_dataproducts,
                "this project: N YAML product files + products/load_products.py",
                profile_focus=(
                    ("build_dags (the whole loader)", "dag_factory/build/folder.py", "build_dags"),
                    ("  load_products: read + validate all files", "dag_factory/spec/loading.py",
                     "load_products"),
                    ("    YAML parse with line marks", "dag_factory/spec/yaml_marks.py", "load_marked"),
                    ("    pydantic ProductSpec validation", "pydantic/main.py", "model_validate"),
                    ("    Soda contract JSON Schema check", "dag_factory/spec/soda_schema.py",
                     "soda_contract_errors"),
                    ("  build_product_dag: DAG + tasks", "dag_factory/build/dag.py", "build_product_dag"),
                )),
        # Planned: Variant("astronomer_dag_factory", ...), Variant("python_dags", ...).
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
    Target("dataproducts", "astronomer_dag_factory", 1 / 3, "3x faster than astronomer dag-factory"),
    # ... and within 1.5x of the same DAGs written by hand in Python.
    Target("dataproducts", "python_dags", 1.5, "within 1.5x of hand-written Python DAGs"),
]
STANDALONE_TARGET = "document the figures"

# A DAG carrying one of these tags stands for a product that failed to load (dag_factory's
# placeholder for an invalid spec keeps the product's dag_id): an error, like an import error.
INVALID_TAGS = {"invalid-spec"}


# --- the measuring subprocess ----------------------------------------------------------------

def _child(folder: str, repeats: int, result_path: str,
           profile_path: str | None, profile_cold: bool) -> None:
    """Runs in a fresh interpreter: measure the DagBag fills of ``folder``; write JSON results."""
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

    fills: list[dict] = []
    gc_time = [0.0, None]  # seconds spent in the cyclic GC (all generations), start of current

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        elif gc_time[1] is not None:
            gc_time[0] += time.perf_counter() - gc_time[1]
            gc_time[1] = None

    gc.callbacks.append(on_gc)

    def fill(kind: str, profiler=None) -> float:
        gc.collect()  # not timed: start each fill from the same collected heap
        if profiler:
            profiler.enable()
        gc_time[0] = 0.0
        start, cpu_start = time.perf_counter(), time.process_time()
        bag = DagBag(folder)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if profiler:
            profiler.disable()
        fills.append({"kind": kind, "seconds": seconds, "cpu_seconds": cpu, "gc_seconds": gc_time[0],
                      "dags": len(bag.dags), "dag_ids": sorted(bag.dags),
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

    result: dict = {"airflow_import_s": airflow_import_s, "rss_before_mb": rss_before,
                    "import_timeout_s": conf.getfloat("core", "dagbag_import_timeout")}
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


def run_size(variant: Variant, n: int, repeats: int, *, profile_path: Path | None = None,
             profile_cold: bool = False, keep: bool = False) -> dict:
    """Generate the folder for (variant, N) and measure it in a fresh subprocess."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-parse-{variant.name}-{n}-"))
    try:
        folder = work / "dags"
        home = work / "airflow_home"
        folder.mkdir()
        home.mkdir()
        started = time.perf_counter()
        expected_ids = variant.generate(folder, n)
        expected = len(expected_ids)
        _progress(f"{variant.name} N={n}: generated {folder} in {time.perf_counter() - started:.1f}s")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
            "AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER": str(folder),
            "PYTHONHASHSEED": "0",
        }
        result_path = work / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", str(folder),
               "--repeats", str(repeats), "--_result", str(result_path)]
        if profile_path:
            cmd += ["--_profile-out", str(profile_path)] + (["--profile-cold"] if profile_cold else [])
        what = "profiled fill" if profile_path else f"cold + {repeats} warm + traced fills"
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
            if missing or unexpected or f["import_errors"] or f["invalid"]:
                details = [f"  import error in {path}:\n{msg}" for path, msg in f["import_errors"].items()]
                details += [f"  invalid product DAG {dag_id}: {doc}" for dag_id, doc in
                            list(f["invalid"].items())[:3]]
                raise BenchError(
                    f"{variant.name} N={n}: {f['kind']} fill found {f['dags']} DAGs (expected "
                    f"{expected}), {len(f['import_errors'])} import error(s), {len(f['invalid'])} "
                    f"invalid-spec DAG(s), missing {missing[:5]}, unexpected {unexpected[:5]}\n"
                    + "\n".join(details) + f"\n--- subprocess log (tail) ---\n{log[-3000:]}")
            del f["dag_ids"]  # checked; keep the --json output small
        result.update(variant=variant.name, n=n, expected_dags=expected, load_before=load_before,
                      load_after=os.getloadavg()[0])
        if keep:
            _progress(f"kept {work}")
        return result
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


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
        ratio = rows_by_variant[variant][n]["median_ms"] / base["median_ms"]
        cells.append(f"{ratio:.2f}x the time of {t.baseline} (target {t.text}, i.e. "
                     f"<= {t.max_ratio:.2f}x: {'met' if ratio <= t.max_ratio else 'MISSED'})")
    return "; ".join(cells) or STANDALONE_TARGET


def print_report(rows: list[dict], repeats: int) -> None:
    by_variant: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_variant.setdefault(r["variant"], {})[r["n"]] = r
    print()
    print(f"DagBag fill times ({repeats} warm fills per N, each a new DagBag in the same process):")
    print("  total ms  wall-clock median of the warm fills (best ms: the fastest one); ms/prod = total / N")
    print("  CPU ms    median process CPU time of the warm fills (less sensitive to other load)")
    print("  GC ms     median time spent in Python's cyclic garbage collector during the warm fills")
    print("  cold ms   the first fill of the process (also imports dag_factory and its dependencies)")
    print("  RSS MB    peak RSS of the process; traced MB: tracemalloc peak of one extra fill")
    print("  load      1-minute load average of the machine when the size started")
    print()
    header = (f"{'variant':<14} {'N':>5} {'DAGs':>5} {'total ms':>9} {'best ms':>8} {'CPU ms':>8} "
              f"{'GC ms':>6} {'ms/prod':>8} {'cold ms':>8} {'RSS MB':>7} {'traced MB':>9} {'load':>5}  target")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['variant']:<14} {r['n']:>5} {r['dags']:>5} {r['median_ms']:>9.0f} "
              f"{r['best_ms']:>8.0f} {r['cpu_median_ms']:>8.0f} {r['gc_median_ms']:>6.0f} {r['per_product_ms']:>8.2f} "
              f"{r['cold_ms']:>8.0f} {r['rss_peak_mb']:>7.0f} {r['traced_peak_mb']:>9.1f} "
              f"{r['load']:>5.1f}  {_targets_text(r['variant'], by_variant, r['n'])}")
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
    parser.add_argument("--profile", action="store_true",
                        help=f"also cProfile one fill and print the top {PROFILE_TOP} cumulative entries")
    parser.add_argument("--profile-size", type=int, default=100, help="N to profile (default: 100)")
    parser.add_argument("--profile-cold", action="store_true",
                        help="profile the cold fill (with the dag_factory imports) instead of a warm one")
    parser.add_argument("--profile-out", type=Path, help="also keep the cProfile stats in this file")
    parser.add_argument("--json", type=Path, help="write the raw results to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders (prints where)")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_result", help=argparse.SUPPRESS)
    parser.add_argument("--_profile-out", dest="child_profile_out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._child:
        _child(args._child, args.repeats, args._result,
               args.child_profile_out, args.profile_cold)
        return 0

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes: give at least one size >= 1")
    if args.repeats < 1:
        parser.error("--repeats: at least 1")
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; known: {list(VARIANTS)}")
    variants = [VARIANTS[v] for v in args.variants.split(",")]

    rows, raw = [], []
    try:
        for variant in variants:
            for n in sizes:
                result = run_size(variant, n, args.repeats, keep=args.keep)
                raw.append(result)
                rows.append(summarize(result))
        print_report(rows, args.repeats)
        if args.profile:
            for variant in variants:
                with tempfile.TemporaryDirectory(prefix="bench-parse-profile-") as tmp:
                    prof = args.profile_out or Path(tmp) / "parse.prof"
                    run_size(variant, args.profile_size, 1, profile_path=prof,
                             profile_cold=args.profile_cold, keep=args.keep)
                    print(f"\ncProfile of one {'cold' if args.profile_cold else 'warm'} DagBag fill, "
                          f"{variant.name} N={args.profile_size} (top {PROFILE_TOP} by cumulative time):")
                    print_profile(prof, variant)
    except BenchError as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "raw": raw}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
