"""The error a ``%wan_recover`` cell ends with when nothing recovered it: short, no traceback."""

from __future__ import annotations

from typing import Any

from wan_nb.notebook._wording import as_flags
from wan_nb.recovery.records import RecoveryError


class CellNotRecovered(RecoveryError):
    """No strategy recovered the cell. Shown as a few lines, not a traceback from wan_nb's code."""

    def __init__(self, report: Any) -> None:
        super().__init__(report)
        # The magic's user sets options with flags: say `--allow-degraded`, not `allow_degraded=True`.
        self.args = (as_flags(str(self.args[0])),) if self.args else self.args

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines in place of a traceback (the hook ipyparallel uses):
        # the failed attempts are already in the table above, one line each, and their full
        # tracebacks are on the report (`_wan_report.attempts[i].error_text`).
        lines = [f"{type(self).__name__}: {self}"]
        if self.report.attempts:
            lines.append("Full tracebacks: `_wan_report.attempts[i].error_text`; why each strategy was or was not "
                         "tried: `_wan_report.plan`.")
        elif self.report.plan is not None and self.report.plan.candidates:
            lines.append("Nothing was tried; why each strategy was left out: `_wan_report.plan`.")
        return lines
