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

# JupyterLab lays output tables out with `table-layout: fixed` and right-aligned cells: with
# many columns each gets an equal share and long text is squeezed to a few characters. Every
# table here sets its own layout: columns as wide as their content, text left, wrapped.
_TABLE_CSS = "border-collapse: collapse; font-size: 0.9em; table-layout: auto; margin-left: 0; width: auto;"
_CELL_CSS = ("text-align: left; padding: 2px 8px; vertical-align: top; white-space: normal; "
             "overflow-wrap: break-word;")
_TEXT_CSS = "min-width: 12em; max-width: 40em;"  # the wide, wrapping column (reasons, summaries)
_TABLE_STYLES = [
    {"selector": "", "props": _TABLE_CSS},
    {"selector": "th", "props": _CELL_CSS + " border-bottom: 1px solid #bbb;"},
    {"selector": "td", "props": _CELL_CSS},
]


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def inline(text: Any) -> str:
    """Escaped text with its `backtick` spans as <code> (the core's messages use Markdown's backticks)."""
    parts = esc(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show the text as it is
        return esc(text)
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


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


def _integer(value: Any) -> str:
    """Counts with thousands separators; a missing count (None, NaN) shows as nothing."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def _seconds(value: Any) -> str:
    try:
        return "—" if value is None or value != value else f"{float(value):.2f} s"
    except (TypeError, ValueError):
        return str(value)


def styled_table(frame: Any, *, byte_columns: tuple[str, ...] = (), status_columns: tuple[str, ...] = (),
                 second_columns: tuple[str, ...] = (), integer_columns: tuple[str, ...] = (),
                 text_columns: tuple[str, ...] = (), index: bool = False) -> str:
    """A DataFrame as a styled HTML table: sizes readable, statuses coloured, ids stable, nothing cut."""
    frame = frame.copy()
    formats: dict[str, Any] = {}
    for column in frame.columns:
        if column in byte_columns:
            formats[column] = _bytes
        elif column in second_columns:
            formats[column] = _seconds
        elif column in integer_columns:
            formats[column] = _integer
        else:
            formats[column] = lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v)
    digest = hashlib.sha1(frame.to_json(default_handler=str).encode()).hexdigest()[:10]
    styler = frame.style.set_uuid(f"wan{digest}").format(formats, escape="html").set_table_styles(_TABLE_STYLES)
    statuses = [c for c in status_columns if c in frame.columns]
    if statuses:
        styler = styler.map(_status_css, subset=statuses)
    # Short values (sizes, counts, statuses) stay on one line: "10.58 GiB", not "10.58" over "GiB".
    short = [c for c in frame.columns if c not in text_columns and len(frame)
             and max(len(str(formats[c](v))) for v in frame[c]) <= 14]
    if short:
        styler = styler.set_properties(subset=short, **{"white-space": "nowrap"})
    wide = [c for c in text_columns if c in frame.columns]
    if wide:
        styler = styler.set_properties(subset=wide, **{"min-width": "12em", "max-width": "40em"})
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
    table = styled_table(frame, status_columns=("status",), integer_columns=("parameters", "files"),
                         text_columns=("problems",))
    head = f"{esc(report.pipeline_class or '?')} at <code>{esc(report.path)}</code>"
    sub = f"diffusers {esc(report.diffusers_version or 'not installed')}"
    if report.saved_with:
        sub += f", saved with {esc(report.saved_with)}"
    total = f"total: {report.total_parameters:,} parameters, {format_bytes(report.total_bytes)}"
    problems = _lines(report.all_problems, "problem: ")
    return _block(head, f"<div>{sub}</div>{table}<div>{esc(total)}</div>{problems}",
                  _GREEN if report.ok else _RED)


def _key_values(items: Any) -> str:
    """A two-column key/value table, left-aligned and no wider than its text."""
    rows = "".join(f'<tr><td style="{_CELL_CSS}">{esc(k)}</td><td style="{_CELL_CSS}">{esc(v)}</td></tr>'
                   for k, v in items)
    return f'<table style="{_TABLE_CSS}">{rows}</table>' if rows else ""


def diagnosis_html(diagnosis: Any) -> str:
    from wan_nb.diagnosis.core import BYTE_KEYS
    from wan_nb.diagnosis.lookalikes import described

    where = diagnosis.stage if diagnosis.component is None else f"{diagnosis.stage} ({diagnosis.component})"
    head = f"{esc(diagnosis.category)} at {esc(where)}" + (" — recoverable" if diagnosis.recoverable else "")
    body = f"<div>{inline(diagnosis.summary)}</div>"
    if diagnosis.could_also_be:
        body += f"<div>Could also be: {esc(described(diagnosis.could_also_be))}</div>"
    body += _key_values((k, _bytes(v) if k in BYTE_KEYS and isinstance(v, (int, float)) else v)
                        for k, v in diagnosis.evidence.items())
    if diagnosis.suggested:
        body += f"<div>Try: {', '.join(f'<code>{esc(s)}</code>' for s in diagnosis.suggested)}</div>"
    if diagnosis.next_steps:
        body += "<ul>" + "".join(f"<li>{inline(s)}</li>" for s in diagnosis.next_steps) + "</ul>"
    return _block(head, body, _AMBER if diagnosis.recoverable else _RED)


ATTEMPT_COLUMNS = ("strategy", "status", "estimated peak", "measured peak", "seconds", "reason")


def attempts_frame(attempts: Any, report: Any = None) -> Any:
    """The live table's columns, as the table shows them: sizes in units, a failed peak "at failure"."""
    import pandas as pd

    from wan_nb.notebook._wording import attempt_reason, candidate_for, peak_label

    rows = [{
        "strategy": a.strategy,
        "status": a.status,
        "estimated peak": _bytes(a.estimated_peak_bytes),
        "measured peak": peak_label(a, _bytes(a.measured_peak_bytes)),
        "seconds": _seconds(a.seconds),
        "reason": attempt_reason(a, candidate_for(report, a.strategy)),
    } for a in attempts]
    return pd.DataFrame(rows, columns=list(ATTEMPT_COLUMNS))


def attempt_reason(attempt: Any, width: int = 160) -> str:
    """One line for an attempt (kept for callers): see :func:`wan_nb.notebook._wording.attempt_reason`."""
    from wan_nb.notebook._wording import attempt_reason as reason

    return reason(attempt)


def recovery_title(report: Any) -> tuple[str, str]:
    """The heading of a recovery (HTML) and its colour."""
    if report.winner:
        title = f"Recovered with <code>{esc(report.winner)}</code>" + (" (kept on the pipeline)" if report.applied else "")
        return title, _GREEN
    if report.interrupted:
        return "Interrupted: the pipelines were put back as they were", _AMBER
    if report.succeeded:
        return "The run succeeded as it is: no strategy was needed", _GREEN
    return "No strategy recovered the run", _RED


def recovery_report_html(report: Any) -> str:
    head_lines = []
    summary = (report.diagnosis or {}).get("summary")
    if summary:
        head_lines.append(f"Failure: {summary}")
    if report.budget_bytes is not None:
        head_lines.append(f"Budget: {format_bytes(report.budget_bytes)} on {report.device}")
    attempts = ([report.probe] if report.probe is not None else []) + list(report.attempts)
    title, colour = recovery_title(report)
    body = "".join(f"<div>{inline(line)}</div>" for line in head_lines)
    if attempts:
        body += styled_table(attempts_frame(attempts, report), status_columns=("status",), text_columns=("reason",))
    else:
        body += "<div>Nothing was tried" + (f": {inline(report.notes[0])}" if report.notes else ".") + "</div>"
    snippet = report.snippet()
    if snippet:
        body += f'<details open><summary>The code that worked</summary><pre>{esc(snippet)}</pre></details>'
    if report.plan is not None and not report.winner and report.plan.skipped:
        body += skipped_html(report.plan.skipped, open_=False)
    notes = report.notes[1:] if not attempts else report.notes
    body += "".join(f"<div>Note: {inline(n)}</div>" for n in notes)
    return _block(title, body, colour)


def skipped_html(skipped: Any, open_: bool = False) -> str:
    """The candidates left out, grouped by why, in one collapsed block (a plan has dozens)."""
    groups: dict[str, list[Any]] = {}
    for c in skipped:
        groups.setdefault(c.skip_reason or "no reason given", []).append(c)
    items = "".join(
        f'<li style="margin: 2px 0;">{inline(reason)}: '
        + ", ".join(f"<code>{esc(c.strategy)}</code>" for c in members) + "</li>"
        for reason, members in sorted(groups.items(), key=lambda kv: -len(kv[1]))
    )
    count = len(list(skipped))
    label = f"{count} not tried, by reason ({len(groups)} reason{'s' if len(groups) != 1 else ''})"
    return (f'<details{" open" if open_ else ""}><summary>{label}</summary>'
            f'<ul style="margin: 2px 0; max-width: 60em;">{items}</ul></details>')


PLAN_COLUMNS = ("#", "strategy", "estimated peak", "fit", "output", "slowdown", "changes", "why")


def plan_frame(plan: Any) -> Any:
    """The planned candidates in order, as the plan table shows them."""
    import pandas as pd

    rows = [{
        "#": str(i), "strategy": c.strategy, "estimated peak": _bytes(c.estimated_peak_bytes), "fit": c.fit,
        "output": c.quality, "slowdown": c.slowdown,
        "changes": ", ".join(f"{k}={v}" for k, v in c.changes.items()), "why": c.reason,
    } for i, c in enumerate(plan.planned, 1)]
    return pd.DataFrame(rows, columns=list(PLAN_COLUMNS))


def plan_html(plan: Any) -> str:
    head = f"Plan for {esc(plan.category or 'the failure')}"
    if plan.stage and plan.stage != "unknown":
        head += f" in {esc(plan.stage)}"
    head += f" on {esc(plan.device)}"
    if plan.available_bytes is not None:
        head += f", {format_bytes(plan.available_bytes)} available"
        if plan.budget_bytes is not None:
            head += f" (budget {format_bytes(plan.budget_bytes)})"
    planned = list(plan.planned)
    if planned:
        body = (f"<div>{len(planned)} to try, in this order:</div>"
                + styled_table(plan_frame(plan), status_columns=("fit",), text_columns=("why",)))
    else:
        body = "<div>Nothing to try.</div>"
    if plan.skipped:
        body += skipped_html(plan.skipped)
    body += "".join(f"<div>note: {inline(n)}</div>" for n in plan.notes)
    return _block(head, body, _GREEN if plan.planned else _RED)


def estimate_html(estimate: Any) -> str:
    """A MemoryEstimate: its stage table (weights, activations, held, peak) and its assumptions."""
    table = styled_table(estimate.to_frame(), byte_columns=("weights", "activations", "held", "peak_bytes"))
    s = estimate.settings
    title = (f"Estimated peak on {esc(estimate.device)}: {format_bytes(estimate.peak_bytes)} "
             f"({esc(estimate.peak_stage)}), strategy: <code>{esc(estimate.strategy)}</code>")
    sub = (f"{s.height}x{s.width}, {s.num_frames} frames, {s.num_inference_steps} steps, {esc(s.dtype)}, "
           f"batch {s.batch_size}")
    return _block(title, f"<div>{sub}</div>{table}" + _lines(estimate.assumptions, "assumption: "))
