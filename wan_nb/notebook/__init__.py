"""The notebook layer: magics, live tables, rich display and plots, on top of wan_nb's core.

``%load_ext wan_nb`` loads :mod:`wan_nb.notebook.magic`. The names below are imported on
first use, so ``import wan_nb.notebook`` stays as light as ``import wan_nb``.

============================  ===========================================================
``show(obj)``                 a report as HTML (notebook) or text (terminal)
``LiveTable``                 the attempts table ``%wan_recover`` shows (``recover``'s callbacks)
``plot_report(report)``       estimated vs measured peak per strategy, and per stage (a Figure)
``plot_recovery``             estimated vs measured peak per attempt, on one Axes
``plot_stages``               peak per stage: measured (a report) or predicted (an estimate)
``plot_estimates``            predicted peak per strategy, with a budget line
``estimate_table(path, ...)`` predicted peak per strategy (what ``%wan_estimate`` shows)
``save_report(report, path)`` a standalone HTML page of a report, its plot embedded
``readable(frame)``           a DataFrame for reading: sizes in a unit named in the header, no NaN, nothing cut
``last_report()``             the report of the last ``%wan_recover`` in this kernel
============================  ===========================================================
"""

from __future__ import annotations

from typing import Any

from wan_nb._lazy import lazy_exports as _lazy_exports

_EXPORTS: dict[str, str] = {
    "show": "wan_nb.notebook.display",
    "LiveTable": "wan_nb.notebook.live",
    "plot_report": "wan_nb.plots",
    "plot_recovery": "wan_nb.plots",
    "plot_stages": "wan_nb.plots",
    "plot_estimates": "wan_nb.plots",
    "estimate_table": "wan_nb.notebook.estimates",
    "save_report": "wan_nb.notebook.export",
    "readable": "wan_nb.notebook.tables",
}

__all__ = ["last_report", *_EXPORTS]


def last_report(shell: Any = None) -> Any:
    """The RecoveryReport of the last ``%wan_recover`` in ``shell`` (default: the running one), or None."""
    from wan_nb.notebook.magic import extension_state

    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    magics = extension_state(shell) if shell is not None else None
    return magics.last_report if magics is not None else None


__getattr__, __dir__ = _lazy_exports(globals(), _EXPORTS)
