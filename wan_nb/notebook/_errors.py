"""The error a ``%wan_recover`` cell ends with when nothing recovered it: short, no traceback."""

from __future__ import annotations

from wan_nb.recovery.records import RecoveryError


class CellNotRecovered(RecoveryError):
    """No strategy recovered the cell. Shown as a few lines, not a traceback from wan_nb's code."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines in place of a traceback (the hook ipyparallel uses):
        # the failed attempts are already in the table above, one line each, and their full
        # tracebacks are on the report (`_wan_report.attempts[i].error_text`).
        return [
            f"{type(self).__name__}: {self}",
            "Full tracebacks: `_wan_report.attempts[i].error_text`; why each strategy was or was not "
            "tried: `_wan_report.plan`.",
        ]
