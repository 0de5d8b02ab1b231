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
_STAGE_ORDER = ("weights", "load", "to_device", "text_encode", "preprocess", "vae_encode", "denoise", "vae_decode",
                "postprocess", "unknown")
# The meter files memory used outside the pipeline's known stages (before the first, between
# two) under "unknown": on a plot that reads as a stage of its own, so it is named for what it is.
_STAGE_LABELS = {"unknown": "outside the stages"}
# A capacity far above the data (20 GiB of host RAM under 12 MiB bars) would squash every
# bar to nothing: such a line is left off the plot and named in the title instead.
_OFF_SCALE = 4.0


def _axes(ax: Any, size: tuple[float, float] = (7.0, 3.6)) -> Any:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained").add_subplot()


def _unit(values: list[int | None]) -> tuple[float, str]:
    """The binary unit the largest value reads best in: (divisor, name)."""
    top = max((v for v in values if v is not None and v == v), default=0)
    for power, name in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if top >= 1024**power:
            return float(1024**power), name
    return 1.0, "B"


def _limit(report: Any) -> tuple[int | None, str]:
    """The line to draw: the budget (the report's, else the one the failed cell ran under), else the capacity."""
    if getattr(report, "budget_bytes", None) is not None:
        return report.budget_bytes, f"budget {format_bytes(report.budget_bytes)}"
    evidence = (getattr(report, "diagnosis", None) or {}).get("evidence") or {} \
        if isinstance(getattr(report, "diagnosis", None), dict) else {}
    if isinstance(evidence.get("budget"), (int, float)):
        # `with memory_budget(...)` inside the cell: the recovery ran under it too.
        return int(evidence["budget"]), f"budget {format_bytes(int(evidence['budget']))} (the cell's)"
    if getattr(report, "available_bytes", None) is not None:
        return report.available_bytes, f"available {format_bytes(report.available_bytes)}"
    return None, ""


def _drawn_limit(report: Any, data: list[int | None]) -> tuple[int | None, str, str]:
    """(limit to draw or None, its label, a title note when it is left off for being off the scale)."""
    limit, label = _limit(report)
    top = max((v for v in data if v), default=0)
    if limit is not None and top and limit > _OFF_SCALE * top and not label.startswith("budget"):
        return None, "", f"{label}, off the scale"
    return limit, label, ""


def _legend(ax: Any) -> None:
    """The legend beside the axes, never over the bars or the budget line."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)


def _figure_unit(report: Any) -> tuple[float, str]:
    """One unit for every axes of a report's figure, chosen from all of its numbers."""
    values: list[int | None] = []
    for a in _attempts(report):
        values += [a.estimated_peak_bytes, a.measured_peak_bytes, *a.by_stage.values()]
    limit, _, _ = _drawn_limit(report, values)
    return _unit([*values, limit])


def _attempts(report: Any) -> list[Any]:
    return ([report.probe] if getattr(report, "probe", None) is not None else []) + list(report.attempts)


def plot_recovery(report: Any, ax: Any = None, *, unit: tuple[float, str] | None = None) -> Any:
    """Estimated vs measured peak per attempt: grouped bars, the budget (or capacity) as a line, failures marked.

    A failed attempt's measured bar is its peak at the failure (hatched, red), not what it needed.
    """
    ax = _axes(ax)
    attempts = _attempts(report)
    data = [a.estimated_peak_bytes for a in attempts] + [a.measured_peak_bytes for a in attempts]
    limit, limit_label, off_scale = _drawn_limit(report, data)
    scale, unit_name = unit or _unit([*data, limit])
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
                   label=("measured at failure" if failed else "measured")
                   if ("measured at failure" if failed else "measured") not in _labels(ax) else None)
        if failed:
            top = max(attempt.measured_peak_bytes or 0, attempt.estimated_peak_bytes or 0) / scale
            ax.annotate(attempt.status, (i, top), ha="center", va="bottom", color=_FAILED, fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
    if limit is not None:
        ax.axhline(limit / scale, color=_LIMIT, linestyle="--", linewidth=1.2, label=limit_label)
    ax.set_xticks(positions, [_short(a.strategy) for a in attempts], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"peak memory ({unit_name})")
    ax.set_title(f"Estimated vs measured peak on {report.device}" + (f" ({off_scale})" if off_scale else ""),
                 fontsize=10)
    if attempts:
        _legend(ax)
    ax.set_ylim(bottom=0)
    _headroom(ax)
    return ax


def _headroom(ax: Any) -> None:
    """Room above the tallest bar for the failure labels."""
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top * 1.12)


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


def _failed_at(obj: Any) -> dict[str, str]:
    """{attempt: the stage it failed in} for the failed attempts of a report."""
    if not hasattr(obj, "attempts"):
        return {}
    return {a.strategy: str((a.diagnosis or {}).get("stage") or "unknown")
            for a in _attempts(obj) if a.status == "failed"}


def plot_stages(report_or_estimate: Any, ax: Any = None, *, unit: tuple[float, str] | None = None) -> Any:
    """Peak memory per stage: measured per attempt (a RecoveryReport) or predicted (a MemoryEstimate).

    A failed attempt's bars are hatched and a ✘ marks the stage it failed in; memory used
    outside the pipeline's stages is labelled so, not as a stage.
    """
    ax = _axes(ax)
    series = _stages_of(report_or_estimate)
    failed_at = _failed_at(report_or_estimate)
    stages = [s for s in _STAGE_ORDER if any(s in v for v in series.values())]
    stages += sorted({s for v in series.values() for s in v} - set(stages))
    data = [b for v in series.values() for b in v.values()]
    limit, limit_label, off_scale = _drawn_limit(report_or_estimate, data)
    scale, unit_name = unit or _unit([*data, limit])
    count = max(1, len(series))
    width = 0.8 / count
    colours = _palette(count)
    for i, (name, values) in enumerate(series.items()):
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(stages))]
        failed = name in failed_at
        ax.bar(xs, [values.get(s, 0) / scale for s in stages], width, color=colours[i],
               label=_short(name) + (" (failed)" if failed else ""), hatch="//" if failed else None,
               edgecolor=_FAILED if failed else None, linewidth=0.8 if failed else 0)
        stage = failed_at.get(name)
        if failed and stage in stages:
            j = stages.index(stage)
            ax.annotate("✘", (xs[j], values.get(stage, 0) / scale), ha="center", va="bottom", color=_FAILED,
                        fontsize=10, fontweight="bold", xytext=(0, 1), textcoords="offset points")
    if limit is not None:
        ax.axhline(limit / scale, color=_LIMIT, linestyle="--", linewidth=1.2, label=limit_label)
    if failed_at:
        ax.plot([], [], linestyle="none", marker="$✘$", color=_FAILED, label="where it failed")
    ax.set_xticks(range(len(stages)), [_STAGE_LABELS.get(s, s) for s in stages], rotation=20, ha="right",
                  fontsize=8)
    ax.set_ylabel(f"peak memory ({unit_name})")
    measured = hasattr(report_or_estimate, "attempts")
    title = "Measured peak per stage" if measured else "Estimated peak per stage"
    ax.set_title(title + (f" ({off_scale})" if off_scale else ""), fontsize=10)
    if series:
        _legend(ax)
    else:
        ax.text(0.5, 0.5, "no per-stage figures", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(bottom=0)
    _headroom(ax)
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
        _legend(ax)
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
    figure = Figure(figsize=(13, 4), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=[1, 1.3])
    unit = _figure_unit(report)  # one unit for both axes, so the same bytes read the same
    plot_recovery(report, left, unit=unit)
    plot_stages(report, right, unit=unit)
    return figure
