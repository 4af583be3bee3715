"""One alert message per failure (or per quality-gate warning, or per freshness breach), built
from the Airflow task context.

The message says what an on-call engineer needs to act: product, stage, task, try, data
interval, the error (or, for a failed quality gate, the failing checks with the measured value
and the threshold), the owner, the runbook, the Airflow log URL, which SLIs the failure
counts against and the SLO state after this failure. It is built from the callback's task
context, the gate's result file and the plugin's JSON API (the run history, for the SLO state:
:mod:`dag_factory.alerts.slo_state`): no metadata-DB access (Airflow 3 forbids the ORM in tasks
and their callbacks).

The freshness watchdog (:mod:`dag_factory.alerts.freshness`) sends two more kinds:
``freshness`` (``[FRESHNESS]``, severity FAIL) when a product's newest publish is older than its
freshness target, and ``freshness_resolved`` (``[RESOLVED]``) when it is fresh again.

Secrets never appear: no connection is read here, every URL in an error text goes through
:func:`dag_factory.ingest.redact_url`, and so do the runbook and log URLs.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dag_factory.alerts.slo_state import (
    FailedRun, compact_state, duration, state_after_failure, state_lines,
)
from dag_factory.ingest import redact_url
from dag_factory.interval import NoDataInterval, resolve_data_interval
from dag_factory.operator_base import STAGES
from dag_factory.storage import quality_history_file

if TYPE_CHECKING:
    from dag_factory.spec.models import ProductSpec

FAILURE = "failure"
QUALITY_WARN = "quality_warn"
FRESHNESS = "freshness"
FRESHNESS_RESOLVED = "freshness_resolved"
KINDS = (FAILURE, QUALITY_WARN, FRESHNESS, FRESHNESS_RESOLVED)
#: Severity per kind (the ``X-Dataproducts-Severity`` header, the payload's ``severity``): a
#: breached freshness SLO is as actionable as a failed run (consumers read stale data now).
SEVERITY = {FAILURE: "FAIL", QUALITY_WARN: "WARN", FRESHNESS: "FAIL",
            FRESHNESS_RESOLVED: "RESOLVED"}
#: The subject's leading tag per kind.
TAG = {FAILURE: "FAIL", QUALITY_WARN: "WARN", FRESHNESS: "FRESHNESS",
       FRESHNESS_RESOLVED: "RESOLVED"}
_COLOR = {FAILURE: "#b00020", QUALITY_WARN: "#9a6700", FRESHNESS: "#b00020",
          FRESHNESS_RESOLVED: "#1a7f37"}
_SLACK_ICON = {FAILURE: ":red_circle:", QUALITY_WARN: ":warning:", FRESHNESS: ":hourglass:",
               FRESHNESS_RESOLVED: ":white_check_mark:"}

#: Longest error text kept in a message; the rest is in the task log.
MAX_ERROR_CHARS = 1500
#: Most checks listed per outcome (failed / warned); the rest are counted.
MAX_CHECKS = 20

_URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>()\[\]{}]+""")
_KEEP_LOG_URL_PARAMS = ("try_number",)


@dataclass(frozen=True)
class ProductProfile:
    """What an alert needs to know about a product, copied from its spec at DAG build time.

    Plain strings only, so a notifier holding it can be copied and pickled.

    Attributes:
        name: the product name (the dag_id); title, version: from the spec.
        owner_team, owner_email, runbook: ``owner`` block (runbook may be None).
        freshness, success_rate, quality_pass_rate: SLO targets as written in the spec
            (``"26h"``, ``"99%"``), None when absent; window: the SLO window (``"30d"``).
    """

    name: str
    title: str
    version: str
    owner_team: str
    owner_email: str
    runbook: str | None = None
    freshness: str | None = None
    success_rate: str | None = None
    quality_pass_rate: str | None = None
    window: str = "30d"

    @classmethod
    def from_spec(cls, spec: "ProductSpec") -> "ProductProfile":
        """The profile of a validated :class:`~dag_factory.spec.models.ProductSpec`."""
        return cls(name=spec.name, title=spec.title, version=spec.version,
                   owner_team=spec.owner.team, owner_email=spec.owner.email,
                   runbook=spec.owner.runbook, freshness=spec.slo.freshness,
                   success_rate=spec.slo.success_rate,
                   quality_pass_rate=spec.slo.quality_pass_rate, window=spec.slo.window)

    def slo_targets(self):
        """The targets as an engine :class:`~dag_factory.slo.engine.SloTargets`.

        Raises:
            ValueError: a malformed duration or percentage (a validated spec has none).
        """
        from dag_factory.slo.engine import SloTargets

        return SloTargets.from_spec(self)


@dataclass(frozen=True)
class AlertMessage:
    """One alert, renderable as a subject + text, HTML (email), Slack text and a JSON payload.

    Attributes:
        kind: ``failure`` (a task failed for good), ``quality_warn`` (the gate warned),
            ``freshness`` (the watchdog found the freshness SLO breached) or
            ``freshness_resolved`` (fresh again).
        product: the :class:`ProductProfile`.
        stage: ``ingest`` | ``transform`` | ``quality_gate`` | ``publish`` | ``export`` (or
            ``unknown``), ``freshness`` for the watchdog's kinds; task_id, run_id: the failed
            task and its DAG run (the watchdog's task and run for its kinds).
        try_number: the try that failed; max_tries: tries allowed (retries + 1), None if unknown.
        interval_start, interval_end: the data interval (ISO 8601), None if the run has none.
        error: ``"<ExceptionType>: <message>"``, trimmed and with URLs redacted, or None
            (a failed gate with a result shows its checks instead).
        quality: for the gate: ``{"outcome", "rows", "summary", "failed": [check...],
            "warned": [check...], "more_failed", "more_warned", "soda_errors": [...]}``,
            a check being ``{"name", "column", "type", "value", "threshold", "rows_tested",
            "percent"}`` (the last two for missing/invalid/duplicate counts); else None.
        log_url: the Airflow UI URL of the task try's log (redacted), or None.
        slo_impact: one line per SLI this failure counts against.
        slo_state: the product's SLO state (for ``failure``: after this failure, computed by
            :func:`dag_factory.alerts.slo_state.state_after_failure`; for the watchdog's kinds:
            as the API reported it), shape :func:`dag_factory.alerts.slo_state.status_json`;
            None when unavailable or not applicable.
        slo_state_unavailable: why ``slo_state`` is missing (``no [dataproducts] api_conn_id
            configured``, ``API error: HTTP 503 from GET ...``), or None.
        freshness: for the watchdog's kinds: ``{"age_seconds", "target_seconds",
            "last_published_at", "episode", "newest_partition": {"start", "end", "run_id"} |
            None, "last_failure": {...} | None, "dag_url", "slo_page_url"}``; else None.
    """

    kind: str
    product: ProductProfile
    stage: str
    task_id: str
    run_id: str
    try_number: int | None
    max_tries: int | None
    interval_start: str | None
    interval_end: str | None
    error: str | None = None
    quality: dict[str, Any] | None = None
    log_url: str | None = None
    slo_impact: tuple[str, ...] = field(default_factory=tuple)
    slo_state: dict[str, Any] | None = None
    slo_state_unavailable: str | None = None
    freshness: dict[str, Any] | None = None

    @property
    def severity(self) -> str:
        """``FAIL``, ``WARN`` or ``RESOLVED`` (see :data:`SEVERITY`)."""
        return SEVERITY[self.kind]

    @property
    def alert_id(self) -> str:
        """A stable key for deduplication downstream: ``<product>/<run_id>/<task_id>/<kind>``;
        for the watchdog's kinds ``<product>/freshness/<newest publish time or never>``, the
        same for a breach and its resolution."""
        if self.kind in (FRESHNESS, FRESHNESS_RESOLVED):
            return f"{self.product.name}/freshness/{(self.freshness or {}).get('episode')}"
        return f"{self.product.name}/{self.run_id}/{self.task_id}/{self.kind}"

    @property
    def interval_label(self) -> str:
        """``2013-01-01`` for a whole UTC day, else ``<start> .. <end>``; ``unknown interval``."""
        return interval_label(self.interval_start, self.interval_end)

    @property
    def subject(self) -> str:
        """One line, e.g. ``[FAIL] flights_daily: quality_gate failed for 2013-01-01`` or
        ``[FRESHNESS] flights_daily: newest data 31h old, over the 26h freshness target``."""
        if self.kind in (FRESHNESS, FRESHNESS_RESOLVED):
            return self._freshness_subject()
        if self.kind == QUALITY_WARN:
            warned = len((self.quality or {}).get("warned", [])) + \
                (self.quality or {}).get("more_warned", 0)
            return (f"[WARN] {self.product.name}: quality gate warned for {self.interval_label} "
                    f"({warned} check{'s' if warned != 1 else ''}); publishing")
        return f"[FAIL] {self.product.name}: {self.stage} failed for {self.interval_label}"

    def _freshness_subject(self) -> str:
        fresh = self.freshness or {}
        target = duration(fresh.get("target_seconds"))
        age = fresh.get("age_seconds")
        if self.kind == FRESHNESS_RESOLVED:
            return (f"[RESOLVED] {self.product.name}: fresh again, newest data "
                    f"{duration(age)} old (target {target})")
        if age is None:
            return (f"[FRESHNESS] {self.product.name}: nothing published yet, over the {target} "
                    "freshness target")
        return (f"[FRESHNESS] {self.product.name}: newest data {duration(age)} old, over the "
                f"{target} freshness target")

    def _state_lines(self, heading: str) -> list[str]:
        if self.slo_state is not None:
            window = self.slo_state.get("window") or self.product.window
            return ([f"{heading}: {self.slo_state.get('state')} (window {window})"]
                    + state_lines(self.slo_state))
        if self.slo_state_unavailable:
            return [f"SLO state unavailable: {self.slo_state_unavailable}"]
        return []

    def _footer(self) -> list[str]:
        p = self.product
        return [
            f"Owner:    {p.owner_team} <{p.owner_email}>",
            f"Runbook:  {safe_url(p.runbook) if p.runbook else '(none in the spec)'}",
        ]

    def _freshness_text(self) -> str:
        p, fresh = self.product, self.freshness or {}
        age, published = fresh.get("age_seconds"), fresh.get("last_published_at")
        measured = (f"last publish {duration(age)} ago, at {published}" if age is not None
                    else "nothing published yet")
        verdict = "met" if self.kind == FRESHNESS_RESOLVED else "BREACHED"
        lines = [self.subject, "",
                 f"Product:   {p.name} v{p.version} - {p.title}",
                 f"Freshness: {measured} (target {duration(fresh.get('target_seconds'))}): "
                 f"{verdict}"]
        newest = fresh.get("newest_partition")
        if newest:
            where = interval_label(newest.get("start"), newest.get("end"))
            lines.append(f"Newest:    partition {where} (run {newest.get('run_id')})")
        elif published:
            lines.append("Newest:    partition not in the SLO window's runs (published earlier)")
        if self.kind == FRESHNESS:
            failure = fresh.get("last_failure")
            if failure:
                where = interval_label(failure.get("partition_start"), failure.get("partition_end"))
                lines.append(f"Failure:   last failed run {failure.get('run_id')} for {where}: "
                             f"{failure.get('failed_task') or 'unknown task'} failed")
                if failure.get("error"):
                    lines.append(f"           {failure['error'].splitlines()[0]}")
                if failure.get("log_url"):
                    lines.append(f"           log: {failure['log_url']}")
            else:
                lines.append("Failure:   none on record")
            lines += ["", "No run has to fail for this alert: check that the DAG is not paused "
                      "and its runs start, that its inputs landed (a sensor may be waiting) and "
                      "that the upstream products publish."]
        else:
            lines += ["", f"Resolves the freshness alert {self.alert_id}."]
        state = self._state_lines("SLO state")
        if state:
            lines += [""] + state
        lines += ["", *self._footer(),
                  f"DAG:      {fresh.get('dag_url') or '(not available)'}",
                  f"SLO page: {fresh.get('slo_page_url') or '(not available)'}"]
        return "\n".join(lines)

    def text(self) -> str:
        """The message as plain text (the email and Slack bodies, the webhook's ``text``)."""
        if self.kind in (FRESHNESS, FRESHNESS_RESOLVED):
            return self._freshness_text()
        p = self.product
        tries = (f", try {self.try_number} of {self.max_tries}" if self.max_tries
                 else f", try {self.try_number}" if self.try_number else "")
        interval = (f"{self.interval_start} to {self.interval_end}" if self.interval_start
                    else "unknown (the run has no data interval)")
        lines = [
            self.subject,
            "",
            f"Product:  {p.name} v{p.version} - {p.title}",
            f"Stage:    {self.stage}",
            f"Task:     {self.task_id}{tries}",
            f"Run:      {self.run_id}",
            f"Interval: {interval}",
            "",
        ]
        if self.quality is not None:
            lines += self._quality_lines()
        if self.error:
            first, *rest = self.error.splitlines() or [""]
            lines.append(f"Error:    {first}")
            lines += [f"          {line}" for line in rest]
        if self.quality is not None or self.error:
            lines.append("")
        lines.append(f"SLO impact (window {p.window}):")
        lines += [f"  - {line}" for line in self.slo_impact]
        if self.kind == FAILURE:
            state = self._state_lines("SLO state after this failure")
            lines += [""] + state if state else []
        lines += ["", *self._footer(), f"Log:      {self.log_url or '(not available)'}"]
        return "\n".join(lines)

    def _quality_lines(self) -> list[str]:
        q = self.quality or {}
        if self.kind == QUALITY_WARN:
            head = (f"Quality gate: WARN ({q.get('summary')}) on {q.get('rows')} rows; "
                    "the run goes on to publish.")
        else:
            head = (f"Quality gate: {str(q.get('outcome', 'fail')).upper()} ({q.get('summary')}) "
                    f"on {q.get('rows')} rows; nothing was published.")
        lines = [head]
        for label, key in (("Failing checks", "failed"), ("Warned checks", "warned")):
            checks = q.get(key) or []
            if checks:
                lines.append(f"{label}:")
                lines += [f"  - {describe_check(c)}" for c in checks]
                if q.get(f"more_{key}"):
                    lines.append(f"  - ... and {q[f'more_{key}']} more (see the log)")
        if q.get("soda_errors"):
            lines.append("Soda errors:")
            lines += [f"  - {e}" for e in q["soda_errors"]]
        return lines

    def html(self) -> str:
        """The text as an HTML email body: escaped, monospaced, with clickable links."""
        escaped = html.escape(self.text(), quote=False)
        linked = _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
        color = _COLOR[self.kind]
        return (f'<div style="border-left: 4px solid {color}; padding-left: 8px">'
                f'<pre style="font-family: monospace; white-space: pre-wrap">{linked}</pre></div>')

    def slack_text(self) -> str:
        """The text for Slack (``mrkdwn``): bold subject, ``&<>`` escaped as Slack requires."""
        def esc(text: str) -> str:
            return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

        first, _, rest = self.text().partition("\n")
        return f"{_SLACK_ICON[self.kind]} *{esc(first)}*\n{esc(rest.strip())}"

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body (``schema: dataproducts.alert/v1``).

        ``text`` holds the whole message, so Slack-compatible webhook receivers (Mattermost,
        Rocket.Chat, ...) show it as is; the other keys are structured for incident tools.
        ``slo_state`` is the state object (:func:`dag_factory.alerts.slo_state.status_json`)
        with ``unavailable: null``, or ``{"state": null, "unavailable": "<reason>"}``, or null
        (a ``[WARN]`` message); ``freshness`` is set for the watchdog's kinds only.
        """
        if self.slo_state is not None:
            slo_state = {**self.slo_state, "unavailable": None}
        elif self.slo_state_unavailable:
            slo_state = {"state": None, "unavailable": self.slo_state_unavailable}
        else:
            slo_state = None
        return {
            "schema": "dataproducts.alert/v1",
            "alert_id": self.alert_id,
            "kind": self.kind,
            "severity": self.severity,
            "subject": self.subject,
            "text": self.text(),
            "product": self.product.name,
            "product_title": self.product.title,
            "product_version": self.product.version,
            "stage": self.stage,
            "task_id": self.task_id,
            "run_id": self.run_id,
            "try_number": self.try_number,
            "max_tries": self.max_tries,
            "data_interval": {"start": self.interval_start, "end": self.interval_end},
            "error": self.error,
            "quality": self.quality,
            "owner": {"team": self.product.owner_team, "email": self.product.owner_email,
                      "runbook": safe_url(self.product.runbook) if self.product.runbook else None},
            "log_url": self.log_url,
            "slo": {"impact": list(self.slo_impact), "targets": {
                "freshness": self.product.freshness, "success_rate": self.product.success_rate,
                "quality_pass_rate": self.product.quality_pass_rate,
                "window": self.product.window}},
            "slo_state": slo_state,
            "freshness": self.freshness,
        }

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain data (for logs and tests)."""
        return asdict(self)


def failure_message(context: Mapping[str, Any], profile: ProductProfile, *,
                    with_slo_state: bool = True, api_client: Any = None) -> AlertMessage:
    """The alert of a task that failed for good (its ``on_failure_callback`` context).

    Args:
        context: the Airflow task context (``ti``, ``task``, ``dag_run``, ``exception``...).
        profile: the product's :class:`ProductProfile`.
        with_slo_state: compute the SLO state after this failure from the plugin's API
            (:func:`dag_factory.alerts.slo_state.state_after_failure`); False leaves it out.
        api_client: the API client to use; None builds one from ``[dataproducts] api_conn_id``.

    Returns:
        the :class:`AlertMessage`. For the quality gate with a result file, the failing checks
        replace the exception text; without one (the gate broke before verifying) the error
        is shown. Without the API (not configured, unreachable) ``slo_state`` is None and
        ``slo_state_unavailable`` says why; this never raises for an API problem.
    """
    base = _common(context, profile)
    quality = None
    error = format_error(context.get("exception"))
    gate_record = read_gate_record(profile.name, base["run_id"])
    if base["stage"] == "quality_gate":
        if gate_record is not None and gate_record.get("outcome") == "fail":
            quality = quality_summary(gate_record)
            error = None
    if error is None and quality is None:
        error = ("no exception was passed to the callback (the task was killed, timed out or "
                 "lost its worker); see the log")
    state = unavailable = None
    if with_slo_state:
        outcome = (gate_record or {}).get("outcome")
        state, unavailable = state_after_failure(profile, _failed_run(
            context, base, error=error, gate=outcome if outcome in ("pass", "warn", "fail")
            else None), client=api_client)
    return AlertMessage(kind=FAILURE, error=error, quality=quality,
                        slo_impact=slo_impact(profile, FAILURE, base["stage"],
                                              interval_label(base["interval_start"],
                                                             base["interval_end"])),
                        slo_state=state, slo_state_unavailable=unavailable, **base)


def _moment(value: Any) -> dt.datetime | None:
    """An aware datetime from a datetime or an ISO string; None otherwise."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _failed_run(context: Mapping[str, Any], base: Mapping[str, Any], *, error: str | None,
                gate: str | None) -> FailedRun:
    dag_run = context.get("dag_run")
    return FailedRun(
        run_id=base["run_id"], task_id=base["task_id"], stage=base["stage"],
        partition_start=_moment(base["interval_start"]),
        partition_end=_moment(base["interval_end"]),
        run_after=_moment(getattr(dag_run, "run_after", None)),
        started_at=_moment(getattr(dag_run, "start_date", None)),
        gate=gate, error=error, log_url=base["log_url"], try_number=base["try_number"])


def freshness_message(profile: ProductProfile, status: Mapping[str, Any], *, resolved: bool,
                      episode: str, run_id: str, task_id: str,
                      detail: Mapping[str, Any] | None = None,
                      api_base_url: str | None = None) -> AlertMessage:
    """The watchdog's ``[FRESHNESS]`` alert (or its ``[RESOLVED]`` follow-up) of a product.

    Args:
        profile: the product; status: its item of ``GET /dataproducts/products`` (``slo``,
            ``dag_url``...); resolved: False for the breach, True once fresh again.
        episode: the staleness episode: the newest publish time (ISO 8601) or ``never``.
        run_id, task_id: the watchdog's run and task.
        detail: ``GET /dataproducts/products/{name}`` (its ``runs`` locate the newest published
            partition), or None.
        api_base_url: the API's base URL, for the SLO page link when the status has no
            ``dag_url``.

    Returns:
        the :class:`AlertMessage` of kind ``freshness`` or ``freshness_resolved``.
    """
    slo = status.get("slo") or {}
    fresh = slo.get("freshness") or {}
    state = compact_state(slo)
    dag_url = status.get("dag_url")
    root = dag_url.rsplit("/dags/", 1)[0] if dag_url and "/dags/" in dag_url else api_base_url
    newest = _newest_partition((detail or {}).get("runs") or [], fresh.get("last_published_at"))
    info = {
        "age_seconds": fresh.get("age_seconds"), "target_seconds": fresh.get("target_seconds"),
        "last_published_at": fresh.get("last_published_at"), "episode": episode,
        "newest_partition": newest, "last_failure": state.get("last_failure"),
        "dag_url": safe_url(dag_url) if dag_url else None,
        "slo_page_url": safe_url(f"{root.rstrip('/')}/dataproducts/ui/{profile.name}")
        if root else None,
    }
    return AlertMessage(kind=FRESHNESS_RESOLVED if resolved else FRESHNESS, product=profile,
                        stage="freshness", task_id=task_id, run_id=run_id, try_number=None,
                        max_tries=None, interval_start=None, interval_end=None,
                        slo_state={**state, "window": profile.window}, freshness=info)


def _newest_partition(runs: list, published_at: str | None) -> dict[str, Any] | None:
    """The partition of the run with the newest publish (the product's freshest data), if that
    publish is the product's newest (``published_at``); None when it is older than the runs."""
    from dag_factory.slo.api_client import parse_time

    best = best_stamp = None
    for run in runs:
        try:
            stamp = parse_time(run.get("published_at")) if isinstance(run, Mapping) else None
        except ValueError:
            continue
        if stamp is not None and (best_stamp is None or stamp > best_stamp):
            best, best_stamp = run, stamp
    try:
        newest = parse_time(published_at)
    except ValueError:
        newest = None
    if best is None or (newest is not None and best_stamp < newest):
        return None
    return {"start": best.get("partition_start"), "end": best.get("partition_end"),
            "run_id": best.get("run_id"), "published_at": best.get("published_at")}


def warn_message(context: Mapping[str, Any], profile: ProductProfile) -> AlertMessage | None:
    """The lower-severity message of a quality gate that ended in ``warn`` (its
    ``on_success_callback`` context).

    Returns:
        the :class:`AlertMessage`, or None when the gate's result is not ``warn`` (a pass sends
        nothing) or its result file is missing.
    """
    base = _common(context, profile)
    record = read_gate_record(profile.name, base["run_id"])
    if record is None or record.get("outcome") != "warn":
        return None
    return AlertMessage(kind=QUALITY_WARN, quality=quality_summary(record),
                        slo_impact=slo_impact(profile, QUALITY_WARN, base["stage"], ""), **base)


def _common(context: Mapping[str, Any], profile: ProductProfile) -> dict[str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    task = context.get("task") or getattr(ti, "task", None)
    task_id = getattr(ti, "task_id", None) or getattr(task, "task_id", None) or "?"
    run_id = context.get("run_id") or getattr(ti, "run_id", None) or "?"
    try_number = getattr(ti, "try_number", None)
    retries = getattr(task, "retries", None)
    max_tries = retries + 1 if isinstance(retries, int) else None
    try:
        interval = resolve_data_interval(context)
        start, end = interval.start.isoformat(), interval.end.isoformat()
    except (NoDataInterval, ValueError, TypeError):
        start = end = None
    log_url = None
    try:
        raw = getattr(ti, "log_url", None)
        log_url = safe_url(raw) if raw else None
    except Exception:  # noqa: BLE001 - a missing [api] base_url must not lose the alert
        log_url = None
    return {"product": profile, "stage": stage_of(task, task_id), "task_id": task_id,
            "run_id": run_id, "try_number": try_number, "max_tries": max_tries,
            "interval_start": start, "interval_end": end, "log_url": log_url}


def stage_of(task: Any, task_id: str) -> str:
    """The task's stage: the operator's ``stage`` attribute, else its task group, else the
    task id prefix (``ingest.wait_flights`` -> ``ingest``); ``unknown`` if none is a stage."""
    stage = getattr(task, "stage", None)
    if stage in STAGES:
        return stage
    group = getattr(getattr(task, "task_group", None), "group_id", None)
    if group in STAGES:
        return group
    prefix = task_id.split(".", 1)[0]
    return prefix if prefix in STAGES else "unknown"


def format_error(error: BaseException | str | None, limit: int = MAX_ERROR_CHARS) -> str | None:
    """``"<ExceptionType>: <message>"`` of a task error, trimmed to ``limit`` characters and
    with every URL redacted.

    The factory's operators wrap errors a retry cannot fix in ``AirflowFailException``; the
    original exception (its ``__cause__``) is the one named.

    Returns:
        the text, or None for no error.
    """
    if error is None:
        return None
    if isinstance(error, BaseException):
        from airflow.sdk.exceptions import AirflowFailException

        if isinstance(error, AirflowFailException) and error.__cause__ is not None:
            error = error.__cause__
        message = str(error).strip()
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    else:
        text = str(error).strip()
    text = scrub_urls(text)
    if len(text) > limit:
        text = text[:limit].rstrip() + f"\n... ({len(text) - limit} more characters in the log)"
    return text


def scrub_urls(text: str) -> str:
    """Every ``scheme://...`` in ``text`` redacted with :func:`dag_factory.ingest.redact_url`
    (user info and query values become ``***``); unparsable URLs become ``<url redacted>``."""
    def redact(match: re.Match) -> str:
        try:
            return redact_url(match.group(0))
        except ValueError:
            return "<url redacted>"

    return _URL.sub(redact, text)


def safe_url(url: str) -> str:
    """A URL safe to send: redacted with :func:`dag_factory.ingest.redact_url`, except that
    Airflow's own ``try_number`` query parameter is kept (the log URL needs it)."""
    parts = urlsplit(url)
    base = redact_url(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k in _KEEP_LOG_URL_PARAMS and v.isdigit()]
    redacted = [(k, "***") for k, v in query if (k, v) not in kept]
    params = kept + redacted
    return base + ("?" + urlencode(params, safe="*") if params else "")


def read_gate_record(product: str, run_id: str) -> dict[str, Any] | None:
    """The quality gate's record of a run, from ``_quality/<product>/<run>.json`` (written by
    the gate before it fails or succeeds; readable under any executor with the shared data
    folder). None when absent or unreadable."""
    from dag_factory import datastore

    try:
        return json.loads(datastore.read_text(quality_history_file(product, run_id)))
    except (OSError, ValueError):  # NotFound and StorageError are OSErrors
        return None


def quality_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a gate record an alert shows: outcome, rows, the counts in words, the
    failed and warned checks (at most :data:`MAX_CHECKS` each) and Soda errors."""
    counts = record.get("counts") or {}
    summary = (f"{counts.get('passed', 0)} passed, {counts.get('warned', 0)} warned, "
               f"{counts.get('failed', 0)} failed"
               + (f", {counts['not_evaluated']} not evaluated" if counts.get("not_evaluated")
                  else ""))
    out: dict[str, Any] = {"outcome": record.get("outcome"), "rows": record.get("rows"),
                           "summary": summary}
    for key, outcome in (("failed", "failed"), ("warned", "warned")):
        checks = [_check(c) for c in record.get("checks", []) if c.get("outcome") == outcome]
        out[key] = checks[:MAX_CHECKS]
        out[f"more_{key}"] = max(0, len(checks) - MAX_CHECKS)
    out["soda_errors"] = [scrub_urls(str(e))[:500] for e in record.get("errors", [])][:MAX_CHECKS]
    return out


_COUNTED = ("missing", "invalid", "duplicate")  # check types whose value is a row count


def _check(check: Mapping[str, Any]) -> dict[str, Any]:
    diagnostics = check.get("diagnostics") or {}
    kind = check.get("type")
    percent = diagnostics.get(f"{kind}_percent") if kind in _COUNTED else None
    return {"name": check.get("name"), "column": check.get("column"), "type": kind,
            "value": check.get("value"), "threshold": check.get("threshold"),
            "rows_tested": diagnostics.get("check_rows_tested") if kind in _COUNTED else None,
            "percent": round(percent, 2) if isinstance(percent, (int, float)) else None}


def describe_check(check: Mapping[str, Any]) -> str:
    """``<name> [<type>, column <c>|dataset]: measured <value>, threshold <threshold>``; for
    missing/invalid/duplicate checks the value reads ``<n> invalid of <rows> rows (<p>%)``."""
    where = f"column {check['column']}" if check.get("column") else "dataset"
    measured = f"{check.get('value')}"
    if check.get("type") in _COUNTED:
        measured += f" {check['type']}"
        if check.get("rows_tested") is not None:
            measured += f" of {check['rows_tested']} rows"
        if check.get("percent") is not None:
            measured += f" ({check['percent']:g}%)"
    return (f"{check.get('name')} [{check.get('type')}, {where}]: measured {measured}, "
            f"threshold {check.get('threshold')}")


def interval_label(start: str | None, end: str | None) -> str:
    """``2013-01-01`` for exactly one UTC day from midnight, else ``<start> .. <end>``."""
    if not start or not end:
        return "unknown interval"
    s, e = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
    if s.time() == dt.time(0) and e - s == dt.timedelta(days=1):
        return s.date().isoformat()
    return f"{start} .. {end}"


def slo_impact(profile: ProductProfile, kind: str, stage: str, label: str) -> tuple[str, ...]:
    """Which SLIs a failure counts against, with the product's targets (docs/slo.md).

    Args:
        profile: the product (its SLO targets); kind: ``failure`` | ``quality_warn``;
        stage: the failed task's stage; label: the interval in words.

    Returns:
        one line per SLI concerned.
    """
    def target(value: str | None) -> str:
        return f"target {value}" if value else "no target set"

    if kind == QUALITY_WARN:
        return (f"quality pass rate ({target(profile.quality_pass_rate)}): not affected, a "
                "warning counts as a pass",
                f"success rate ({target(profile.success_rate)}) and freshness "
                f"({target(profile.freshness)}): not affected by a warning (the run goes on to "
                "publish; a publish failure sends its own [FAIL] alert)")
    if stage == "export":
        return (f"success rate ({target(profile.success_rate)}) and freshness "
                f"({target(profile.freshness)}): not affected, the partition was published "
                "before the export; this export port is stale for the interval",)
    lines = [f"success rate ({target(profile.success_rate)}): counts against it; the partition "
             f"{label} is a miss until a re-run publishes it"]
    if stage == "quality_gate":
        lines.append(f"quality pass rate ({target(profile.quality_pass_rate)}): counts against "
                     "it; a failed gate is a bad quality event until a re-run's gate passes")
    lines.append(f"freshness ({target(profile.freshness)}): at risk; nothing new is published "
                 f"until a run for {label} succeeds")
    return tuple(lines)
