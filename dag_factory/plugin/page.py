"""Server-rendered HTML of the SLO page: every value escaped, no script, inline SVG charts."""

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


def product(status, prefix: str) -> str:
    """One product's page: SLIs, history chart, runs table, last failure."""
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
            f"<h2>Runs in the window</h2><table><thead><tr><th>Partition</th><th>Run</th><th>Gate</th>"
            f"<th>Published</th><th>Failed task</th></tr></thead><tbody>{rows}</tbody></table>")
    return _page(f"{s.name} · Data products", body)
