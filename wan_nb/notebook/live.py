"""The live attempts table: a widget that gains a row per attempt, or the same rows as text.

As in ``tqdm.notebook``: a widget front end with a text fallback. The widget stays
visible when the recovery ends and turns green (recovered) or red (not); then its output is
replaced by the same table as static HTML beside its text form (``update_display``), so the
saved notebook, nbval and a notebook viewer show the outcome, not "model not found" or the
first state. Where widgets cannot show (no ipywidgets, a terminal, ``WAN_NB_NO_WIDGETS=1``,
nbval runs), each attempt prints one line instead. Whether to use widgets is a parameter (``widgets=``), so tests and
callers decide; the default is :func:`widgets_available`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wan_nb.notebook import _html, _wording
from wan_nb.units import format_bytes

ENV_NO_WIDGETS = "WAN_NB_NO_WIDGETS"
_HINT = 'wan_nb: install "ipywidgets" for a live table in Jupyter; showing the attempts as text.'
_hinted = False


def widgets_available(shell: Any = None) -> bool:
    """Whether a live widget can show: a Jupyter kernel, ipywidgets importable, not turned off."""
    global _hinted
    if os.environ.get(ENV_NO_WIDGETS, "").strip() not in ("", "0"):
        return False
    from wan_nb.notebook.display import in_notebook

    if not in_notebook(shell):
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        if not _hinted:
            _hinted = True
            print(_HINT, file=sys.stderr)
        return False
    return True


@dataclass
class Row:
    """One line of the table (plain data, so the widget and the text agree)."""

    number: int
    strategy: str
    status: str = "running"
    estimated: int | None = None
    measured: int | None = None
    seconds: float | None = None
    reason: str = ""
    candidate: Any = None  # what the plan said of it (why a forced one could not help)
    attempt: Any = None

    def cells(self) -> tuple[str, ...]:
        return (
            str(self.number),
            self.strategy,
            self.status,
            format_bytes(self.estimated),
            _wording.peak_label(self, format_bytes(self.measured)),
            "—" if self.seconds is None else f"{self.seconds:.2f} s",
            self.reason,
        )


COLUMNS = ("#", "strategy", "status", "estimated peak", "measured peak", "seconds", "reason")


class LiveTable:
    """Rows of a recovery as it runs; wire :meth:`start` and :meth:`add` to ``recover``'s callbacks.

    Args:
        title: the heading.
        widgets: True for the ipywidgets table, False for text; None decides with
            :func:`widgets_available`.
        file: where the text rows go (default ``sys.stdout``).
        display: how the widget is shown (default ``IPython.display.display``, with a display id
            so that :meth:`finish` can replace it by the static table).
        advice: rewrites the core's advice for the interface in use (the magic passes
            :func:`wan_nb.notebook._wording.as_flags`: ``--allow-degraded``, not ``allow_degraded=True``).
    """

    def __init__(self, title: str = "wan_nb recovery", *, widgets: bool | None = None, file: Any = None,
                 display: Callable[[Any], Any] | None = None, advice: Callable[[str], str] | None = None) -> None:
        self.title = title
        self.advice = advice or (lambda text: text)
        self._handle: Any = None
        self.use_widgets = widgets_available() if widgets is None else bool(widgets)
        self.file = file
        self.rows: list[Row] = []
        self.state = "running"
        self.summary = ""
        self.widget: Any = None
        self._display = display
        self._shown = False
        if self.use_widgets:
            self._build_widget()

    # -- recover's callbacks ---------------------------------------------------------------
    def start(self, candidate: Any, index: int | None = None) -> None:
        """A strategy is about to be tried (``recover(on_start=...)``)."""
        self.rows.append(Row(len(self.rows) + 1, candidate.strategy,
                             estimated=getattr(candidate, "estimated_peak_bytes", None), candidate=candidate))
        self._refresh()

    def add(self, attempt: Any) -> None:
        """An attempt finished (``recover(on_attempt=...)``): fill its row, or add one."""
        row = self.rows[-1] if self.rows and self.rows[-1].status == "running" else None
        if row is None or row.strategy != attempt.strategy:
            row = Row(len(self.rows) + 1, attempt.strategy)
            self.rows.append(row)
        row.status = attempt.status
        row.estimated = attempt.estimated_peak_bytes if attempt.estimated_peak_bytes is not None else row.estimated
        row.measured = attempt.measured_peak_bytes
        row.seconds = attempt.seconds
        row.attempt = attempt
        row.reason = _wording.attempt_reason(attempt, row.candidate)
        if not self.use_widgets:
            self._print(self._text_row(row))
        self._refresh()

    def finish(self, report: Any, note: str = "") -> None:
        """The recovery ended: turn green or red, and say how it ended."""
        for row in self.rows if self.use_widgets else ():
            # The report's plan knows why a forced strategy was left out ("this call makes one
            # video"): the final table says the same as the report's. (Printed rows are out.)
            planned = _wording.candidate_for(report, row.strategy)
            if row.attempt is not None and planned is not None and getattr(planned, "skip_reason", None):
                row.reason = _wording.attempt_reason(row.attempt, planned)
        if report.winner:
            self.state = "succeeded"
            self.summary = f"Recovered with `{report.winner}`" + (" (kept on the pipeline)" if report.applied else "")
        elif report.interrupted:
            self.state = "failed"
            self.summary = "Interrupted: the pipelines were put back as they were"
        elif report.succeeded:
            self.state = "succeeded"
            self.summary = "The cell ran as it is: no strategy was needed"
        elif not self.rows:
            self.state = "failed"
            self.summary = "Nothing was tried" + (f": {report.notes[0]}" if report.notes else "")
        else:
            self.state = "failed"
            self.summary = "No strategy recovered the run" + (f": {report.notes[0]}" if report.notes else "")
        self.summary = self.advice(self.summary.rstrip("."))
        if note:
            self.summary += f". {note}"
        if not self.use_widgets:
            self._print(("✔ " if self.state == "succeeded" else "✘ ") + self.summary)
        self._refresh()
        self._settle()

    # -- text ----------------------------------------------------------------------------------
    def _print(self, line: str) -> None:
        if not self._shown:
            self._shown = True
            print(f"{self.title}:", file=self.file or sys.stdout)
        print(line, file=self.file or sys.stdout, flush=True)

    @staticmethod
    def _text_row(row: Row) -> str:
        n, strategy, status, est, measured, seconds, reason = row.cells()
        line = f"  {n:>2}. {strategy:<34} {status:<11} est. {est:>11}  peak {measured:>11}  {seconds:>8}"
        return line + (f"  {reason}" if reason else "")

    def to_text(self) -> str:
        lines = [f"{self.title}:", *(self._text_row(r) for r in self.rows)]
        if not self.rows and self.summary:
            lines = [f"{self.title}:"]
        if self.summary:
            lines.append(self.summary)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    # -- widget -------------------------------------------------------------------------
    def _build_widget(self) -> None:
        import ipywidgets as widgets

        self._heading = widgets.HTML(value=self._heading_html())
        self._table = widgets.HTML(value=self._table_html())
        self.widget = widgets.VBox([self._heading, self._table],
                                   layout=widgets.Layout(border=self._border(), padding="4px 8px"))

    def _border(self) -> str:
        colour = {"succeeded": _html._GREEN, "failed": _html._RED}.get(self.state, _html._AMBER)
        return f"2px solid {colour}"

    def _heading_html(self) -> str:
        text = _html.esc(self.title)
        if self.summary:
            text += " — " + _html.inline(self.summary)
        elif self.rows and self.rows[-1].status == "running":
            text += f" — trying <code>{_html.esc(self.rows[-1].strategy)}</code>…"
        return f"<b>{text}</b>"

    def _table_html(self) -> str:
        if not self.rows:
            # No attempt: a sentence (the heading's), not an empty table whose rows the advice
            # below would point at.
            return "" if self.summary else "<div>planning…</div>"
        head = "".join(f'<th style="{_html._CELL_CSS}">{c}</th>' for c in COLUMNS)
        body = ""
        for row in self.rows:
            tds = []
            for column, value in zip(COLUMNS, row.cells()):
                css = _html._status_css(value) if column == "status" else ""
                css += _html._TEXT_CSS if column == "reason" else ""
                css += "white-space: nowrap;" if column not in ("strategy", "reason") else ""
                tds.append(f'<td style="{_html._CELL_CSS}{css}">{_html.esc(value)}</td>')
            body += "<tr>" + "".join(tds) + "</tr>"
        return f'<table style="{_html._TABLE_CSS}"><tr>{head}</tr>{body}</table>'

    def to_html(self) -> str:
        """The table as static HTML, framed in its state's colour (what replaces the widget at the end)."""
        return (f'<div class="wan-nb" style="border: {self._border()}; padding: 4px 8px; font-family: sans-serif;">'
                f"<div>{self._heading_html()}</div>{self._table_html()}</div>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}

    def _refresh(self) -> None:
        if self.widget is None:
            return
        self._heading.value = self._heading_html()
        self._table.value = self._table_html()
        self.widget.layout.border = self._border()
        if not self._shown:
            self._shown = True
            if self._display is None:
                from IPython.display import display

                self._handle = display(self.widget, display_id=True)
            else:
                self._display(self.widget)

    def _settle(self) -> None:
        """Replace the live widget by its final state as static HTML + text, and close the widget.

        A widget's view lives in the kernel: a saved notebook reopened without it shows "Error
        displaying widget: model not found", and its saved text/plain is the widget's first
        state. The static table has neither problem.
        """
        if self.widget is None:
            return
        if not self._shown:  # finished before any row (nothing was tried): show the sentence
            self._shown = True
            if self._display is None:
                from IPython.display import display

                display(self._repr_mimebundle_(), raw=True)
            else:
                self._display(self)
        elif self._handle is not None:
            self._handle.update(self._repr_mimebundle_(), raw=True)
            self.widget.close()
