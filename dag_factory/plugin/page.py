"""Server-rendered HTML of the SLO page: every value escaped, inline SVG charts. The overview
has no script; a product's page has one small inline script, its backfill form (same-origin
calls to Airflow's REST API as the logged-in user, no external request, API data inserted as
text only)."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

STATE_COLOURS = {"OK": "#1e8e3e", "AT RISK": "#f29900", "BREACHED": "#d93025", "NO DATA": "#80868b"}
RUN_COLOURS = {"success": "#1e8e3e", "failed": "#d93025", "running": "#1a73e8", "queued": "#80868b"}
GATE_COLOURS = {"pass": "#1e8e3e", "warn": "#f29900", "fail": "#d93025", None: "#dadce0"}

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#202124}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5f6368;margin:0 0 16px}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:8px 10px;border-bottom:1px solid #e8eaed;vertical-align:top;font-size:14px}
th{color:#5f6368;font-weight:600;font-size:12px;text-transform:uppercase}
.state{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.bar{width:120px;height:10px;background:#e8eaed;border-radius:5px;overflow:hidden;display:inline-block;vertical-align:middle}
.bar>span{display:block;height:100%}.small{color:#5f6368;font-size:12px}
a{color:#1a73e8;text-decoration:none}a:hover{text-decoration:underline}
pre{background:#fce8e6;padding:8px;border-radius:4px;white-space:pre-wrap;font-size:12px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}
h3{font-size:15px;margin:18px 0 6px}
.bf label{margin-right:14px;font-size:14px}.bf input,.bf select{font:inherit;margin-left:4px}
button{font:inherit;font-size:13px;padding:4px 12px;margin-right:6px;border:1px solid #dadce0;
border-radius:4px;background:#fff;color:#1a73e8;cursor:pointer}button:disabled{color:#9aa0a6;cursor:default}
button.primary{background:#1a73e8;border-color:#1a73e8;color:#fff}button.primary:disabled{background:#dadce0;border-color:#dadce0}
.counts{width:auto}.counts td{font-size:18px;font-weight:600;text-align:center}.counts th{text-align:center}
ul.checks{margin:0;padding-left:16px}.warn{color:#b06000;font-size:11px;font-weight:600}
.seg{width:480px;height:12px;border-radius:6px;overflow:hidden;background:#e8eaed;display:flex;margin:8px 0}
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}"
            f"</title><style>{STYLE}</style></head><body>{body}</body></html>")


def _state(state: str) -> str:
    colour = STATE_COLOURS.get(state, "#80868b")
    return f"<span class='state' data-state='{escape(state)}' style='background:{colour}'>{escape(state)}</span>"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never published"
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _budget_bar(sli) -> str:
    """Remaining error budget as a bar (green > 50%, amber > 0, red exhausted)."""
    budget = sli.error_budget
    if sli.target is None:
        return "<span class='small'>no target</span>"
    if budget is None or budget.remaining_fraction is None:
        return "<span class='small'>no events</span>"
    left = max(0.0, min(1.0, budget.remaining_fraction))
    colour = "#1e8e3e" if left > 0.5 else "#f29900" if left > 0 else "#d93025"
    rate = f"{sli.rate * 100:.1f}%" if sli.rate is not None else "-"
    track = "#fad2cf" if left == 0 else "#e8eaed"  # an exhausted budget reads red, not empty
    return (f"<span class='bar' style='background:{track}' title='{left * 100:.0f}% of the error budget left'>"
            f"<span style='width:{left * 100:.0f}%;background:{colour}'></span></span> "
            f"<span class='small'>{rate} vs {sli.target * 100:g}% · {left * 100:.0f}% budget left</span>")


def _failure(status) -> str:
    failure = status.slo.last_failure
    if failure is None:
        return "<span class='small'>none</span>"
    link = (f" <a href='{escape(failure.log_url)}' target='_top'>log</a>" if failure.log_url else "")
    return (f"<code>{escape(failure.failed_task or '?')}</code>"
            f"<br><span class='small'>{escape(failure.partition_start.date().isoformat())}</span>{link}")


def overview(statuses, invalid, prefix: str) -> str:
    """The all-products page."""
    rows = []
    for s in statuses:
        runbook = (f" · <a href='{escape(s.runbook)}' target='_blank' rel='noopener'>runbook</a>"
                   if s.runbook else "")
        rows.append(
            f"<tr data-product='{escape(s.name)}'><td><a href='{prefix}/ui/{quote(s.name)}'>"
            f"<b>{escape(s.name)}</b></a><br><span class='small'>{escape(s.title)}</span></td>"
            f"<td>{_state(s.slo.state)}<br><span class='small'>{escape('; '.join(s.slo.reasons))}</span></td>"
            f"<td>{_age(s.slo.freshness.age_seconds)}<br><span class='small'>target "
            f"{_age(s.slo.freshness.target_seconds) if s.slo.freshness.target_seconds else '-'}</span></td>"
            f"<td>{_budget_bar(s.slo.success_rate)}</td><td>{_budget_bar(s.slo.quality_pass_rate)}</td>"
            f"<td>{_failure(s)}</td>"
            f"<td>{escape(s.owner_team)}<br><a href='{escape(s.dag_url)}' target='_top'>DAG</a>{runbook}</td></tr>")
    table = ("<table><thead><tr><th>Product</th><th>State</th><th>Freshness</th><th>Success rate</th>"
             "<th>Quality pass rate</th><th>Last failure</th><th>Owner</th></tr></thead><tbody>"
             + ("".join(rows) or "<tr><td colspan='7'>No product you can read.</td></tr>")
             + "</tbody></table>")
    body = ("<h1>Data products</h1><p class='sub'>SLO status over each product's window; "
            "states: OK, AT RISK (error budget burning fast or almost spent), BREACHED, NO DATA.</p>"
            + table)
    if invalid:
        items = "".join(f"<li data-invalid='{escape(i.file)}'><b>{escape(i.file)}</b> "
                        f"(DAG <code>{escape(i.dag_id)}</code>)<pre>{escape(chr(10).join(i.errors))}</pre></li>"
                        for i in invalid)
        body += f"<h2>Invalid product files</h2><ul>{items}</ul>"
    return _page("Data products", body)


def _when(moment) -> str:
    """``YYYY-MM-DD HH:MM`` UTC, or ``-``."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _partition(run) -> str:
    """A day partition as its date, anything else as ``start → end``."""
    start, end = run.partition_start, run.partition_end
    if (end - start).total_seconds() == 86400 and start.hour == start.minute == 0:
        return start.date().isoformat()
    return f"{_when(start)} → {_when(end)}"


def _history_svg(runs) -> str:
    """One column per partition (oldest left): run state (top) and gate outcome (bottom), and
    the time from due to publish as a line (hours), so a person sees trends at a glance."""
    runs = list(reversed(runs[:60]))
    if not runs:
        return "<p class='small'>No runs in the window.</p>"
    left = 44  # room for the row labels
    width, col = 720, max(4, min(24, 720 // len(runs)))
    lags = [((r.published_at - r.due_at).total_seconds() / 3600) if r.published_at else None for r in runs]
    top = max([l for l in lags if l is not None] + [1.0])
    parts = []
    for i, r in enumerate(runs):
        x = left + i * col
        parts.append(f"<rect x='{x}' y='0' width='{col - 1}' height='18' fill='{RUN_COLOURS.get(r.state, '#80868b')}'>"
                     f"<title>{escape(r.partition_start.date().isoformat())}: {escape(r.state)}</title></rect>")
        parts.append(f"<rect x='{x}' y='22' width='{col - 1}' height='18' fill='{GATE_COLOURS.get(r.gate, '#dadce0')}'>"
                     f"<title>gate: {escape(str(r.gate))}</title></rect>")
    parts += ["<text x='0' y='13' font-size='11' fill='#5f6368'>run</text>",
              "<text x='0' y='35' font-size='11' fill='#5f6368'>gate</text>",
              "<text x='0' y='95' font-size='11' fill='#5f6368'>delay</text>"]
    points = " ".join(f"{left + i * col + col / 2:.0f},{130 - 80 * (l / top):.0f}"
                      for i, l in enumerate(lags) if l is not None)
    if points:
        parts.append(f"<polyline points='{points}' fill='none' stroke='#1a73e8' stroke-width='2'/>")
    parts.append(f"<text x='0' y='145' font-size='11' fill='#5f6368'>publish delay after due "
                 f"(max {top:.1f} h)</text>")
    legend = ("<div class='legend small'>runs:" + "".join(
        f"<span style='background:{c}'></span>{escape(k)}" for k, c in RUN_COLOURS.items())
        + " · gate:" + "".join(f"<span style='background:{c}'></span>{escape(str(k or 'not run'))}"
                               for k, c in GATE_COLOURS.items()) + "</div>")
    return (f"<svg role='img' aria-label='run history' width='{left + max(width, len(runs) * col)}' height='150'>"
            + "".join(parts) + "</svg>" + legend)


def _pacing_text(pacing) -> str:
    """The spec's backfill block in words (plain text, to be escaped)."""
    window = (f"runs start only in {pacing.allowed_hours} UTC" if pacing.allowed_hours
              else "runs start at any hour")
    rate = (f"at most {pacing.max_runs_per_hour} runs per hour" if pacing.max_runs_per_hour
            else "no hourly limit")
    return (f"at most {pacing.max_active_runs} runs at once, backfill pool of "
            f"{pacing.pool_slots} slots, {window}, {rate}")


def _backfill_section(name: str, pacing, api_root: str) -> str:
    """The backfill form and progress view of one product (filled in by :data:`BACKFILL_JS`)."""
    # relative to this page (<prefix>/ui/<name>), so it also holds behind a path prefix
    estimate_url = f"../products/{quote(name)}/backfill/estimate"
    return (
        "<section id='backfill'><h2>Backfill</h2>"
        f"<p class='small'>Pacing from the spec: {escape(_pacing_text(pacing))}. The backfill is "
        "created through Airflow's API as you (Airflow decides whether you may), with "
        f"max_active_runs {pacing.max_active_runs}; the runs are the DAG's logical dates from "
        "the first day to the last, inclusive.</p>"
        f"<form id='bf-form' class='bf' data-dag-id='{escape(name)}' data-api='{escape(api_root)}' "
        f"data-estimate='{escape(estimate_url)}' data-max-active-runs='{pacing.max_active_runs}'>"
        "<label>From <input type='date' name='from' required></label>"
        "<label>To <input type='date' name='to' required></label>"
        "<label>Reprocess <select name='reprocess'>"
        "<option value='none'>none: only days without a run</option>"
        "<option value='failed'>failed: also days whose run failed</option>"
        "<option value='completed'>completed: every day</option></select></label>"
        "<button type='submit' id='bf-dry'>Dry run</button>"
        "<button type='button' id='bf-start' class='primary' disabled "
        "title='run a dry run of these dates first'>Start backfill</button></form>"
        "<p id='bf-plan' role='status'></p><pre id='bf-error' role='alert' hidden></pre>"
        "<h3>Progress</h3><div id='bf-progress' aria-live='polite'>"
        "<p class='small'>Loading the product's backfills…</p></div>"
        f"</section><script>{BACKFILL_JS}</script>")


def _checks_cell(checks) -> str:
    if not checks:
        return "<span class='small'>none</span>"
    items = []
    for c in checks:
        warn = " <span class='warn'>warn</span>" if c.severity == "warning" else ""
        name = f" <span class='small'>({escape(c.name)})</span>" if c.name else ""
        items.append(f"<li data-odcs='{escape(c.odcs)}'>{escape(c.text)}{warn}{name}</li>")
    return f"<ul class='checks'>{''.join(items)}</ul>"


def _contract_section(contract, prefix: str) -> str:
    """The product's contract: columns, dataset checks, SLOs, consumers (a
    :class:`~dag_factory.contract.view.ContractView`), with links to its ODCS/ODPS exports."""
    base = f"{prefix}/products/{quote(contract.product)}/contract"
    rows = "".join(
        f"<tr data-column='{escape(c.name)}'><td><code>{escape(c.name)}</code>"
        f"{' <span class=' + chr(39) + 'small' + chr(39) + '>partition key</span>' if c.partition_key else ''}</td>"
        f"<td>{escape(c.data_type or '-')}<br><span class='small'>{escape(c.logical_type or '-')}</span></td>"
        f"<td>{'yes' if c.required else 'no'}{' · unique' if c.unique else ''}</td>"
        f"<td>{_checks_cell(c.checks)}</td></tr>" for c in contract.columns)
    slos = "".join(f"<tr data-slo='{escape(s.name)}'><td>{escape(s.label)}</td>"
                   f"<td>{escape(s.target)}</td></tr>" for s in contract.slos)
    consumers = "".join(f"<li data-consumer='{escape(c)}'><a href='{prefix}/ui/{quote(c)}'>"
                        f"{escape(c)}</a></li>" for c in contract.consumers)
    if contract.hidden_consumers:
        consumers += (f"<li id='hidden-consumers' class='small'>{contract.hidden_consumers} more "
                      "product(s) you may not read</li>")
    return (
        "<section id='contract'><h2>Contract</h2>"
        f"<p class='small'>Contract <code>{escape(contract.contract_id)}</code> version "
        f"{escape(contract.version)} · <a href='{base}?format=odcs'>ODCS</a> · "
        f"<a href='{base}?format=odps'>ODPS</a> · <a href='{base}'>JSON</a></p>"
        "<table><thead><tr><th>Column</th><th>Type</th><th>Required</th><th>Checks</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
        f"<h3>Dataset checks</h3><div id='dataset-checks'>{_checks_cell(contract.dataset_checks)}</div>"
        "<h3>Service levels</h3><table><tbody>"
        f"{slos or '<tr><td>none declared</td></tr>'}</tbody></table>"
        f"<h3>Consumers</h3><ul id='consumers'>{consumers or '<li class=small>none</li>'}</ul>"
        "</section>")


def product(status, prefix: str, pacing=None, api_root: str = "/api/v2", contract=None) -> str:
    """One product's page: SLIs, history chart, contract, backfill form and progress, runs.

    Args:
        status: the product's :class:`~dag_factory.plugin.status.ProductStatus`;
        prefix: the plugin's URL prefix (``/dataproducts``);
        pacing: its :class:`~dag_factory.backfill.config.PacingConfig`, or None for no
            backfill section; api_root: path of Airflow's REST API (``/api/v2``);
        contract: its :class:`~dag_factory.contract.view.ContractView`, or None for no
            contract section.

    Returns:
        The HTML document (str).
    """
    s, slo = status, status.slo
    runbook = (f" · <a href='{escape(s.runbook)}' target='_blank' rel='noopener'>runbook</a>"
               if s.runbook else "")
    rows = "".join(
        f"<tr><td>{escape(_partition(r))}</td>"
        f"<td>{escape(r.state)}</td><td>{escape(str(r.gate or '-'))}</td>"
        f"<td>{escape(_when(r.published_at))}</td>"
        f"<td>{escape(r.failed_task or '')}"
        f"{(' <a href=' + chr(39) + escape(r.log_url) + chr(39) + ' target=_top>log</a>') if r.log_url else ''}</td></tr>"
        for r in s.runs[:100])
    body = (f"<p><a href='{prefix}/'>← all products</a></p><h1>{escape(s.name)} {_state(slo.state)}</h1>"
            f"<p class='sub'>{escape(s.title)} · v{escape(s.version)} · {escape(s.schedule)} · owner "
            f"{escape(s.owner_team)} ({escape(s.owner_email)}) · <a href='{escape(s.dag_url)}' "
            f"target='_top'>DAG</a>{runbook}</p>"
            f"<p>{escape('; '.join(slo.reasons)) or 'All SLOs met.'}</p>"
            "<table><tr><th>SLI</th><th>Value</th></tr>"
            f"<tr><td>Freshness</td><td>{_age(slo.freshness.age_seconds)} (target "
            f"{_age(slo.freshness.target_seconds) if slo.freshness.target_seconds else '-'})</td></tr>"
            f"<tr><td>Success rate</td><td>{_budget_bar(slo.success_rate)}</td></tr>"
            f"<tr><td>Quality pass rate</td><td>{_budget_bar(slo.quality_pass_rate)} "
            f"<span class='small'>{slo.quality_pass_rate.warned} warned</span></td></tr></table>"
            f"<h2>History</h2>{_history_svg(s.runs)}"
            + (_contract_section(contract, prefix) if contract is not None else "")
            + (_backfill_section(s.name, pacing, api_root) if pacing is not None else "") +
            f"<h2>Runs in the window</h2><table><thead><tr><th>Partition</th><th>Run</th><th>Gate</th>"
            f"<th>Published</th><th>Failed task</th></tr></thead><tbody>{rows}</tbody></table>")
    return _page(f"{s.name} · Data products", body)


#: The product page's backfill form and progress view. It calls Airflow's REST API on the same
#: origin with the browser's own Airflow session (the ``_token`` cookie, ``credentials:
#: "same-origin"``), so Airflow authorizes every call as the logged-in user. API data goes into
#: the page through ``textContent``/text nodes only, never as HTML.
BACKFILL_JS = r"""
(() => {
  "use strict";
  const form = document.getElementById("bf-form");
  if (!form) return;
  const dagId = form.dataset.dagId, api = form.dataset.api, estimateUrl = form.dataset.estimate;
  const maxActiveRuns = parseInt(form.dataset.maxActiveRuns, 10);
  const planEl = document.getElementById("bf-plan"), errorEl = document.getElementById("bf-error");
  const progressEl = document.getElementById("bf-progress");
  const startButton = document.getElementById("bf-start");
  const COLOURS = {done: "#1e8e3e", failed: "#d93025", running: "#1a73e8", queued: "#80868b"};
  const REFRESH_MS = 5000;
  let planned = null;  // the request body of the last dry run that found runs

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; this.detail = detail; }
  }

  // element with attributes and children; strings become text nodes (never parsed as HTML)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, String(value));
    }
    node.append(...children.filter((c) => c !== null && c !== undefined && c !== false)
      .map((c) => (c instanceof Node ? c : String(c))));
    return node;
  }

  function detailText(body, fallback) {
    const detail = body && typeof body === "object" && "detail" in body ? body.detail : body;
    if (detail === null || detail === undefined || detail === "") return fallback;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((e) => (e && e.msg ? (Array.isArray(e.loc) ? e.loc.join(".") + ": " : "") + e.msg
                                           : JSON.stringify(e))).join("; ");
    }
    return JSON.stringify(detail);
  }

  async function call(method, url, body) {
    const init = {method, credentials: "same-origin", headers: {Accept: "application/json"}};
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (e) {
      throw new ApiError(0, "cannot reach Airflow: " + e.message);
    }
    const text = await response.text();
    let data = text;
    try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON: keep the text */ }
    if (!response.ok) throw new ApiError(response.status, detailText(data, response.statusText));
    return data;
  }

  function errorText(e) {
    return (e.status ? "HTTP " + e.status + ": " : "") + (e.detail || e.message)
      + (e.status === 401 ? " (log in to Airflow again)" : "");
  }

  function showError(what, e) {
    errorEl.hidden = false;
    errorEl.textContent = what + ": " + errorText(e);
  }

  function clearError() { errorEl.hidden = true; errorEl.textContent = ""; }

  function duration(seconds) {
    const s = Math.round(seconds);
    if (s < 60) return s + "s";
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return [d ? d + "d" : "", d || h ? h + "h" : "", m + "m"].filter(Boolean).join(" ");
  }

  function when(iso) {
    const t = new Date(iso);
    return isNaN(t) ? String(iso) : t.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function day(iso) { return String(iso).slice(0, 10); }

  // the request body from the form, or null (with the reason shown) when incomplete
  function requestBody() {
    const fields = form.elements;
    const from = fields.namedItem("from").value, to = fields.namedItem("to").value;
    if (!from || !to) { showError("Backfill", {detail: "choose the first and the last day"}); return null; }
    if (to < from) { showError("Backfill", {detail: "the last day is before the first day"}); return null; }
    return {dag_id: dagId, from_date: from + "T00:00:00Z", to_date: to + "T00:00:00Z",
            reprocess_behavior: fields.namedItem("reprocess").value, max_active_runs: maxActiveRuns};
  }

  function pacingText(p) {
    return "pacing: " + (p.allowed_hours ? "window " + p.allowed_hours + " UTC" : "any hour") + ", "
      + (p.max_runs_per_hour ? "at most " + p.max_runs_per_hour + " runs/hour" : "no hourly limit");
  }

  function showPlan(count, est, body) {
    const e = est.estimate;
    const basis = est.median_of_runs
      ? "median run " + duration(est.median_run_seconds) + " of " + est.median_of_runs + " "
        + " successful runs"
      : "no run history: " + duration(est.median_run_seconds) + " per run assumed";
    planEl.replaceChildren(
      el("b", {id: "bf-runs", "data-runs": count}, count), " runs (" + day(body.from_date) + " … "
        + day(body.to_date) + ", reprocess " + body.reprocess_behavior + ")",
      ...(count ? ["; about ", el("b", {id: "bf-duration"}, duration(e.paced_seconds)), " at "
        + e.concurrency + " at once, ending about " + when(e.finishes_at) + "; ideal "
        + duration(e.ideal_seconds) + " (" + basis + "); " + pacingText(est.pacing) + "."]
        : [": nothing to backfill in this range."]));
  }

  async function dryRun(event) {
    event.preventDefault();
    clearError();
    planned = null;
    startButton.disabled = true;
    const body = requestBody();
    if (!body) return;
    planEl.textContent = "Counting the runs…";
    try {
      const dry = await call("POST", api + "/backfills/dry_run", body);
      const count = dry.backfills.length;
      const est = await call("GET", estimateUrl + "?runs=" + count);
      showPlan(count, est, body);
      if (count) { planned = JSON.stringify(body); startButton.disabled = false; }
    } catch (e) {
      planEl.textContent = "";
      showError("Dry run", e);
    }
  }

  async function start() {
    clearError();
    const body = requestBody();
    if (!body) return;
    if (JSON.stringify(body) !== planned) {
      showError("Start backfill", {detail: "run a dry run of these dates first"});
      return;
    }
    startButton.disabled = true;
    try {
      const created = await call("POST", api + "/backfills", body);
      planned = null;
      planEl.append(el("span", {id: "bf-created"}, " Backfill #" + created.id + " created."));
    } catch (e) {
      showError("Start backfill", e);
      startButton.disabled = false;
    }
    refresh();
  }

  // runs of the backfill by state: one count query per state (limit 1), whatever its size
  async function counts(backfill) {
    const result = {};
    await Promise.all([["done", "success"], ["running", "running"], ["queued", "queued"], ["failed", "failed"]]
      .map(async ([key, state]) => {
        const query = new URLSearchParams({
          run_type: "backfill", state, limit: "1", logical_date_gte: backfill.from_date,
          logical_date_lte: backfill.to_date, updated_at_gte: backfill.created_at});
        const page = await call("GET", api + "/dags/" + encodeURIComponent(dagId) + "/dagRuns?" + query);
        result[key] = page.total_entries;
      }));
    result.total = result.done + result.running + result.queued + result.failed;
    return result;
  }

  async function eta(backfill, c) {
    const ended = c.done + c.failed, left = c.total - ended;
    if (!c.total) return "-";
    if (!left) return "finished";
    if (backfill.is_paused) return "paused";
    if (ended) {  // the pace so far, as `dataproducts backfill --wait` reports it
      const elapsed = (Date.now() - new Date(backfill.created_at)) / 1000;
      return "about " + when(new Date(Date.now() + (elapsed / ended) * left * 1000).toISOString())
        + " (at the pace so far)";
    }
    const est = await call("GET", estimateUrl + "?runs=" + left);
    return "about " + when(est.estimate.finishes_at) + " (estimate: " + duration(est.estimate.paced_seconds)
      + " from now)";
  }

  async function control(backfill, action) {
    clearError();
    try {
      await call("PUT", api + "/backfills/" + encodeURIComponent(backfill.id) + "/" + action);
    } catch (e) {
      showError(action[0].toUpperCase() + action.slice(1) + " backfill #" + backfill.id, e);
    }
    refresh();
  }

  // builds the view when the backfill or its paused state changes, and otherwise updates the
  // numbers in place, so a button never changes under the pointer
  let shown = null;
  function showProgress(backfill, c, etaText) {
    const paused = !!backfill.is_paused, key = backfill.id + ":" + paused;
    if (shown !== key) {
      progressEl.replaceChildren(
        el("p", {id: "bf-active", "data-backfill-id": backfill.id, "data-paused": paused},
          el("b", {}, "Backfill #" + backfill.id), " " + day(backfill.from_date) + " … " + day(backfill.to_date)
            + " · reprocess " + backfill.reprocess_behavior + " · max " + backfill.max_active_runs
            + " at once · created " + when(backfill.created_at) + " ",
          el("span", {class: "state", style: "background:" + (paused ? "#f29900" : "#1a73e8")},
            paused ? "PAUSED" : "ACTIVE")),
        el("table", {class: "counts"},
          el("tr", {}, ...["Done", "Running", "Queued", "Failed", "Total"].map((h) => el("th", {}, h))),
          el("tr", {}, ...["done", "running", "queued", "failed", "total"].map((k) =>
            el("td", {"data-count": k, style: k === "total" ? "" : "color:" + COLOURS[k]})))),
        el("div", {id: "bf-bar", class: "seg", title: "done / failed / running / queued"}),
        el("p", {}, "ETA: ", el("span", {id: "bf-eta"})),
        el("p", {},
          paused ? el("button", {type: "button", id: "bf-resume", onclick: () => control(backfill, "unpause")}, "Resume")
                 : el("button", {type: "button", id: "bf-pause", onclick: () => control(backfill, "pause")}, "Pause"),
          el("button", {type: "button", id: "bf-cancel", onclick: () => {
            if (window.confirm("Cancel backfill #" + backfill.id + "? Its queued runs are marked failed; "
                               + "running runs finish.")) control(backfill, "cancel");
          }}, "Cancel")));
      shown = key;
    }
    for (const td of progressEl.querySelectorAll("td[data-count]")) td.textContent = String(c[td.dataset.count]);
    document.getElementById("bf-bar").replaceChildren(
      ...["done", "failed", "running", "queued"].filter((k) => c[k]).map((k) =>
        el("span", {style: "width:" + (100 * c[k] / c.total) + "%;background:" + COLOURS[k]})));
    document.getElementById("bf-eta").textContent = etaText;
  }

  async function update() {
    try {
      const list = await call("GET", api + "/backfills?" + new URLSearchParams(
        {dag_id: dagId, limit: "100", order_by: "-id"}));
      const backfills = list.backfills || [];
      const active = backfills.find((b) => !b.completed_at);
      if (!active) {
        shown = null;
        const last = backfills[0];
        progressEl.replaceChildren(el("p", {id: "bf-none", class: "small"}, "No active backfill."
          + (last ? " The last one, #" + last.id + " (" + day(last.from_date) + " … " + day(last.to_date)
                    + "), completed " + when(last.completed_at) + "." : "")));
        return;
      }
      const c = await counts(active);
      showProgress(active, c, await eta(active, c));
    } catch (e) {
      shown = null;
      progressEl.replaceChildren(el("p", {id: "bf-progress-error", class: "small"},
        "Cannot read the backfills: " + errorText(e)));
    }
  }

  let queue = Promise.resolve(), timer = null;
  function refresh() {  // one update at a time; the next one REFRESH_MS after the last
    clearTimeout(timer);
    queue = queue.then(update).finally(() => {
      clearTimeout(timer);
      timer = setTimeout(refresh, REFRESH_MS);
    });
    return queue;
  }

  form.addEventListener("submit", dryRun);
  form.addEventListener("input", () => { planned = null; startButton.disabled = true; });
  startButton.addEventListener("click", start);
  refresh();
})();
"""
