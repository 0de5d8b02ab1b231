"""Rich display for wan_nb's reports: HTML beside plain text, registered when the extension loads.

The core classes stay free of IPython: ``%load_ext wan_nb`` registers a ``mimebundle``
formatter for each of them by module and class name (``for_type_by_name``, so nothing is
imported to register them), and ``%unload_ext wan_nb`` puts back whatever was there before.
:func:`show` renders one of them anywhere: in a notebook as HTML, in a terminal as text.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

from wan_nb.notebook import _html

# (module, class) -> HTML builder. Keyed by name so that registering imports nothing (no
# torch at `%load_ext`).
_RENDERERS: dict[tuple[str, str], Callable[[Any], str]] = {
    ("wan_nb.model.report", "ComponentReport"): _html.component_report_html,
    ("wan_nb.recovery.records", "RecoveryReport"): _html.recovery_report_html,
    ("wan_nb.planning.records", "Plan"): _html.plan_html,
    ("wan_nb.diagnosis.core", "Diagnosis"): _html.diagnosis_html,
    ("wan_nb.memory.estimate", "MemoryEstimate"): _html.estimate_html,
}
_FIGURE = ("matplotlib.figure", "Figure")
_AXES = ("matplotlib.axes._axes", "Axes")


def _key(obj: Any) -> tuple[str, str] | None:
    for cls in type(obj).__mro__:
        key = (cls.__module__, cls.__name__)
        if key in _RENDERERS:
            return key
    return None


def to_text(obj: Any) -> str:
    """The plain-text form: ``obj.to_text()`` where it exists."""
    method = getattr(obj, "to_text", None)
    return method() if callable(method) else str(obj)


def to_html(obj: Any) -> str:
    """The HTML form of a wan_nb report (``ValueError`` for anything else)."""
    key = _key(obj)
    if key is None:
        raise ValueError(f"wan_nb has no HTML form for {type(obj).__name__}; `show` takes wan_nb's reports.")
    return _RENDERERS[key](obj)


def mimebundle(obj: Any) -> dict[str, str]:
    """``{"text/plain": ..., "text/html": ...}`` for a wan_nb report."""
    return {"text/plain": to_text(obj), "text/html": to_html(obj)}


def _bundle_printer(obj: Any, include: Any = None, exclude: Any = None) -> dict[str, str]:
    try:
        return mimebundle(obj)
    except Exception:  # noqa: BLE001 - a broken renderer falls back to text, never hides the report
        return {"text/plain": to_text(obj)}


def figure_png(figure: Any) -> bytes:
    """A matplotlib figure as PNG bytes (wan_nb's figures are not managed by pyplot)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", dpi=100)
    return buffer.getvalue()


def axes_png(ax: Any) -> bytes | None:
    """An Axes of a figure pyplot does not manage, as PNG (``plot_stages(report)`` as a cell's value).

    A pyplot figure is shown by the inline backend already: None, so it is not shown twice.
    """
    figure = ax.get_figure(root=True) if hasattr(ax, "get_figure") else None
    if figure is None or getattr(figure.canvas, "manager", None) is not None:
        return None
    return figure_png(figure)


def in_notebook(shell: Any = None) -> bool:
    """True under a Jupyter kernel (a frontend that shows HTML), False in a terminal or plain Python."""
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def show(obj: Any, *, notebook: bool | None = None, file: Any = None) -> None:
    """Show a wan_nb report: HTML with its text beside it in a notebook, text elsewhere.

    Args:
        notebook: force one form (default: :func:`in_notebook`).
        file: where the text goes (default ``sys.stdout``).
    """
    if notebook is None:
        notebook = in_notebook()
    if notebook and _key(obj) is not None:
        from IPython.display import display

        display(mimebundle(obj), raw=True)
    else:
        print(to_text(obj), file=file or sys.stdout)


class Registration:
    """What :func:`register` added to a shell, so that :func:`unregister` removes exactly that."""

    def __init__(self) -> None:
        self.previous: dict[tuple[str, str, str], Any] = {}
        self.added: list[tuple[str, str, str]] = []


def register(shell: Any) -> Registration:
    """Add the formatters: a mimebundle for each report type, PNG for wan_nb's figures."""
    done = Registration()
    formatters = shell.display_formatter
    bundle = formatters.mimebundle_formatter
    for module, name in _RENDERERS:
        done.previous[("bundle", module, name)] = bundle.for_type_by_name(module, name, _bundle_printer)
        done.added.append(("bundle", module, name))
    png = formatters.formatters.get("image/png")
    # wan_nb's figures are not pyplot's: without the inline backend they would show as text.
    # Each gets a PNG form only when nothing else gives one, so `%matplotlib` choices win.
    for (module, name), printer in ((_FIGURE, figure_png), (_AXES, axes_png)):
        if png is not None and not _has_printer(png, module, name):
            png.for_type_by_name(module, name, printer)
            done.added.append(("image/png", module, name))
    return done


def _has_printer(formatter: Any, module: str, name: str) -> bool:
    if (module, name) in formatter.deferred_printers:
        return True
    return any((cls.__module__, cls.__name__) == (module, name) for cls in formatter.type_printers)


def unregister(shell: Any, done: Registration) -> None:
    """Remove what :func:`register` added and put back the printers it replaced."""
    formatters = shell.display_formatter
    for kind, module, name in done.added:
        formatter = formatters.mimebundle_formatter if kind == "bundle" else formatters.formatters[kind]
        formatter.pop(f"{module}.{name}", None)
        previous = done.previous.get((kind, module, name))
        if previous is not None:
            formatter.for_type_by_name(module, name, previous)
