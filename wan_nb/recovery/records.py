"""The records of a recovery: each :class:`Attempt`, the :class:`RecoveryReport`, :class:`RecoveryError`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wan_nb.planning import Plan
from wan_nb.settings import GenerationSettings
from wan_nb.strategies import get_strategy
from wan_nb.strategies.usercall import UserCall
from wan_nb.units import format_bytes

__all__ = ["Attempt", "RecoveryError", "RecoveryReport", "model_index_components"]

STATUSES = ("success", "failed", "skipped", "interrupted")


@dataclass(frozen=True)
class Attempt:
    """One try of one strategy: what happened, what it cost, measured (and what was predicted)."""

    strategy: str
    status: str
    reason: str = ""
    diagnosis: dict[str, Any] | None = None
    estimated_peak_bytes: int | None = None
    measured_peak_bytes: int | None = None
    baseline_bytes: int | None = None
    by_stage: dict[str, int] = field(default_factory=dict)
    seconds: float | None = None
    error: str | None = None
    error_text: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    restore_problems: tuple[str, ...] = ()
    # Replay (wan_nb.recovery.replay): the stages this attempt did not run again, the time that
    # saved (the failed run's measured time for those stages, else its time up to the failure),
    # and, when the kept work could not be used, why.
    replayed: tuple[str, ...] = ()
    saved_seconds: float | None = None
    replay_note: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # What the strategy chose by prediction while it ran ({"vae_tile": 256}): the snippet repeats it.
    choices: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"`status` must be one of {', '.join(STATUSES)}, got {self.status!r}.")

    @property
    def succeeded(self) -> bool:
        return self.status == "success"

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "status": self.status,
            "reason": self.reason,
            "diagnosis": self.diagnosis,
            "estimated_peak_bytes": self.estimated_peak_bytes,
            "measured_peak_bytes": self.measured_peak_bytes,
            "baseline_bytes": self.baseline_bytes,
            "by_stage": dict(self.by_stage),
            "seconds": self.seconds,
            "error": self.error,
            "error_text": self.error_text,
            "changes": dict(self.changes),
            "restore_problems": list(self.restore_problems),
            "replayed": list(self.replayed),
            "saved_seconds": self.saved_seconds,
            "replay_note": self.replay_note,
            "stage_seconds": dict(self.stage_seconds),
            "choices": dict(self.choices),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        data = dict(data)
        data["by_stage"] = {str(k): int(v) for k, v in (data.get("by_stage") or {}).items()}
        data["changes"] = dict(data.get("changes") or {})
        data["restore_problems"] = tuple(data.get("restore_problems") or ())
        data["replayed"] = tuple(data.get("replayed") or ())
        data["stage_seconds"] = {str(k): float(v) for k, v in (data.get("stage_seconds") or {}).items()}
        data["choices"] = dict(data.get("choices") or {})
        return cls(**data)


@dataclass(frozen=True, repr=False)
class RecoveryReport:
    """What ``recover`` did: the plan, every attempt, the winner and its code.

    ``attempts[i].estimated_peak_bytes`` is the plan's estimate for the pipeline plus what
    else was in the device's memory when recovery began, so it compares with
    ``measured_peak_bytes`` (the meter's peak of the whole device).
    """

    attempts: tuple[Attempt, ...]
    winner: str | None
    plan: Plan | None
    device: str
    budget_bytes: int | None = None
    available_bytes: int | None = None
    settings: GenerationSettings | None = None
    diagnosis: dict[str, Any] | None = None
    probe: Attempt | None = None
    interrupted: bool = False
    applied: bool = False
    path: str | None = None
    pipeline_class: str | None = None
    dtype: str | None = None
    notes: tuple[str, ...] = ()
    result: Any = field(default=None, compare=False, repr=False)
    models_dir: str | None = None
    # The run's own call and load as source (wan_nb.strategies.usercall): what the snippet repeats.
    call: UserCall | None = None

    @property
    def succeeded(self) -> bool:
        return self.winner is not None or (self.probe is not None and self.probe.succeeded)

    @property
    def winning_attempt(self) -> Attempt | None:
        return next((a for a in self.attempts if a.strategy == self.winner and a.succeeded), None)

    def plot(self):
        """Estimated vs measured peak per strategy and per stage, as a matplotlib Figure."""
        from wan_nb.plots import plot_report

        return plot_report(self)

    def snippet(self, pipe_var: str | None = None) -> str:
        """The code that worked, to paste into a new cell ("" without a winner).

        It is the run's own call (every argument, under the names the notebook used, and
        its load when the run loaded the pipeline or the strategy changes the load) with the
        winning strategy's lines. ``pipe_var`` names the pipeline where the call was not seen.
        """
        if self.winner is None:
            return ""
        attempt = self.winning_attempt
        call = self.call
        if call is not None and pipe_var and call.pipe == "pipe":
            call = dataclasses.replace(call, pipe=pipe_var)
        return get_strategy(self.winner).snippet(
            pipe_var or "pipe",
            path=self.path,
            pipeline_class=self.pipeline_class,
            device=self.device,
            settings=self.settings,
            dtype=self.dtype,
            changes=attempt.changes if attempt else None,
            choices=attempt.choices if attempt else None,
            components=model_index_components(self.path),
            models_dir=self.models_dir,
            call=call,
        )

    # -- plain data ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "attempts": [a.to_dict() for a in self.attempts],
            "winner": self.winner,
            "plan": self.plan.to_dict() if self.plan else None,
            "device": self.device,
            "budget_bytes": self.budget_bytes,
            "available_bytes": self.available_bytes,
            "settings": self.settings.to_dict() if self.settings else None,
            "diagnosis": self.diagnosis,
            "probe": self.probe.to_dict() if self.probe else None,
            "interrupted": self.interrupted,
            "applied": self.applied,
            "path": self.path,
            "pipeline_class": self.pipeline_class,
            "dtype": self.dtype,
            "notes": list(self.notes),
            "models_dir": self.models_dir,
            "call": self.call.to_dict() if self.call else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecoveryReport:
        settings = data.get("settings")
        return cls(
            attempts=tuple(Attempt.from_dict(a) for a in data.get("attempts", ())),
            winner=data.get("winner"),
            plan=Plan.from_dict(data["plan"]) if data.get("plan") else None,
            device=data["device"],
            budget_bytes=data.get("budget_bytes"),
            available_bytes=data.get("available_bytes"),
            settings=GenerationSettings.from_dict(settings) if settings else None,
            diagnosis=data.get("diagnosis"),
            probe=Attempt.from_dict(data["probe"]) if data.get("probe") else None,
            interrupted=bool(data.get("interrupted", False)),
            applied=bool(data.get("applied", False)),
            path=data.get("path"),
            pipeline_class=data.get("pipeline_class"),
            dtype=data.get("dtype"),
            notes=tuple(data.get("notes", ())),
            models_dir=data.get("models_dir"),
            call=UserCall.from_dict(data["call"]) if data.get("call") else None,
        )

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> RecoveryReport:
        return cls.from_dict(json.loads(text))

    def to_frame(self):
        """One row per attempt: strategy, status, estimated and measured peak, seconds, error."""
        import pandas as pd

        rows = [{
            "strategy": a.strategy,
            "status": a.status,
            "estimated_peak_bytes": a.estimated_peak_bytes,
            "measured_peak_bytes": a.measured_peak_bytes,
            "seconds": a.seconds,
            "replayed": ", ".join(a.replayed),
            "saved_seconds": a.saved_seconds,
            "changes": ", ".join(f"{k}={v}" for k, v in a.changes.items()),
            "category": (a.diagnosis or {}).get("category"),
            "stage": (a.diagnosis or {}).get("stage"),
            "error": a.error,
        } for a in self.attempts]
        return pd.DataFrame(rows, columns=["strategy", "status", "estimated_peak_bytes", "measured_peak_bytes",
                                           "seconds", "replayed", "saved_seconds", "changes", "category", "stage",
                                           "error"])

    def to_text(self) -> str:
        lines: list[str] = []
        what = (self.diagnosis or {}).get("summary")
        if what:
            lines.append(f"Failure: {what}")
        if self.budget_bytes is not None:
            lines.append(f"Budget: {format_bytes(self.budget_bytes)} on {self.device}")
        if self.probe is not None:
            lines.append(f"As it is: {self.probe.status}" + (f" ({self.probe.error})" if self.probe.error else ""))
        for i, a in enumerate(self.attempts, 1):
            measured = format_bytes(a.measured_peak_bytes) if a.measured_peak_bytes is not None else "—"
            est = format_bytes(a.estimated_peak_bytes) if a.estimated_peak_bytes is not None else "—"
            secs = f"{a.seconds:.1f}s" if a.seconds is not None else "—"
            line = f"  {i}. {a.strategy:<34} {a.status:<11} peak {measured:>11} (est. {est}) {secs}"
            if a.replayed:
                saved = f", saved {a.saved_seconds:.1f}s" if a.saved_seconds is not None else ""
                line += f"  replayed: skipped {' + '.join(a.replayed)}{saved}"
            if a.error:
                line += f"  {a.error}"
            lines.append(line)
            if a.replay_note:
                lines.append(f"     ran in full: {a.replay_note}")
        if self.winner:
            lines.append(f"Recovered with `{self.winner}`" + (" (kept on the pipeline)." if self.applied else "."))
            lines.append("Paste this to apply it yourself:")
            lines.append(self.snippet())
        elif self.interrupted:
            lines.append("Interrupted: the pipelines were put back as they were.")
        elif self.succeeded:
            lines.append("The run succeeded as it is: no strategy was needed.")
        else:
            lines.append("No strategy recovered the run.")
        if self.plan is not None and not self.winner:
            for c in self.plan.skipped:
                lines.append(f"  not tried: {c.strategy}: {c.skip_reason}")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        state = "interrupted" if self.interrupted else ("recovered" if self.succeeded else "not recovered")
        return (f"<RecoveryReport {state}: winner={self.winner!r}, {len(self.attempts)} attempt(s) "
                f"on {self.device}>")


class RecoveryError(RuntimeError):
    """No strategy recovered the run; ``.report`` says what was tried and why each failed."""

    def __init__(self, report: RecoveryReport) -> None:
        self.report = report
        tried = ", ".join(f"{a.strategy} ({a.status})" for a in report.attempts) or "nothing"
        reason = report.notes[0] if report.notes else "see `.report` for the plan"
        super().__init__(f"wan_nb could not recover the run; tried: {tried}. {reason}")



def model_index_components(path: str | None) -> tuple[str, ...]:
    if not path:
        return ()
    try:
        data = json.loads((Path(path) / "model_index.json").read_text())
    except (OSError, ValueError, KeyError, TypeError, IndexError):  # a hub id: unknown until loaded
        return ()
    return tuple(k for k, v in data.items() if not k.startswith("_") and isinstance(v, list) and v[0])
