"""Plots of predicted and measured memory: matplotlib only, no IPython, no pyplot.

Figures are built with ``matplotlib.figure.Figure`` rather than ``pyplot``, so they hold no
global state, are not shown twice in a notebook (once by the inline backend, once as the
value), and save from a script or a test without choosing a backend. Each ``plot_*``
function draws on ``ax`` when given one and returns the Axes it drew on.
"""

from __future__ import annotations

from typing import Any

from wan_nb.units import format_bytes

_ESTIMATED = "#90a4ae"
_MEASURED = "#1565c0"
_FAILED = "#c62828"
_LIMIT = "#ef6c00"
_STAGE_ORDER = ("weights", "load", "to_device", "text_encode", "denoise", "vae_decode", "vae_encode", "postprocess", "unknown")


def _axes(ax: Any, size: tuple[float, float] = (7.0, 3.6)) -> Any:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained").add_subplot()


def _unit(values: list[int | None]) -> tuple[float, str]:
    """The binary unit the largest value reads best in: (divisor, name)."""
    top = max((v for v in values if v), default=0)
    for power, name in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if top >= 1024**power:
            return float(1024**power), name
    return 1.0, "B"


def _limit(report: Any) -> tuple[int | None, str]:
    if getattr(report, "budget_bytes", None) is not None:
        return report.budget_bytes, f"budget {format_bytes(report.budget_bytes)}"
    if getattr(report, "available_bytes", None) is not None:
        return report.available_bytes, f"available {format_bytes(report.available_bytes)}"
    return None, ""


def _attempts(report: Any) -> list[Any]:
    return ([report.probe] if getattr(report, "probe", None) is not None else []) + list(report.attempts)


def plot_recovery(report: Any, ax: Any = None) -> Any:
    """Estimated vs measured peak per attempt: grouped bars, the budget (or capacity) as a line, failures marked."""
    ax = _axes(ax)
    attempts = _attempts(report)
    limit, limit_label = _limit(report)
    values = [a.estimated_peak_bytes for a in attempts] + [a.measured_peak_bytes for a in attempts] + [limit]
    scale, unit = _unit(values)
    width = 0.38
    positions = list(range(len(attempts)))
    for i, attempt in enumerate(attempts):
        failed = attempt.status != "success"
        if attempt.estimated_peak_bytes is not None:
            ax.bar(i - width / 2, attempt.estimated_peak_bytes / scale, width, color=_ESTIMATED,
                   label="estimated" if "estimated" not in _labels(ax) else None)
        else:
            ax.text(i - width / 2, 0, "no\nestimate", ha="center", va="bottom", fontsize=7, color="#555")
        if attempt.measured_peak_bytes is not None:
            ax.bar(i + width / 2, attempt.measured_peak_bytes / scale, width,
                   color=_FAILED if failed else _MEASURED, hatch="//" if failed else None,
                   label=("measured (failed)" if failed else "measured")
                   if ("measured (failed)" if failed else "measured") not in _labels(ax) else None)
        if failed:
            top = max(attempt.measured_peak_bytes or 0, attempt.estimated_peak_bytes or 0) / scale
            ax.annotate(attempt.status, (i, top), ha="center", va="bottom", color=_FAILED, fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
    if limit is not None:
        ax.axhline(limit / scale, color=_LIMIT, linestyle="--", linewidth=1.2, label=limit_label)
    ax.set_xticks(positions, [_short(a.strategy) for a in attempts], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"peak memory ({unit})")
    ax.set_title(f"Estimated vs measured peak on {report.device}", fontsize=10)
    if attempts:
        ax.legend(fontsize=8, loc="best")
    ax.set_ylim(bottom=0)
    return ax


def _labels(ax: Any) -> set[str]:
    return {h.get_label() for h in ax.get_legend_handles_labels()[0]}


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _stages_of(obj: Any) -> dict[str, dict[str, int]]:
    """{series name: {stage: bytes}} for a RecoveryReport (measured) or a MemoryEstimate (predicted)."""
    if hasattr(obj, "attempts"):
        return {a.strategy: dict(a.by_stage) for a in _attempts(obj) if a.by_stage}
    stages = getattr(obj, "by_stage", None) or getattr(obj, "stages", None) or {}
    if isinstance(stages, dict):
        values = {str(k): int(v if not hasattr(v, "peak_bytes") else v.peak_bytes) for k, v in stages.items()}
    else:  # a sequence of per-stage records
        values = {str(s.stage): int(s.peak_bytes) for s in stages}
    name = getattr(obj, "strategy", None) or "estimate"
    return {str(name): values}


def plot_stages(report_or_estimate: Any, ax: Any = None) -> Any:
    """Peak memory per stage: measured per attempt (a RecoveryReport) or predicted (a MemoryEstimate)."""
    ax = _axes(ax)
    series = _stages_of(report_or_estimate)
    stages = [s for s in _STAGE_ORDER if any(s in v for v in series.values())]
    stages += sorted({s for v in series.values() for s in v} - set(stages))
    scale, unit = _unit([b for v in series.values() for b in v.values()])
    count = max(1, len(series))
    width = 0.8 / count
    colours = _palette(count)
    for i, (name, values) in enumerate(series.items()):
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(stages))]
        ax.bar(xs, [values.get(s, 0) / scale for s in stages], width, label=_short(name), color=colours[i])
    limit, limit_label = _limit(report_or_estimate)
    if limit is not None:
        ax.axhline(limit / scale, color=_LIMIT, linestyle="--", linewidth=1.2, label=limit_label)
    ax.set_xticks(range(len(stages)), stages, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"peak memory ({unit})")
    measured = hasattr(report_or_estimate, "attempts")
    ax.set_title("Measured peak per stage" if measured else "Estimated peak per stage", fontsize=10)
    if series:
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no per-stage figures", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(bottom=0)
    return ax


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def plot_estimates(estimates: Any, ax: Any = None, *, budget: int | str | None = None) -> Any:
    """Predicted peak per strategy (a ``{name: MemoryEstimate}`` mapping or a sequence), with an optional budget line."""
    from wan_nb.units import parse_bytes

    ax = _axes(ax)
    if isinstance(estimates, dict):
        items = [(str(k), v) for k, v in estimates.items()]
    else:
        items = [(str(getattr(e, "strategy", None) or "as is"), e) for e in estimates]
    limit = parse_bytes(budget) if budget is not None else None
    peaks = [int(e.peak_bytes) for _, e in items]
    scale, unit = _unit([*peaks, limit])
    colours = [_FAILED if limit is not None and p > limit else _MEASURED for p in peaks]
    ax.barh(range(len(items)), [p / scale for p in peaks], color=colours)
    ax.set_yticks(range(len(items)), [_short(name, 40) for name, _ in items], fontsize=8)
    ax.invert_yaxis()
    for i, peak in enumerate(peaks):
        ax.text(peak / scale, i, " " + format_bytes(peak), va="center", fontsize=7)
    if limit is not None:
        ax.axvline(limit / scale, color=_LIMIT, linestyle="--", linewidth=1.2, label=f"budget {format_bytes(limit)}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel(f"estimated peak ({unit})")
    ax.set_title("Estimated peak per strategy", fontsize=10)
    return ax


def plot_report(report: Any) -> Any:
    """A RecoveryReport's figure: estimated vs measured per strategy, and the per-stage breakdown.

    Returns the ``Figure`` (``report.plot()`` should return this; ``fig.savefig(...)`` writes it).
    """
    from matplotlib.figure import Figure

    if not hasattr(report, "attempts"):
        figure = Figure(figsize=(7, 3.6), layout="constrained")
        plot_stages(report, figure.add_subplot())
        return figure
    figure = Figure(figsize=(12, 4), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=[1, 1.3])
    plot_recovery(report, left)
    plot_stages(report, right)
    return figure
