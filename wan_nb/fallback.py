"""The seed's API — ``FallbackHandler`` and friends — as a thin layer over wan_nb's modules.

>>> result = handle_pipeline_failure("models/Wan2.1-T2V-1.3B", error)   # doctest: +SKIP
>>> result.success, result.strategy.name, result.pipeline                # doctest: +SKIP

What each name does now:

* :class:`FallbackHandler` — ``create_fallback_strategy(failed_pipeline, error)`` plans the
  structural strategies for the failure (pipeline substitution, component isolation /
  donors / redownload, alternative models; memory failures come from :func:`wan_nb.planning.planner.plan`)
  and returns the best; ``execute_fallback_strategy(strategy, model_path)`` runs one and
  returns a :class:`FallbackResult`; ``handle(model_path, error)`` tries them in order.
* :func:`handle_pipeline_failure`, :func:`analyze_model_components`,
  :func:`find_alternative_models`: the seed's functions, over the same handler.

Success probabilities are not fixed numbers (the seed had 80 %, 70 %, ...). Each is
``p_history × p_fit`` from :mod:`wan_nb.history`: the Laplace-smoothed success rate of
that strategy for that failure category on this machine, times the probability that
the estimated peak stays under the memory available (a log-normal error model learned
from earlier estimate/measurement pairs). Each executed attempt is recorded there, so
the next plan on this machine is reordered by what worked.

Nothing here installs or downloads anything; ``upgrade_library`` and ``redownload`` are
guidance (a command for you to run), ``remote_code`` needs ``allow_remote_code=True``, and
the model folder is never written.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from wan_nb import history as _history
from wan_nb.alternatives import AlternativeModel, get_local_alternatives, suggest_alternatives
from wan_nb.model import components as _components
from wan_nb.model.report import ComponentReport, ModelFolderError
from wan_nb.repair.assemble import SubstitutionError, assemble_components, generic_pipeline, plan_assembly
from wan_nb.repair.donors import (
    UsableComponent,
    assemble_with_donors,
    broken_components,
    find_donors,
    isolate_components,
)
from wan_nb.repair.options import substitution_options
from wan_nb.repair.redownload import redownload_instructions
from wan_nb.repair.remote_code import find_remote_code, load_with_remote_code
from wan_nb.repair.upgrade import upgrade_guidance

__all__ = [
    "AlternativeModel",
    "AlternativeModelSuggester",
    "AttemptRecord",
    "ComponentAnalyzer",
    "FallbackHandler",
    "FallbackResult",
    "FallbackStrategy",
    "UsableComponent",
    "analyze_model_components",
    "find_alternative_models",
    "handle_pipeline_failure",
]

_SUBSTITUTION = ("pipeline_unavailable", "version_mismatch")
_ISOLATION = ("component_missing", "weights_corrupt")
_KIND = {
    "generic_pipeline": "pipeline_substitution",
    "assemble_components": "pipeline_substitution",
    "upgrade_library": "pipeline_substitution",
    "remote_code": "pipeline_substitution",
    "component_donor": "component_isolation",
    "redownload": "component_isolation",
    "alternative_model": "alternative_model",
}


def _plain(value: Any) -> Any:
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
        return _plain(asdict(self))

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
        return asdict(self)

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
        return _plain({
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


# --------------------------------------------------------------------------- helpers


def _model_path(failed_pipeline: Any) -> str | None:
    """A folder from a path, a ComponentReport, or a pipeline loaded with from_pretrained."""
    if failed_pipeline is None:
        return None
    if isinstance(failed_pipeline, ComponentReport):
        return failed_pipeline.path
    if isinstance(failed_pipeline, (str, os.PathLike)):
        return str(Path(failed_pipeline).expanduser())
    name = getattr(failed_pipeline, "name_or_path", None) or getattr(
        getattr(failed_pipeline, "config", None), "_name_or_path", None
    )
    return str(name) if name else None


def _category_from_report(report: ComponentReport) -> str | None:
    """What the folder itself says is wrong, when the error did not say."""
    broken = broken_components(report)
    if broken:
        return "weights_corrupt" if any(c.status == "corrupt" for c in broken) else "component_missing"
    if not report.pipeline_importable or find_remote_code(report.path):
        return "pipeline_unavailable"
    return None


def _diagnosis(error: Any):
    from wan_nb.diagnosis import Diagnosis, diagnose

    if isinstance(error, Diagnosis):
        return error
    if isinstance(error, dict) and "category" in error:
        return Diagnosis.from_dict(error)
    return diagnose(error)


# --------------------------------------------------------------------------- the handler


class FallbackHandler:
    """Plans and runs the fallbacks for a failed pipeline load or call.

    Args:
        models_dir: a folder of other models: donors and local alternatives are looked for there.
        search_dirs: more folders to look for donor components in.
        include_hf_cache: also search the Hugging Face cache (``$HF_HUB_CACHE`` / ``$HF_HOME/hub``).
        allow_remote_code: let ``remote_code`` run code from the model folder.
        available_memory: bytes (or ``"16GB"``) the device has, for fit probabilities and ranking.
        settings: the failing call's :class:`~wan_nb.settings.GenerationSettings`, for estimates.
        device: where the pipeline computes (for the memory plan).
        torch_dtype: dtype to load components in (``"bfloat16"``, a torch dtype, or None).
        call_kwargs: when given, a built pipeline must also run ``pipe(**call_kwargs)`` to count.
        record_history: record executed attempts in the local history (``$WAN_NB_HISTORY``).
    """

    def __init__(
        self,
        *,
        models_dir: str | os.PathLike[str] | None = None,
        search_dirs: list[str | os.PathLike[str]] | None = None,
        include_hf_cache: bool = True,
        allow_remote_code: bool = False,
        available_memory: int | str | None = None,
        settings: Any = None,
        device: str = "cpu",
        torch_dtype: Any = None,
        call_kwargs: dict[str, Any] | None = None,
        record_history: bool = True,
    ):
        from wan_nb.units import parse_bytes

        self.models_dir = models_dir
        self.search_dirs = [*(search_dirs or []), *([models_dir] if models_dir else [])]
        self.include_hf_cache = include_hf_cache
        self.allow_remote_code = allow_remote_code
        self.available_memory = parse_bytes(available_memory) if available_memory is not None else None
        self.settings = settings
        self.device = device
        self.torch_dtype = torch_dtype
        self.call_kwargs = call_kwargs
        self.record_history = record_history
        self._folder_problem: str | None = None

    @classmethod
    def from_context(cls, context: dict[str, Any] | None) -> FallbackHandler:
        """A handler from the seed's ``context`` dict (unknown keys are named in the error)."""
        context = dict(context or {})
        known = set(inspect.signature(cls).parameters)
        unknown = sorted(set(context) - known)
        if unknown:
            raise TypeError(f"`context` has unknown keys {unknown}; known keys: {sorted(known)}.")
        return cls(**context)

    # -- estimates and probabilities ---------------------------------------------------------
    def _estimated_peak(self, report: ComponentReport | None) -> int | None:
        if report is None or self.settings is None or self.available_memory is None:
            return None
        try:
            from wan_nb.memory.estimate import estimate_memory

            return int(estimate_memory(report, self.settings, None, device="cuda").peak_bytes)
        except Exception:  # noqa: BLE001 - the estimate is optional: the probability then ignores fit
            return None

    def _strategy(self, name: str, category: str, description: str, *, peak: int | None = None,
                  **extra: Any) -> FallbackStrategy:
        p = _history.success_probability(name, category, estimated_peak=peak, available=self.available_memory)
        return FallbackStrategy(
            name=name,
            kind=extra.pop("kind", _KIND.get(name, "optimization_fallback")),
            description=description,
            success_probability=round(p.value, 4),
            probability_basis=p.basis,
            category=category,
            estimated_peak_bytes=peak,
            **extra,
        )

    # -- planning ---------------------------------------------------------------------------
    def plan_fallbacks(self, failed_pipeline: Any, error: Any) -> list[FallbackStrategy]:
        """Every fallback for this failure: runnable ones by success probability, then the rest."""
        path = _model_path(failed_pipeline)
        return self._plan(path, _diagnosis(error), self._analyze(path))

    def _analyze(self, path: str | None) -> ComponentReport | None:
        self._folder_problem = None
        if path is None:
            return None
        try:
            return _components.analyze_model_components(path)
        except ModelFolderError as exc:
            self._folder_problem = str(exc)  # says which folder and what to give instead
            return None

    def _plan(self, path: str | None, diagnosis: Any, report: ComponentReport | None) -> list[FallbackStrategy]:
        category = diagnosis.category
        if category == "unknown" and report is not None:
            category = _category_from_report(report) or category
        peak = self._estimated_peak(report)
        runnable: list[FallbackStrategy] = []
        other: list[FallbackStrategy] = []
        structural = category in _SUBSTITUTION + _ISOLATION or report is not None and not report.ok
        if report is not None and structural:
            broken = broken_components(report)
            if category in _SUBSTITUTION or not report.pipeline_importable or find_remote_code(report.path):
                for option in substitution_options(report, allow_remote_code=self.allow_remote_code):
                    if option.name == "assemble_components" and broken:
                        continue  # the donor strategy assembles with the missing parts supplied
                    strategy = self._substitution_strategy(option, report, category, peak)
                    (runnable if strategy.applicable and strategy.runs else other).append(strategy)
            if broken or category in _ISOLATION:
                for strategy in self._isolation_strategies(report, category, peak):
                    (runnable if strategy.applicable and strategy.runs else other).append(strategy)
        elif category not in _SUBSTITUTION + _ISOLATION:
            other.extend(self._memory_strategies(diagnosis, report))
        if report is None and category in _SUBSTITUTION + _ISOLATION:
            why = self._folder_problem if path is not None else None
            other.append(self._strategy(
                "assemble_components", category, "needs the model folder", applicable=False,
                skip_reason=why or "no model folder is known: pass the folder the pipeline was loaded from"))
        other.append(self._alternative_strategy(report, category))
        runnable.sort(key=lambda s: -s.success_probability)  # stable: the preferred order breaks ties
        return runnable + other

    def create_fallback_strategy(self, failed_pipeline: Any, error: Any) -> FallbackStrategy:
        """The best fallback for this failure (see :meth:`plan_fallbacks` for all of them)."""
        strategies = self.plan_fallbacks(failed_pipeline, error)
        return next((s for s in strategies if s.applicable), strategies[0])

    def _substitution_strategy(self, option, report, category, peak) -> FallbackStrategy:
        details: dict[str, Any] = {}
        snippet = ""
        if option.name == "generic_pipeline":
            snippet = f"from diffusers import DiffusionPipeline\npipe = DiffusionPipeline.from_pretrained({report.path!r})"
        elif option.name == "assemble_components" and option.applicable:
            plan = plan_assembly(report)
            details = {"assembly": plan.to_dict()}
            snippet = plan.snippet()
        elif option.name == "remote_code":
            remote = find_remote_code(report.path)
            details = {"remote_code": remote.to_dict()} if remote else {}
            snippet = ("from diffusers import DiffusionPipeline\n"
                       f"pipe = DiffusionPipeline.from_pretrained({report.path!r}, trust_remote_code=True)")
        elif option.name == "upgrade_library":
            guidance = upgrade_guidance(report)
            details = {"upgrade": guidance.to_dict()}
            snippet = guidance.command
        return self._strategy(
            option.name, category, option.reason,
            peak=peak if option.runs else None,
            applicable=option.applicable,
            skip_reason=None if option.applicable else option.reason,
            runs=option.runs,
            needs_consent=option.needs_consent,
            snippet=snippet,
            details=_plain(details),
        )

    def _isolation_strategies(self, report, category, peak) -> list[FallbackStrategy]:
        broken = broken_components(report)
        found: dict[str, Any] = {}
        rejected: dict[str, Any] = {}
        for info in broken:
            donors, why_not = find_donors(report, info.name, self.search_dirs, include_hf_cache=self.include_hf_cache)
            found[info.name] = donors[0].to_dict() if donors else None
            rejected[info.name] = why_not[:5]
        missing = [n for n, d in found.items() if d is None]
        if not broken:
            donor = self._strategy("component_donor", category, "no component of the folder is missing or damaged",
                                   applicable=False, skip_reason="no component is missing or damaged")
        elif missing:
            donor = self._strategy(
                "component_donor", category, f"no compatible {', '.join(missing)} found locally",
                applicable=False,
                skip_reason=f"no compatible {', '.join(missing)} in the folders searched (the model's siblings, "
                            f"{len(self.search_dirs)} folder(s) you named, the Hugging Face cache)",
                details=_plain({"donors": found, "rejected": rejected}))
        else:
            text = "; ".join(f"{n} from {d['model']}" for n, d in found.items())
            donor = self._strategy("component_donor", category, f"assemble the pipeline with {text}", peak=peak,
                                   details=_plain({"donors": found}))
        instructions = redownload_instructions(report)
        redownload = self._strategy(
            "redownload", category,
            "fetch again: " + "; ".join(f"{r.component} ({', '.join(r.files)})" for r in instructions)
            if instructions else "nothing to fetch again",
            applicable=bool(instructions), runs=False,
            skip_reason=None if instructions else "no component is missing or damaged",
            snippet="\n".join(r.command for r in instructions),
            details=_plain({"redownload": [r.to_dict() for r in instructions]}))
        return [donor, redownload]

    def _memory_strategies(self, diagnosis, report) -> list[FallbackStrategy]:
        try:
            from wan_nb.planning import plan as make_plan

            plan = make_plan(diagnosis, report, self.settings, self.device, available_bytes=self.available_memory)
        except Exception:  # noqa: BLE001 - without the engine's plan there is nothing to list here
            return []
        result = []
        for candidate in plan.candidates:
            p = _history.success_probability(candidate.strategy, diagnosis.category,
                                             estimated_peak=candidate.estimated_peak_bytes,
                                             available=candidate.available_bytes)
            result.append(FallbackStrategy(
                name=candidate.strategy,
                kind=candidate.kind,
                description=candidate.reason + " Rerun the failing call with wan_nb.recover to apply it.",
                success_probability=round(p.value, 4),
                probability_basis=p.basis,
                applicable=candidate.planned,
                skip_reason=candidate.skip_reason,
                runs=False,  # it changes a call, which this API does not hold
                category=diagnosis.category,
                estimated_peak_bytes=candidate.estimated_peak_bytes,
                details=_plain({"plan_candidate": candidate.to_dict()}),
            ))
        return result

    def _alternative_strategy(self, report, category) -> FallbackStrategy:
        target = report if report is not None and report.pipeline_class else "wan_t2v"
        try:
            alternatives = self.suggest_alternative_models(target)
        except Exception as exc:  # noqa: BLE001 - suggestions are a last resort, never a new failure
            return self._strategy("alternative_model", category, "no suggestion", applicable=False, runs=False,
                                  skip_reason=f"alternatives unavailable: {exc}")
        best = alternatives[:3]
        text = "; ".join(f"{a.name} ({a.repo_id}, peak {a.predicted_peak}, {a.peak_source})" for a in best)
        first = best[0] if best else None
        snippet = ""
        if first is not None:
            snippet = ("from diffusers import DiffusionPipeline\n"
                       f"pipe = DiffusionPipeline.from_pretrained({first.local_path or first.repo_id!r})")
        return self._strategy(
            "alternative_model", category, f"another model: {text}" if best else "no alternative known",
            peak=first.predicted_peak_bytes if first else None,
            applicable=bool(best), runs=False, snippet=snippet,
            skip_reason=None if best else "no alternative in the registry",
            details=_plain({"alternatives": [a.to_dict() for a in best]}))

    # -- the seed's other methods ---------------------------------------------------------
    def attempt_component_isolation(self, path: str | os.PathLike[str]) -> list[UsableComponent]:
        """Load each component of the folder on its own; which work, what they weigh, need."""
        return isolate_components(path)

    def suggest_alternative_models(self, target_architecture: Any, available_memory: int | str | None = None
                                   ) -> list[AlternativeModel]:
        """Registry (and local) models for this architecture, those that fit first."""
        memory = available_memory if available_memory is not None else self.available_memory
        return suggest_alternatives(target_architecture, memory, models_dir=self.models_dir)

    def _build(self, strategy: FallbackStrategy, path: str, report: ComponentReport | None = None):
        source = report if report is not None else path  # the report saves reading the folder again
        if strategy.name == "generic_pipeline":
            return generic_pipeline(source, torch_dtype=self.torch_dtype)
        if strategy.name == "assemble_components":
            return assemble_components(source, torch_dtype=self.torch_dtype, allow_remote_code=self.allow_remote_code)
        if strategy.name == "remote_code":
            return load_with_remote_code(path, allow_remote_code=self.allow_remote_code, torch_dtype=self.torch_dtype)
        if strategy.name == "component_donor":
            donors = {name: d for name, d in (strategy.details.get("donors") or {}).items() if d}
            pipe, _ = assemble_with_donors(source, self.search_dirs, torch_dtype=self.torch_dtype,
                                           include_hf_cache=self.include_hf_cache, donors=donors)
            return pipe
        raise SubstitutionError(f"`{strategy.name}` does not build a pipeline here.")

    def execute_fallback_strategy(self, strategy: FallbackStrategy | str, model_path: Any) -> FallbackResult:
        """Run one strategy on the folder; guidance-only strategies return their advice."""
        path = _model_path(model_path)
        if isinstance(strategy, str):
            wanted = strategy
            planned = self.plan_fallbacks(path, {"category": "unknown", "stage": "load"})
            strategy = next((s for s in planned if s.name == wanted), None)
            if strategy is None:
                raise ValueError(f"`strategy={wanted!r}` does not apply to {path}.")
        attempts, guidance, outcome = self._execute(strategy, path)
        return FallbackResult(
            success=outcome is not None,
            strategy=strategy,
            model_path=path,
            category=strategy.category,
            message=attempts[-1].message if attempts else "",
            attempts=tuple(attempts),
            strategies=(strategy,),
            guidance=tuple(guidance),
            pipeline_class=type(outcome[0]).__name__ if outcome else None,
            pipeline=outcome[0] if outcome else None,
            output=outcome[1] if outcome else None,
        )

    def _execute(self, strategy: FallbackStrategy, path: str | None, report: ComponentReport | None = None):
        """``(attempts, guidance, (pipeline, output) or None)`` for one strategy."""
        if not strategy.applicable:
            return [AttemptRecord(strategy.name, "skipped", strategy.skip_reason or "")], [], None
        if not strategy.runs:
            if strategy.name in ("upgrade_library", "redownload"):  # commands for the user to run
                advice = [line for line in strategy.snippet.splitlines() if line]
                return [AttemptRecord(strategy.name, "guidance", strategy.description)], advice, None
            # An alternative model is a suggestion; a memory strategy needs the failing call (recover).
            outcome = "suggested" if strategy.name == "alternative_model" else "not_run"
            return [AttemptRecord(strategy.name, outcome, strategy.description)], [], None
        if path is None:
            return [AttemptRecord(strategy.name, "skipped", "no model folder is known")], [], None
        start = time.perf_counter()
        try:
            pipe = self._build(strategy, path, report)
            output = pipe(**self.call_kwargs) if self.call_kwargs else None
        except Exception as exc:  # noqa: BLE001 - a failed fallback is a finding, reported, then the next
            from wan_nb.diagnosis import diagnose

            seconds = time.perf_counter() - start
            failure = diagnose(exc).category
            self._record(strategy, path, False, failure)
            message = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
            return [AttemptRecord(strategy.name, "failed", message, round(seconds, 3))], [], None
        seconds = time.perf_counter() - start
        self._record(strategy, path, True, None)
        what = f"{type(pipe).__name__} built" + (" and ran the call" if self.call_kwargs else "")
        return [AttemptRecord(strategy.name, "succeeded", what, round(seconds, 3))], [], (pipe, output)

    def _record(self, strategy: FallbackStrategy, path: str, success: bool, failure: str | None) -> None:
        if not self.record_history:
            return
        from wan_nb.model.checkpoint import CheckpointError, read_json

        try:
            model_class = read_json(Path(path) / "model_index.json").get("_class_name")
        except CheckpointError:
            model_class = None
        _history.record_attempt(_history.HistoryRecord(
            strategy=strategy.name,
            category=strategy.category,
            success=success,
            stage="load",
            model_class=model_class if isinstance(model_class, str) else None,
            estimated_peak=strategy.estimated_peak_bytes,
            available=self.available_memory,
            failure=failure,
            device=self.device,
        ))

    def handle(self, model_path: Any, error: Any) -> FallbackResult:
        """Try the runnable fallbacks in order until one gives a working pipeline."""
        diagnosis = _diagnosis(error)
        path = _model_path(model_path)
        report = self._analyze(path)
        strategies = self._plan(path, diagnosis, report)
        attempts: list[AttemptRecord] = []
        guidance: list[str] = []
        winner = None
        outcome = None
        for strategy in strategies:
            if winner is not None:
                # Why a strategy was never an option stays worth reading ("needs your consent").
                attempts.append(AttemptRecord(strategy.name, "not_run", "an earlier strategy worked")
                                if strategy.applicable else
                                AttemptRecord(strategy.name, "skipped", strategy.skip_reason or ""))
                continue
            records, advice, built = self._execute(strategy, path, report)
            attempts += records
            guidance += advice
            if built is not None:
                winner, outcome = strategy, built
        components: tuple[UsableComponent, ...] = ()
        if report is not None and diagnosis.category in _ISOLATION + _SUBSTITUTION:
            components = tuple(isolate_components(report))
        alternatives = next((s.details.get("alternatives") for s in strategies if s.name == "alternative_model"), None)
        if winner is not None:
            message = f"{winner.name}: {winner.description}"
        else:
            best = next((s for s in strategies if s.applicable), None)
            message = (f"nothing could be built here; next: {best.name} — {best.description}" if best
                       else "no fallback applies; see the diagnosis' next steps")
        return FallbackResult(
            success=winner is not None,
            strategy=winner or next((s for s in strategies if s.applicable), None),
            model_path=path,
            category=diagnosis.category,
            message=message,
            attempts=tuple(attempts),
            strategies=tuple(strategies),
            components=components,
            alternatives=tuple(AlternativeModel.from_dict(a) for a in alternatives or ()),
            guidance=tuple(dict.fromkeys(guidance)),
            diagnosis=_plain(diagnosis.to_dict()),
            pipeline_class=type(outcome[0]).__name__ if outcome else None,
            pipeline=outcome[0] if outcome else None,
            output=outcome[1] if outcome else None,
        )


class ComponentAnalyzer:
    """The seed's analyzer: ``analyze`` gives the whole report, ``analyze_component`` one part.

    ``analyze_component`` returns a :class:`UsableComponent` (the seed's
    ``component_type`` / ``is_functional``), checked on its own.
    """

    def __init__(self, *, deep: bool = False):
        self.deep = deep

    def analyze(self, model_path: str | os.PathLike[str]) -> _components.ComponentReport:
        return _components.analyze_model_components(model_path, deep=self.deep)

    def analyze_component(self, model_path: str | os.PathLike[str], component: str | None = None) -> UsableComponent:
        """Check one component alone; ``model_path`` may be the component's own folder."""
        path = Path(model_path).expanduser()
        if component is None:
            if not (path.parent / "model_index.json").is_file():
                raise ValueError(
                    f"`component` is needed: {path} is not a component folder of a diffusers model "
                    "(its parent has no model_index.json)."
                )
            path, component = path.parent, path.name
        from wan_nb.repair.donors import check_component

        return check_component(self.analyze(path), component)


class AlternativeModelSuggester:
    """The seed's suggester, over :func:`wan_nb.alternatives.suggest_alternatives`."""

    def __init__(self, *, models_dir: str | os.PathLike[str] | None = None, available_memory: int | str | None = None):
        self.models_dir = models_dir
        self.available_memory = available_memory

    def suggest(self, target_architecture: Any, available_memory: int | str | None = None) -> list[AlternativeModel]:
        memory = available_memory if available_memory is not None else self.available_memory
        return suggest_alternatives(target_architecture, memory, models_dir=self.models_dir)

    def local(self) -> list[AlternativeModel]:
        return get_local_alternatives(self.models_dir)


# --------------------------------------------------------------------------- functions


def handle_pipeline_failure(model_path: Any, error: Any, context: dict[str, Any] | None = None) -> FallbackResult:
    """Diagnose ``error``, try the fallbacks for ``model_path`` and return what worked.

    ``context`` holds :class:`FallbackHandler`'s options (``allow_remote_code``,
    ``models_dir``, ``available_memory``, ``call_kwargs``, ...).
    """
    return FallbackHandler.from_context(context).handle(model_path, error)


def analyze_model_components(path: str | os.PathLike[str]) -> list[UsableComponent]:
    """Each component of the folder checked on its own (the seed's name; see isolate_components)."""
    return isolate_components(path)


def find_alternative_models(
    architecture: Any, models_dir: str | os.PathLike[str] | None = None, available_memory: int | str | None = None
) -> list[AlternativeModel]:
    """Alternatives for ``architecture``, the ones already in ``models_dir`` marked with their path."""
    return suggest_alternatives(architecture, available_memory, models_dir=models_dir)

