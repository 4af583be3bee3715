"""One alert message per failure (or per quality-gate warning), built from the Airflow task context.

The message says what an on-call engineer needs to act: product, stage, task, try, data
interval, the error (or, for a failed quality gate, the failing checks with the measured value
and the threshold), the owner, the runbook, the Airflow log URL and which SLIs the failure
counts against. It is built from the callback's task context and the gate's result file only:
no metadata-DB access (Airflow 3 forbids the ORM in tasks and their callbacks).

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

from dag_factory.ingest import redact_url
from dag_factory.interval import NoDataInterval, resolve_data_interval
from dag_factory.operator_base import STAGES
from dag_factory.storage import quality_history_file

if TYPE_CHECKING:
    from dag_factory.spec.models import ProductSpec

FAILURE = "failure"
QUALITY_WARN = "quality_warn"
KINDS = (FAILURE, QUALITY_WARN)
SEVERITY = {FAILURE: "FAIL", QUALITY_WARN: "WARN"}

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


@dataclass(frozen=True)
class AlertMessage:
    """One alert, renderable as a subject + text, HTML (email), Slack text and a JSON payload.

    Attributes:
        kind: ``failure`` (a task failed for good) or ``quality_warn`` (the gate warned).
        product: the :class:`ProductProfile`.
        stage: ``ingest`` | ``transform`` | ``quality_gate`` | ``publish`` | ``export`` (or
            ``unknown``); task_id, run_id: the failed task and its DAG run.
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

    @property
    def severity(self) -> str:
        """``FAIL`` or ``WARN``."""
        return SEVERITY[self.kind]

    @property
    def alert_id(self) -> str:
        """A stable key for deduplication downstream: ``<product>/<run_id>/<task_id>/<kind>``."""
        return f"{self.product.name}/{self.run_id}/{self.task_id}/{self.kind}"

    @property
    def interval_label(self) -> str:
        """``2013-01-01`` for a whole UTC day, else ``<start> .. <end>``; ``unknown interval``."""
        return interval_label(self.interval_start, self.interval_end)

    @property
    def subject(self) -> str:
        """One line, e.g. ``[FAIL] flights_daily: quality_gate failed for 2013-01-01``."""
        if self.kind == QUALITY_WARN:
            warned = len((self.quality or {}).get("warned", [])) + \
                (self.quality or {}).get("more_warned", 0)
            return (f"[WARN] {self.product.name}: quality gate warned for {self.interval_label} "
                    f"({warned} check{'s' if warned != 1 else ''}); publishing")
        return f"[FAIL] {self.product.name}: {self.stage} failed for {self.interval_label}"

    def text(self) -> str:
        """The message as plain text (the email and Slack bodies, the webhook's ``text``)."""
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
        lines += [
            "",
            f"Owner:    {p.owner_team} <{p.owner_email}>",
            f"Runbook:  {safe_url(p.runbook) if p.runbook else '(none in the spec)'}",
            f"Log:      {self.log_url or '(not available)'}",
        ]
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
        color = "#b00020" if self.kind == FAILURE else "#9a6700"
        return (f'<div style="border-left: 4px solid {color}; padding-left: 8px">'
                f'<pre style="font-family: monospace; white-space: pre-wrap">{linked}</pre></div>')

    def slack_text(self) -> str:
        """The text for Slack (``mrkdwn``): bold subject, ``&<>`` escaped as Slack requires."""
        def esc(text: str) -> str:
            return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

        first, _, rest = self.text().partition("\n")
        icon = ":red_circle:" if self.kind == FAILURE else ":warning:"
        return f"{icon} *{esc(first)}*\n{esc(rest.strip())}"

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body (``schema: dataproducts.alert/v1``).

        ``text`` holds the whole message, so Slack-compatible webhook receivers (Mattermost,
        Rocket.Chat, ...) show it as is; the other keys are structured for incident tools.
        """
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
        }

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain data (for logs and tests)."""
        return asdict(self)


def failure_message(context: Mapping[str, Any], profile: ProductProfile) -> AlertMessage:
    """The alert of a task that failed for good (its ``on_failure_callback`` context).

    Args:
        context: the Airflow task context (``ti``, ``task``, ``dag_run``, ``exception``...).
        profile: the product's :class:`ProductProfile`.

    Returns:
        the :class:`AlertMessage`. For the quality gate with a result file, the failing checks
        replace the exception text; without one (the gate broke before verifying) the error
        is shown.
    """
    base = _common(context, profile)
    quality = None
    error = format_error(context.get("exception"))
    if base["stage"] == "quality_gate":
        record = read_gate_record(profile.name, base["run_id"])
        if record is not None and record.get("outcome") == "fail":
            quality = quality_summary(record)
            error = None
    if error is None and quality is None:
        error = ("no exception was passed to the callback (the task was killed, timed out or "
                 "lost its worker); see the log")
    return AlertMessage(kind=FAILURE, error=error, quality=quality,
                        slo_impact=slo_impact(profile, FAILURE, base["stage"],
                                              interval_label(base["interval_start"],
                                                             base["interval_end"])),
                        **base)


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
    path = quality_history_file(product, run_id)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
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
