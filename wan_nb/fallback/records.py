"""The seed's records: :class:`FallbackStrategy`, :class:`AttemptRecord`, :class:`FallbackResult`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from wan_nb._records import json_native
from wan_nb.alternatives import AlternativeModel
from wan_nb.repair import UsableComponent

__all__ = ["AttemptRecord", "FallbackResult", "FallbackStrategy"]


def plain(value: Any) -> Any:
    """JSON's view of a value (tuples become lists), so from_dict(to_dict(x)) == x holds."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class FallbackStrategy:
    """One fallback for one failure: what it does, whether it can run, and its odds."""

    name: str  # a strategy name: assemble_components, component_donor, model_cpu_offload, ...
    kind: str  # one of the seed's five kinds (wan_nb.vocabulary.STRATEGY_KINDS)
    description: str
    success_probability: float
    probability_basis: str  # how the probability was derived, in words
    applicable: bool = True
    skip_reason: str | None = None
    runs: bool = True  # False: guidance only (upgrade_library, redownload, alternative_model)
    needs_consent: bool = False
    category: str = "unknown"
    estimated_peak_bytes: int | None = None
    snippet: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FallbackStrategy:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class AttemptRecord:
    """What happened to one strategy during a fallback."""

    strategy: str
    outcome: str  # succeeded | failed | skipped | guidance | suggested | not_run
    message: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class FallbackResult:
    """The outcome: success, the strategy that worked (or the best advice), and what was tried.

    ``pipeline`` (and ``output``, when a verification call ran) are live objects: they are
    left out of ``to_dict`` and of equality, so the rest round-trips through JSON.
    """

    success: bool
    strategy: FallbackStrategy | None
    model_path: str | None
    category: str
    message: str
    attempts: tuple[AttemptRecord, ...] = ()
    strategies: tuple[FallbackStrategy, ...] = ()
    components: tuple[UsableComponent, ...] = ()
    alternatives: tuple[AlternativeModel, ...] = ()
    guidance: tuple[str, ...] = ()  # commands and steps for the user to take
    diagnosis: dict[str, Any] = field(default_factory=dict)
    pipeline_class: str | None = None  # the built pipeline's class, kept when the object is not
    pipeline: Any = field(default=None, compare=False, repr=False)
    output: Any = field(default=None, compare=False, repr=False)

    @property
    def tried(self) -> tuple[str, ...]:
        return tuple(a.strategy for a in self.attempts if a.outcome in ("succeeded", "failed"))

    def to_dict(self) -> dict[str, Any]:
        return plain({
            "success": self.success,
            "strategy": self.strategy.to_dict() if self.strategy else None,
            "model_path": self.model_path,
            "category": self.category,
            "message": self.message,
            "attempts": [a.to_dict() for a in self.attempts],
            "strategies": [s.to_dict() for s in self.strategies],
            "components": [c.to_dict() for c in self.components],
            "alternatives": [a.to_dict() for a in self.alternatives],
            "guidance": list(self.guidance),
            "diagnosis": self.diagnosis,
            "pipeline_class": self.pipeline_class,
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FallbackResult:
        return cls(
            success=bool(data["success"]),
            strategy=FallbackStrategy.from_dict(data["strategy"]) if data.get("strategy") else None,
            model_path=data.get("model_path"),
            category=data.get("category", "unknown"),
            message=data.get("message", ""),
            attempts=tuple(AttemptRecord.from_dict(a) for a in data.get("attempts") or ()),
            strategies=tuple(FallbackStrategy.from_dict(s) for s in data.get("strategies") or ()),
            components=tuple(UsableComponent.from_dict(c) for c in data.get("components") or ()),
            alternatives=tuple(AlternativeModel.from_dict(a) for a in data.get("alternatives") or ()),
            guidance=tuple(data.get("guidance") or ()),
            diagnosis=dict(data.get("diagnosis") or {}),
            pipeline_class=data.get("pipeline_class"),
        )

    @classmethod
    def from_json(cls, text: str) -> FallbackResult:
        return cls.from_dict(json.loads(text))

    def to_text(self) -> str:
        head = ("worked: " if self.success else "no working pipeline: ") + self.message
        lines = [head]
        for a in self.attempts:
            lines.append(f"  {a.strategy:<22} {a.outcome:<10} {a.message}")
        lines += [f"  -> {g}" for g in self.guidance]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()
