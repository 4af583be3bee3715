"""The SLO state a failure leaves a product in, for the failure message (docs/alerts.md).

A failure callback runs before Airflow marks the DAG run failed, and it may not touch the
metadata DB. So the callback reads the product's run records from the plugin's JSON API
(``GET /dataproducts/products/{name}``, :mod:`dag_factory.slo.api_client`), replaces (or adds)
the record of its own run with a failed one, and runs the SLO engine
(:func:`dag_factory.slo.engine.compute`) on them with the spec's targets. The result is a
plain, JSON-ready dict (:func:`status_json`), rendered as text by :func:`state_lines`.

When the API is not configured or does not answer, there is no state, only the reason
(``no [dataproducts] api_conn_id configured``, ``API error: HTTP 503 from GET ...``); nothing
here raises into the callback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

from dag_factory.slo.engine import SloStatus, SloTargets, compute
from dag_factory.slo.jsonable import to_jsonable

log = logging.getLogger(__name__)

#: (product, run_id, task_id, try_number) -> (state, reason): the email and webhook notifiers
#: of one failure run one after the other in the same process; they show the same state and
#: the API is asked once.
_CACHE: "OrderedDict[tuple, tuple[dict | None, str | None]]" = OrderedDict()
_CACHE_SIZE = 32
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class FailedRun:
    """What the callback knows about the failed run.

    Attributes:
        run_id, task_id, stage: the failed task and its DAG run.
        partition_start, partition_end: its data interval (aware), or None when it has none.
        run_after: when Airflow made the run due (aware) or None; started_at: when it started.
        gate: this run's quality gate outcome (``pass``/``warn``/``fail``) or None.
        error: the error text (already redacted); log_url: the failed try's log (redacted).
        try_number: the failed try (cache key only).
    """

    run_id: str
    task_id: str
    stage: str
    partition_start: dt.datetime | None = None
    partition_end: dt.datetime | None = None
    run_after: dt.datetime | None = None
    started_at: dt.datetime | None = None
    gate: str | None = None
    error: str | None = None
    log_url: str | None = None
    try_number: int | None = None


def targets_of(profile: Any) -> SloTargets:
    """The :class:`SloTargets` of a :class:`~dag_factory.alerts.message.ProductProfile` (its
    ``freshness``, ``success_rate``, ``quality_pass_rate`` and ``window`` strings).

    Raises:
        ValueError: a malformed duration or percentage (a validated spec has none).
    """
    return SloTargets.from_spec(profile)


def state_after_failure(profile: Any, failed: FailedRun, *, client: Any = None,
                        now: dt.datetime | None = None) -> tuple[dict | None, str | None]:
    """The product's SLO state once ``failed`` counts as a failed run.

    Args:
        profile: the product's ``ProductProfile`` (name and SLO targets).
        failed: the failed run.
        client: a :class:`~dag_factory.slo.api_client.DataProductsApi`; None builds one from
            ``[dataproducts] api_conn_id``.
        now: the evaluation moment (aware); default the current time.

    Returns:
        ``(state, None)`` with ``state`` as :func:`status_json` (plus ``runs_counted``), or
        ``(None, reason)`` with a one-line reason without secrets. Never raises.
    """
    key = (profile.name, failed.run_id, failed.task_id, failed.try_number)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    result = _state_after_failure(profile, failed, client, now)
    with _CACHE_LOCK:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result


def _state_after_failure(profile, failed: FailedRun, client, now) -> tuple[dict | None, str | None]:
    from dag_factory.slo.api_client import ApiError, ApiNotConfigured, DataProductsApi
    from dag_factory.slo.api_client import parse_time, records_from_json

    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        targets = targets_of(profile)
        if client is None:
            client = DataProductsApi.from_config()
        detail = client.get_product(profile.name)
    except ApiNotConfigured as exc:
        return None, exc.reason
    except ApiError as exc:
        return None, f"API error: {exc.reason}"
    except Exception as exc:  # noqa: BLE001 - the alert goes out whatever happens here
        log.warning("SLO state of %s not computed: %s", profile.name, type(exc).__name__)
        return None, f"not computed ({type(exc).__name__})"
    if "runs" not in detail:
        return None, "the API has no run history for this product (invalid spec?)"
    try:
        records, _ = records_from_json(detail.get("runs") or [])
        mine = next((r for r in records if r.run_id == failed.run_id), None)
        record = _failed_record(failed, mine, now)
        if record is None:
            return None, ("this run has no data interval, so it cannot be placed in the SLO "
                          "window")
        records = [r for r in records if r.run_id != failed.run_id] + [record]
        freshness = (detail.get("slo") or {}).get("freshness") or {}
        status = compute(targets, records, now,
                         last_published_at=parse_time(freshness.get("last_published_at")))
    except Exception as exc:  # noqa: BLE001 - a malformed answer must not lose the alert
        log.warning("SLO state of %s not computed: %s", profile.name, type(exc).__name__)
        return None, f"not computed from the API's answer ({type(exc).__name__})"
    state = status_json(status)
    state["window"] = profile.window
    state["runs_counted"] = len(records)
    return state, None


def _failed_record(failed: FailedRun, mine, now: dt.datetime):
    """This run as a failed record: the API's record of it (partition, due time, publish time:
    an export failure comes after the publish) with the failure set, else one from the
    callback's context. None when neither places the partition."""
    from dag_factory.slo.history import RunRecord

    failure = dict(state="failed", failed_stage=failed.stage, failed_task=failed.task_id,
                   error=failed.error, log_url=failed.log_url, failing_checks=None)
    if mine is not None:
        return dataclasses.replace(mine, gate=failed.gate or mine.gate, **failure)
    if failed.partition_start is None or failed.partition_end is None:
        return None
    return RunRecord(run_id=failed.run_id, partition_start=failed.partition_start,
                     partition_end=failed.partition_end,
                     due_at=failed.run_after or failed.partition_end, gate=failed.gate,
                     started_at=failed.started_at or failed.run_after or now, **failure)


# -- plain data ----------------------------------------------------------------------------------

_STATE_KEYS = ("state", "reasons", "evaluated_at", "window_seconds", "success_rate",
               "quality_pass_rate", "freshness")


def _last_failure(record: Mapping[str, Any] | None) -> dict | None:
    if not record:
        return None
    from dag_factory.alerts.message import safe_url, scrub_urls

    error = record.get("error")
    log_url = record.get("log_url")
    return {"run_id": record.get("run_id"), "failed_stage": record.get("failed_stage"),
            "failed_task": record.get("failed_task"),
            "partition_start": record.get("partition_start"),
            "partition_end": record.get("partition_end"),
            "error": scrub_urls(str(error))[:500] if error else None,
            "log_url": safe_url(log_url) if log_url else None}


def status_json(status: SloStatus) -> dict[str, Any]:
    """An engine :class:`~dag_factory.slo.engine.SloStatus` as the alert's ``slo_state``.

    Returns:
        ``{"state", "reasons", "evaluated_at", "window_seconds", "success_rate",
        "quality_pass_rate", "freshness", "last_failure"}``: the engine's fields (rates and
        targets as fractions, durations in seconds, times in ISO 8601), ``last_failure``
        reduced to run, stage, task, partition, error and log URL.
    """
    return compact_state(to_jsonable(status))


def compact_state(slo: Mapping[str, Any]) -> dict[str, Any]:
    """The ``slo`` object of the plugin's JSON (the engine's fields, :func:`status_json`
    shape) with ``last_failure`` reduced as there."""
    state = {key: slo.get(key) for key in _STATE_KEYS}
    state["last_failure"] = _last_failure(slo.get("last_failure"))
    return state


# -- text ----------------------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """``30d`` (whole days), ``26h``/``30.5h``, ``45m``, ``20s``; ``?`` for None."""
    if seconds is None:
        return "?"
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}".rstrip("0").rstrip(".") + "h"
    if seconds >= 120:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


def percent(fraction: float | None) -> str:
    """``0.9667`` -> ``96.7%``, ``0.99`` -> ``99%``; ``?`` for None."""
    if fraction is None:
        return "?"
    return f"{fraction * 100:.1f}".rstrip("0").rstrip(".") + "%"


def _number(value: float) -> str:
    return f"{round(value, 2):g}"


def _ratio_line(label: str, unit: str, verb: str, sli: Mapping[str, Any]) -> str:
    target = sli.get("target")
    goal = f"target {percent(target)}" if target is not None else "no target"
    events = (sli.get("good") or 0) + (sli.get("bad") or 0)
    extras = [f"{sli[k]} {k}" for k in ("warned", "pending", "late") if sli.get(k)]
    if not events:
        counted = f"no {unit.rstrip('s')} due in the window has a result yet"
        return f"{label}: {counted}" + (f" ({', '.join(extras)})" if extras else "") + f" ({goal})"
    counts = f"{sli.get('good')} of {events} {unit} {verb}" + "".join(f", {e}" for e in extras)
    line = f"{label} {percent(sli.get('rate'))} ({counts}; {goal})"
    budget = sli.get("error_budget")
    parts = []
    if budget:
        parts.append(f"error budget {_number(budget['allowed'])} misses, {budget['misses']} used, "
                     f"{_number(budget['remaining'])} left")
    rates = sli.get("burn_rates") or {}
    burns = [f"{rates[w]['rate']:.3g}x over {duration(rates[w]['window_seconds'])}"
             for w in ("window", "long", "short") if (rates.get(w) or {}).get("rate") is not None]
    if burns:
        parts.append("burn rate " + ", ".join(burns) + (" (fast burn)" if sli.get("fast_burn")
                                                       else ""))
    return line + (": " + "; ".join(parts) if parts else "")


def _freshness_line(fresh: Mapping[str, Any]) -> str:
    target = fresh.get("target_seconds")
    goal = f"target {duration(target)}" if target is not None else "no target"
    age = fresh.get("age_seconds")
    measured = (f"last publish {duration(age)} ago" if age is not None
                else "nothing published yet")
    verdict = {True: "met", False: "BREACHED", None: "not measured"}[fresh.get("met")]
    return f"freshness: {measured} ({goal}): {verdict}"


def state_lines(state: Mapping[str, Any]) -> list[str]:
    """The ``slo_state`` as indented text lines (without the heading): one per SLI, then one
    per reason for the state. Example::

        - success rate 50% (1 of 2 partitions published, 1 warned; target 99%): error budget
          0.02 misses, 1 used, -0.98 left; burn rate 50x over 30d, 50x over 5d (fast burn)
        - freshness: last publish 2m ago (target 26h): met
        - why: success rate: 50% below the 99% target (1 of 2 missed)
    """
    lines = []
    if state.get("success_rate"):
        lines.append(_ratio_line("success rate", "partitions", "published", state["success_rate"]))
    if state.get("quality_pass_rate"):
        lines.append(_ratio_line("quality pass rate", "gates", "passed",
                                 state["quality_pass_rate"]))
    if state.get("freshness"):
        lines.append(_freshness_line(state["freshness"]))
    lines += [f"why: {reason}" for reason in state.get("reasons") or ()]
    return [f"  - {line}" for line in lines]
