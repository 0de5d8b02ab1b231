"""``%wan_estimate``'s table: the predicted peak of a generation under each strategy.

A thin collection over :func:`wan_nb.memory.estimate_memory` (which does the predicting):
one estimate per strategy, shown as a table (HTML beside text) and a plot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wan_nb.units import format_bytes, parse_bytes

# What a user comparing options on one card wants side by side: each memory strategy alone,
# and the usual offload + tiling pairs.
DEFAULT_COMBINATIONS = ("model_cpu_offload+vae_tiling", "group_offload+vae_tiling")
AS_IS = "as is"


@dataclass(frozen=True)
class EstimateTable:
    """Estimates of one generation, one per strategy (``AS_IS`` for none); failures keep their reason."""

    path: str
    settings: Any
    device: str
    estimates: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    budget_bytes: int | None = None

    def to_frame(self):
        import pandas as pd

        rows = []
        for name, estimate in self.estimates.items():
            peak = int(estimate.peak_bytes)
            row = {"strategy": name, "peak_bytes": peak}
            if self.budget_bytes is not None:
                row["fits"] = "fits" if peak <= self.budget_bytes else "no"
            for stage, value in _stages(estimate).items():
                row[f"{stage}_bytes"] = value
            rows.append(row)
        for name, problem in self.problems.items():
            rows.append({"strategy": name, "peak_bytes": None, "problem": problem})
        return pd.DataFrame(rows)

    def to_text(self) -> str:
        s = self.settings
        lines = [f"Estimated peak on {self.device} for {s.height}x{s.width}, {s.num_frames} frames, "
                 f"{s.num_inference_steps} steps, {s.dtype} ({self.path})"]
        if self.budget_bytes is not None:
            lines[0] += f"; budget {format_bytes(self.budget_bytes)}"
        width = max((len(n) for n in [*self.estimates, *self.problems]), default=10)
        for name, estimate in self.estimates.items():
            peak = int(estimate.peak_bytes)
            mark = "" if self.budget_bytes is None else ("  fits" if peak <= self.budget_bytes else "  over budget")
            lines.append(f"  {name:<{width}}  {format_bytes(peak):>11}{mark}")
        for name, problem in self.problems.items():
            lines.append(f"  {name:<{width}}  {'—':>11}  {problem}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from wan_nb.notebook import _html

        frame = self.to_frame()
        byte_columns = tuple(c for c in frame.columns if c.endswith("_bytes"))
        table = _html.styled_table(frame, byte_columns=byte_columns, status_columns=("fits",))
        title = _html.esc(self.to_text().splitlines()[0])
        return {"text/plain": self.to_text(), "text/html": _html._block(title, table)}

    def plot(self) -> Any:
        """The predicted peak per strategy (a Figure), the budget as a line."""
        from matplotlib.figure import Figure

        from wan_nb.plots import plot_estimates, plot_stages

        if len(self.estimates) == 1:
            figure = Figure(figsize=(7, 3.6), layout="constrained")
            plot_stages(next(iter(self.estimates.values())), figure.add_subplot())
            return figure
        figure = Figure(figsize=(8, 0.35 * len(self.estimates) + 1.4), layout="constrained")
        plot_estimates(self.estimates, figure.add_subplot(), budget=self.budget_bytes)
        return figure


def _stages(estimate: Any) -> dict[str, int]:
    stages = getattr(estimate, "by_stage", None) or {}
    return {str(k): int(v) for k, v in stages.items()} if isinstance(stages, dict) else {}


def estimate_table(path: str, *, height: int, width: int, frames: int, steps: int = 50, guidance_scale: float = 5.0,
                   dtype: str = "bfloat16", device: str = "cuda", strategies: list[str] | None = None,
                   budget: str | int | None = None) -> EstimateTable:
    """Estimate a generation on the model at ``path`` as it is and under each strategy."""
    from wan_nb.memory.estimate import estimate_memory
    from wan_nb.model.components import analyze_model_components
    from wan_nb.settings import GenerationSettings
    from wan_nb.vocabulary import MEMORY_STRATEGIES

    settings = GenerationSettings(height=height, width=width, num_frames=frames, num_inference_steps=steps,
                                  guidance_scale=guidance_scale, dtype=dtype)
    report = analyze_model_components(path)
    names: list[str | None] = list(strategies) if strategies else [None, *MEMORY_STRATEGIES, *DEFAULT_COMBINATIONS]
    estimates: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name in names:
        try:
            estimates[name or AS_IS] = estimate_memory(report, settings, name, device=device)
        except (ValueError, NotImplementedError, KeyError) as exc:
            # One strategy the estimator cannot size must not hide the others.
            problems[name or AS_IS] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return EstimateTable(str(path), settings, device, estimates, problems,
                         parse_bytes(budget) if budget is not None else None)
