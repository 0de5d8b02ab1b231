"""HTML for wan_nb's reports: styled pandas tables, with their plain-text form kept beside.

Everything here is deterministic for the same report (no random table ids: nbval compares
``text/html`` too), and pure: data in, a string out. pandas' Styler needs jinja2, a
dependency of wan_nb.
"""

from __future__ import annotations

import hashlib
import html
from typing import Any

from wan_nb.units import format_bytes

_GREEN = "#2e7d32"
_RED = "#c62828"
_AMBER = "#b26a00"
_GREY = "#757575"

STATUS_COLOURS = {
    "success": _GREEN, "ok": _GREEN, "planned": _GREEN, "fits": _GREEN,
    "failed": _RED, "missing": _RED, "corrupt": _RED, "unavailable": _RED, "no": _RED, "interrupted": _AMBER,
    "tight": _AMBER, "skipped": _GREY, "optional": _GREY, "unknown": _GREY, "running": _AMBER,
}

_TABLE_STYLES = [
    {"selector": "", "props": "border-collapse: collapse; font-size: 0.9em;"},
    {"selector": "th", "props": "text-align: left; padding: 2px 8px; border-bottom: 1px solid #bbb;"},
    {"selector": "td", "props": "text-align: left; padding: 2px 8px; vertical-align: top;"},
]


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _status_css(value: Any) -> str:
    colour = STATUS_COLOURS.get(str(value))
    return f"color: {colour}; font-weight: bold;" if colour else ""


def _bytes(value: Any) -> str:
    try:
        if value is None or value != value:  # None or NaN
            return "—"
        return format_bytes(int(value))
    except (TypeError, ValueError):
        return str(value)


def _seconds(value: Any) -> str:
    try:
        return "—" if value is None or value != value else f"{float(value):.2f} s"
    except (TypeError, ValueError):
        return str(value)


def styled_table(frame: Any, *, byte_columns: tuple[str, ...] = (), status_columns: tuple[str, ...] = (),
                 second_columns: tuple[str, ...] = (), index: bool = False) -> str:
    """A DataFrame as a styled HTML table: sizes readable, statuses coloured, ids stable."""
    frame = frame.copy()
    formats: dict[str, Any] = {}
    for column in frame.columns:
        if column in byte_columns:
            formats[column] = _bytes
        elif column in second_columns:
            formats[column] = _seconds
        else:
            formats[column] = lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v)
    digest = hashlib.sha1(frame.to_json(default_handler=str).encode()).hexdigest()[:10]
    styler = frame.style.set_uuid(f"wan{digest}").format(formats, escape="html").set_table_styles(_TABLE_STYLES)
    statuses = [c for c in status_columns if c in frame.columns]
    if statuses:
        styler = styler.map(_status_css, subset=statuses)
    if not index:
        styler = styler.hide(axis="index")
    return styler.to_html()


def _block(title: str, body: str, border: str | None = None) -> str:
    style = "font-family: sans-serif; margin: 4px 0;"
    if border:
        style += f" border-left: 4px solid {border}; padding-left: 8px;"
    return f'<div class="wan-nb" style="{style}"><div><b>{title}</b></div>{body}</div>'


def _lines(items: Any, prefix: str = "") -> str:
    return "".join(f"<div>{esc(prefix)}{esc(item)}</div>" for item in items)


# -- one function per report type -------------------------------------------------------------
def component_report_html(report: Any) -> str:
    frame = report.to_frame().reset_index().drop(columns=["bytes"], errors="ignore")
    table = styled_table(frame, status_columns=("status",))
    head = f"{esc(report.pipeline_class or '?')} at <code>{esc(report.path)}</code>"
    sub = f"diffusers {esc(report.diffusers_version or 'not installed')}"
    if report.saved_with:
        sub += f", saved with {esc(report.saved_with)}"
    total = f"total: {report.total_parameters:,} parameters, {format_bytes(report.total_bytes)}"
    problems = _lines(report.all_problems, "problem: ")
    return _block(head, f"<div>{sub}</div>{table}<div>{esc(total)}</div>{problems}",
                  _GREEN if report.ok else _RED)


def diagnosis_html(diagnosis: Any) -> str:
    from wan_nb.diagnosis.core import BYTE_KEYS

    where = diagnosis.stage if diagnosis.component is None else f"{diagnosis.stage} ({diagnosis.component})"
    head = f"{esc(diagnosis.category)} at {esc(where)}" + (" — recoverable" if diagnosis.recoverable else "")
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(_bytes(v) if k in BYTE_KEYS and isinstance(v, (int, float)) else v)}</td></tr>"
        for k, v in diagnosis.evidence.items()
    )
    body = f"<div>{esc(diagnosis.summary)}</div>"
    if rows:
        body += f'<table style="font-size: 0.9em;">{rows}</table>'
    if diagnosis.suggested:
        body += f"<div>Try: {', '.join(f'<code>{esc(s)}</code>' for s in diagnosis.suggested)}</div>"
    if diagnosis.next_steps:
        body += "<ul>" + "".join(f"<li>{esc(s)}</li>" for s in diagnosis.next_steps) + "</ul>"
    return _block(head, body, _AMBER if diagnosis.recoverable else _RED)


def attempts_frame(attempts: Any) -> Any:
    """The live table's columns: strategy, status, estimated and measured peak, seconds, reason."""
    import pandas as pd

    rows = [{
        "strategy": a.strategy,
        "status": a.status,
        "estimated peak": a.estimated_peak_bytes,
        "measured peak": a.measured_peak_bytes,
        "seconds": a.seconds,
        "reason": attempt_reason(a),
    } for a in attempts]
    return pd.DataFrame(rows, columns=["strategy", "status", "estimated peak", "measured peak", "seconds", "reason"])


def attempt_reason(attempt: Any, width: int = 160) -> str:
    """One line: the error of a failed attempt, else the first clause of why it was tried."""
    text = attempt.error if attempt.error else (attempt.reason or "").split(";")[0]
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def recovery_report_html(report: Any) -> str:
    head_lines = []
    summary = (report.diagnosis or {}).get("summary")
    if summary:
        head_lines.append(f"Failure: {summary}")
    if report.budget_bytes is not None:
        head_lines.append(f"Budget: {format_bytes(report.budget_bytes)} on {report.device}")
    attempts = ([report.probe] if report.probe is not None else []) + list(report.attempts)
    table = styled_table(attempts_frame(attempts), byte_columns=("estimated peak", "measured peak"),
                         status_columns=("status",), second_columns=("seconds",))
    if report.winner:
        title = f"Recovered with <code>{esc(report.winner)}</code>" + (" (kept on the pipeline)" if report.applied else "")
        colour = _GREEN
    elif report.interrupted:
        title, colour = "Interrupted: the pipelines were put back as they were", _AMBER
    elif report.succeeded:
        title, colour = "The run succeeded as it is: no strategy was needed", _GREEN
    else:
        title, colour = "No strategy recovered the run", _RED
    body = _lines(head_lines) + table
    snippet = report.snippet()
    if snippet:
        body += f'<details open><summary>The code that worked</summary><pre>{esc(snippet)}</pre></details>'
    if report.plan is not None and not report.winner and report.plan.skipped:
        body += _lines((f"{c.strategy}: {c.skip_reason}" for c in report.plan.skipped), "not tried: ")
    body += _lines(report.notes, "Note: ")
    return _block(title, body, colour)


def plan_html(plan: Any) -> str:
    frame = plan.to_frame()
    frame["order"] = frame["order"].map(lambda v: "" if v is None or v != v else str(int(v)))
    table = styled_table(frame, byte_columns=("estimated_peak", "available"), status_columns=("status", "fit"))
    head = f"Plan for {esc(plan.category or 'the failure')}"
    if plan.stage and plan.stage != "unknown":
        head += f" in {esc(plan.stage)}"
    head += f" on {esc(plan.device)}"
    if plan.available_bytes is not None:
        head += f", {format_bytes(plan.available_bytes)} available"
        if plan.budget_bytes is not None:
            head += f" (budget {format_bytes(plan.budget_bytes)})"
    return _block(head, table + _lines(plan.notes, "note: "), _GREEN if plan.planned else _RED)


def estimate_html(estimate: Any) -> str:
    """A MemoryEstimate: its stage table (weights, activations, held, peak) and its assumptions."""
    table = styled_table(estimate.to_frame(), byte_columns=("weights", "activations", "held", "peak_bytes"))
    s = estimate.settings
    title = (f"Estimated peak on {esc(estimate.device)}: {format_bytes(estimate.peak_bytes)} "
             f"({esc(estimate.peak_stage)}), strategy: <code>{esc(estimate.strategy)}</code>")
    sub = (f"{s.height}x{s.width}, {s.num_frames} frames, {s.num_inference_steps} steps, {esc(s.dtype)}, "
           f"batch {s.batch_size}")
    return _block(title, f"<div>{sub}</div>{table}" + _lines(estimate.assumptions, "assumption: "))
