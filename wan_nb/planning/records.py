"""The records of a plan: each :class:`Candidate` strategy and the ordered :class:`Plan`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wan_nb.settings import GenerationSettings
from wan_nb.units import format_bytes

__all__ = ["SAFETY_MARGIN", "Candidate", "Plan"]

# The share of the available memory an estimate must leave free to count as fitting
# comfortably; :mod:`wan_nb.planning.planner` explains what it covers.
SAFETY_MARGIN = 0.10


@dataclass(frozen=True)
class Candidate:
    """One strategy in a plan: its prediction, and whether (and why not) it will be tried."""

    strategy: str
    kind: str
    status: str  # "planned" | "skipped"
    reason: str
    estimated_peak_bytes: int | None = None
    available_bytes: int | None = None
    fit: str = "unknown"  # "fits" | "tight" | "no" | "unknown"
    skip_reason: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    quality: str = "unchanged"
    slowdown: str = "none"
    degraded: bool = False
    fresh_load: bool = False

    @property
    def planned(self) -> bool:
        return self.status == "planned"

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "estimated_peak_bytes": self.estimated_peak_bytes,
            "available_bytes": self.available_bytes,
            "fit": self.fit,
            "skip_reason": self.skip_reason,
            "changes": dict(self.changes),
            "quality": self.quality,
            "slowdown": self.slowdown,
            "degraded": self.degraded,
            "fresh_load": self.fresh_load,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(**{**data, "changes": dict(data.get("changes") or {})})


@dataclass(frozen=True, repr=False)
class Plan:
    """The ordered candidates (planned first, then skipped) and what they were judged against."""

    candidates: tuple[Candidate, ...]
    device: str
    category: str | None = None
    stage: str | None = None
    budget_bytes: int | None = None
    available_bytes: int | None = None
    settings: GenerationSettings | None = None
    allow_degraded: bool = False
    margin: float = SAFETY_MARGIN
    notes: tuple[str, ...] = ()
    # Device memory the plan took as already in use besides the pipeline (taken off the
    # budget): recover() measures it; plan() uses what it is given (0 unless told).
    resident_bytes: int = 0
    # The pipeline's own bytes the plan counted for strategies that load a fresh copy.
    pipeline_bytes: int = 0

    @property
    def planned(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.planned)

    @property
    def skipped(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if not c.planned)

    def __iter__(self):
        return iter(self.planned)

    def __len__(self) -> int:
        return len(self.planned)

    def candidate(self, strategy: str) -> Candidate:
        for c in self.candidates:
            if c.strategy == strategy:
                return c
        raise KeyError(f"`{strategy}` is not in this plan; it has {', '.join(c.strategy for c in self.candidates)}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": [c.to_dict() for c in self.candidates],
            "device": self.device,
            "category": self.category,
            "stage": self.stage,
            "budget_bytes": self.budget_bytes,
            "available_bytes": self.available_bytes,
            "settings": self.settings.to_dict() if self.settings else None,
            "allow_degraded": self.allow_degraded,
            "margin": self.margin,
            "notes": list(self.notes),
            "resident_bytes": self.resident_bytes,
            "pipeline_bytes": self.pipeline_bytes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        settings = data.get("settings")
        return cls(
            candidates=tuple(Candidate.from_dict(c) for c in data.get("candidates", ())),
            device=data["device"],
            category=data.get("category"),
            stage=data.get("stage"),
            budget_bytes=data.get("budget_bytes"),
            available_bytes=data.get("available_bytes"),
            settings=GenerationSettings.from_dict(settings) if settings else None,
            allow_degraded=bool(data.get("allow_degraded", False)),
            margin=float(data.get("margin", SAFETY_MARGIN)),
            notes=tuple(data.get("notes", ())),
            resident_bytes=int(data.get("resident_bytes") or 0),
            pipeline_bytes=int(data.get("pipeline_bytes") or 0),
        )

    def to_frame(self):
        import pandas as pd

        rows = []
        for i, c in enumerate(self.candidates, 1):
            rows.append({
                "order": i if c.planned else None,
                "strategy": c.strategy,
                "status": c.status,
                "estimated_peak": c.estimated_peak_bytes,
                "available": c.available_bytes,
                "fit": c.fit,
                "quality": c.quality,
                "slowdown": c.slowdown,
                "changes": ", ".join(f"{k}={v}" for k, v in c.changes.items()),
                "reason": c.skip_reason or c.reason,
            })
        return pd.DataFrame(rows, columns=["order", "strategy", "status", "estimated_peak", "available", "fit",
                                           "quality", "slowdown", "changes", "reason"])

    def to_text(self) -> str:
        head = f"Plan for {self.category or 'the failure'}"
        head += f" in {self.stage}" if self.stage and self.stage != "unknown" else ""
        head += f" on {self.device}"
        if self.available_bytes is not None:
            head += f", {format_bytes(self.available_bytes)} available"
            if self.budget_bytes is not None:
                head += f" (budget {format_bytes(self.budget_bytes)}, {format_bytes(self.resident_bytes)} taken as in use)"
        lines = [head + ":"]
        for i, c in enumerate(self.planned, 1):
            est = format_bytes(c.estimated_peak_bytes) if c.estimated_peak_bytes is not None else "no estimate"
            lines.append(f"  {i}. {c.strategy:<34} est. {est:>11}  {c.reason}")
        for c in self.skipped:
            lines.append(f"  -  {c.strategy:<34} skipped: {c.skip_reason}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        first = self.planned[0].strategy if self.planned else None
        return (f"<Plan {len(self.planned)} planned, {len(self.skipped)} skipped, first={first!r}, "
                f"on {self.device}>")
