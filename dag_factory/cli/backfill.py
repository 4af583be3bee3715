"""``dataproducts backfill NAME --from D --to D [--dry-run] [--wait]``: a paced backfill through
Airflow's REST API, as the user whose credentials are given (the API authorizes it)."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time

from dag_factory.backfill.client import AirflowApi, ApiError, progress, token_for
from dag_factory.backfill.config import PacingConfig
from dag_factory.backfill.estimate import estimate, median_run_seconds

DEFAULT_API_URL = "http://localhost:8080"


def add_parser(sub, date_type) -> None:
    """Register the ``backfill`` sub-command on ``sub`` (argparse sub-parsers)."""
    p = sub.add_parser(
        "backfill", help="start a paced backfill through Airflow's REST API",
        description="Create an Airflow backfill of a product for the days FROM..TO (inclusive), "
                    "paced by the spec's backfill block. Credentials: DATAPRODUCTS_API_TOKEN, or "
                    "--username with the password in DATAPRODUCTS_API_PASSWORD.")
    p.add_argument("name", help="the product (its dag_id)")
    p.add_argument("--from", dest="start", type=date_type, required=True, help="first day")
    p.add_argument("--to", dest="end", type=date_type, required=True, help="last day (included)")
    p.add_argument("--reprocess", choices=("none", "failed", "completed"), default="none",
                   help="re-run days that already have a run: none (default), failed, completed")
    p.add_argument("--dry-run", action="store_true", help="count the runs and estimate; create nothing")
    p.add_argument("--wait", action="store_true", help="follow progress until the backfill ends")
    p.add_argument("--poll", type=float, default=15.0, help="seconds between progress lines (--wait)")
    p.add_argument("--api-url", default=os.environ.get("DATAPRODUCTS_API_URL", DEFAULT_API_URL),
                   help=f"Airflow's base URL (env DATAPRODUCTS_API_URL, default {DEFAULT_API_URL})")
    p.add_argument("--username", default=os.environ.get("DATAPRODUCTS_API_USERNAME"),
                   help="log in as this user (password in env DATAPRODUCTS_API_PASSWORD)")
    p.set_defaults(func=cmd_backfill)


def connect(args) -> AirflowApi:
    """The API client from the arguments and environment.

    Raises:
        SystemExit: no credentials given.
        ApiError: login refused or server unreachable.
    """
    token = os.environ.get("DATAPRODUCTS_API_TOKEN")
    if not token:
        password = os.environ.get("DATAPRODUCTS_API_PASSWORD")
        if not (args.username and password):
            raise SystemExit("no Airflow credentials: set DATAPRODUCTS_API_TOKEN, or pass "
                             "--username and set DATAPRODUCTS_API_PASSWORD")
        token = token_for(args.api_url, args.username, password)
    return AirflowApi(args.api_url, token)


def pacing_for(args, name: str) -> PacingConfig:
    """The product's pacing from the local products folder, or the spec defaults (with a
    note) when the folder does not have it."""
    from dag_factory.cli.main import _folder
    from dag_factory.spec.loading import load_products

    try:
        specs = load_products(_folder(args)).products
    except SystemExit:
        specs = {}
    if name in specs:
        return PacingConfig.from_spec(specs[name].spec)
    print(f"note: {name} is not in the local products folder; estimating with the default "
          "backfill settings (the scheduler applies the real ones)", file=sys.stderr)
    return PacingConfig(product=name)


def plan_for(api: AirflowApi, args, runs: int):
    """``(pacing, Estimate, basis)``: from the plugin's estimate route (the deployment's spec
    and the median of the product's recent runs, measured without pacing waits), else from the
    local spec with an assumed run time when the plugin does not answer."""
    from dag_factory.backfill.estimate import Estimate

    try:
        answer = api.call("GET", f"/dataproducts/products/{args.name}/backfill/estimate",
                          f"estimate for {args.name}", params={"runs": runs})
    except ApiError as exc:
        pacing = pacing_for(args, args.name)
        assumed = median_run_seconds([])
        return pacing, estimate(pacing, runs, assumed, dt.datetime.now(dt.timezone.utc)), \
            f"assumed: the plugin's estimate is unavailable ({exc.status or exc.detail})"
    pacing = PacingConfig.from_mapping(answer["pacing"])
    got = answer["estimate"]
    plan = Estimate(runs=got["runs"], run_seconds=got["run_seconds"],
                    concurrency=got["concurrency"], ideal_seconds=got["ideal_seconds"],
                    paced_seconds=got["paced_seconds"],
                    finishes_at=dt.datetime.fromisoformat(got["finishes_at"]))
    count = answer.get("median_of_runs", 0)
    basis = f"median of {count} successful runs" if count else "no run history: assumed"
    return pacing, plan, basis


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours or days else []
    return " ".join(parts + [f"{minutes}m", f"{secs:02d}s"])


def cmd_backfill(args) -> int:
    """Dry-run or create (and optionally follow) a backfill; 1 when a run failed or the API
    refused, 0 otherwise."""
    if args.end < args.start:
        raise SystemExit(f"--to {args.end} is before --from {args.start}")
    try:
        api = connect(args)
        dates = api.dry_run(args.name, args.start, args.end, args.reprocess,
                            pacing_for(args, args.name).max_active_runs)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    pacing, plan, basis = plan_for(api, args, len(dates))
    print(f"{args.name}: {len(dates)} run(s) for {args.start} .. {args.end} "
          f"(reprocess {args.reprocess})")
    print(f"  pacing: max_active_runs {pacing.max_active_runs}, pool_slots {pacing.pool_slots}, "
          f"allowed_hours {pacing.allowed_hours or 'any'} UTC, "
          f"max_runs_per_hour {pacing.max_runs_per_hour or 'unlimited'}")
    print(f"  run time {_duration(plan.run_seconds)} ({basis}); estimate "
          f"{_duration(plan.paced_seconds)} (ideal {_duration(plan.ideal_seconds)} at "
          f"{plan.concurrency} at once), ends about {plan.finishes_at:%Y-%m-%d %H:%M} UTC")
    if args.dry_run or not dates:
        return 0
    try:  # the spec's limit (the cluster policy holds the backfill to it anyway)
        backfill = api.create(args.name, args.start, args.end, args.reprocess,
                              pacing.max_active_runs)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"backfill {backfill['id']} created: {args.api_url.rstrip('/')}/dags/{args.name}")
    return follow(api, backfill, args.poll) if args.wait else 0


def follow(api: AirflowApi, backfill: dict, poll: float, stream=sys.stdout) -> int:
    """Print a progress line every ``poll`` seconds until the backfill completes; 1 when a
    run failed."""
    started = dt.datetime.fromisoformat(backfill["created_at"])
    while True:
        current = api.backfill(backfill["id"])
        state = progress(api.backfill_runs(current), started, dt.datetime.now(dt.timezone.utc))
        eta = f", ETA {state.eta:%H:%M:%S} UTC" if state.eta else ""
        print(f"  {state.done}/{state.total} done, {state.running} running, {state.queued} "
              f"queued, {state.failed} failed{eta}"
              f"{' (paused)' if current.get('is_paused') else ''}", file=stream, flush=True)
        if current.get("completed_at") or (state.total and state.finished):
            return 1 if state.failed else 0
        time.sleep(poll)
