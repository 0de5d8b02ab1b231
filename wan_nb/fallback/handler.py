"""FallbackHandler: the seed's planner and executor, as a layer over :func:`wan_nb.plan` and :mod:`wan_nb.repair`.

Longer than most modules because it keeps the seed's whole method surface in one class, as the seed's users know it; the decisions are the planner's.

The package docstring (:mod:`wan_nb.fallback`) says what each name does now."""

from __future__ import annotations

import inspect
import os
import time
from pathlib import Path
from typing import Any

from wan_nb import history as _history
from wan_nb.alternatives import AlternativeModel, suggest_alternatives
from wan_nb.fallback.records import AttemptRecord, FallbackResult, FallbackStrategy, plain
from wan_nb.model import CheckpointError, ComponentReport, ModelFolderError
from wan_nb.model import components as _components
from wan_nb.repair import (
    SubstitutionError,
    UsableComponent,
    assemble_components,
    broken_components,
    find_remote_code,
    generic_pipeline,
    isolate_components,
    load_with_remote_code,
)
from wan_nb.repair.donors import assemble_with_donors
from wan_nb.strategies import get_strategy

__all__ = ["FallbackHandler"]

_SUBSTITUTION = ("pipeline_unavailable", "version_mismatch")
_ISOLATION = ("component_missing", "weights_corrupt")


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
        except (CheckpointError, ValueError, KeyError, TypeError, OSError):  # the estimate is optional: the probability then ignores fit, and says so
            return None

    def _strategy(self, name: str, category: str, description: str, *, peak: int | None = None,
                  **extra: Any) -> FallbackStrategy:
        p = _history.success_probability(name, category, estimated_peak=peak, available=self.available_memory)
        return FallbackStrategy(
            name=name,
            kind=extra.pop("kind", get_strategy(name).kind),
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
        if category in _SUBSTITUTION + _ISOLATION or report is not None and not report.ok:
            for strategy in self._structural_strategies(path, report, category, peak):
                (runnable if strategy.applicable and strategy.runs else other).append(strategy)
        else:
            other.extend(self._memory_strategies(diagnosis, report))
        if not any(s.name == "alternative_model" for s in runnable + other):
            other.append(self._alternative_strategy(report, category))
        runnable.sort(key=lambda s: -s.success_probability)  # stable: the preferred order breaks ties
        return runnable + other

    def create_fallback_strategy(self, failed_pipeline: Any, error: Any) -> FallbackStrategy:
        """The best fallback for this failure (see :meth:`plan_fallbacks` for all of them)."""
        strategies = self.plan_fallbacks(failed_pipeline, error)
        return next((s for s in strategies if s.applicable), strategies[0])

    def _structural_strategies(self, path: str | None, report: ComponentReport | None, category: str,
                               peak: int | None) -> list[FallbackStrategy]:
        """The planner's structural options for this folder, shown with their details and code."""
        from wan_nb.planning.structural import structural_options
        options = structural_options(report, allow_remote_code=self.allow_remote_code,
                                     search_dirs=[str(d) for d in self.search_dirs] or None,
                                     include_hf_cache=self.include_hf_cache)
        # A folder can have several problems at once (a class this diffusers lacks and a missing
        # VAE): show what answers each. With broken parts, the donor strategy is the assembly.
        broken = report is not None and bool(broken_components(report))
        names = []
        if report is None or category in _SUBSTITUTION or not report.pipeline_importable or find_remote_code(report.path):
            names += ["generic_pipeline", "remote_code", "upgrade_library"] + ([] if broken else ["assemble_components"])
        if report is not None and (broken or category in _ISOLATION):
            names += ["component_donor", "redownload"]
        names.append("alternative_model")
        order = list(options)  # the options' own order: with consent, the folder's code before assembly
        result = []
        for name in sorted(names, key=order.index):
            if name == "alternative_model":
                result.append(self._alternative_strategy(report, category))
                continue
            option = options[name]
            reason = option.reason
            if report is None and self._folder_problem and name in ("generic_pipeline", "assemble_components",
                                                                    "remote_code", "component_donor"):
                reason = self._folder_problem  # says which folder and what to give instead
            result.append(self._strategy(
                name, category, reason,
                peak=peak if option.runs and option.applies else None,
                applicable=option.applies,
                skip_reason=None if option.applies else reason,
                runs=option.runs,
                needs_consent=option.needs_consent,
                snippet=self._snippet(name, option, report),
                details=plain(option.details),
            ))
        return result

    def _snippet(self, name: str, option: Any, report: ComponentReport | None) -> str:
        """What the user runs: the commands of a guidance strategy, else the catalogue's code."""
        if name == "upgrade_library":
            return (option.details.get("upgrade") or {}).get("command", "pip install -U diffusers")
        if name == "redownload":
            return "\n".join(r["command"] for r in option.details.get("redownload") or ())
        return get_strategy(name).snippet(path=report.path if report is not None else None, device=self.device)

    def _memory_strategies(self, diagnosis, report) -> list[FallbackStrategy]:
        from wan_nb.planning import plan as make_plan

        plan = make_plan(diagnosis, report, self.settings, self.device, available_bytes=self.available_memory)
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
                details=plain({"plan_candidate": candidate.to_dict()}),
            ))
        return result

    def _alternative_strategy(self, report, category) -> FallbackStrategy:
        target = report if report is not None and report.pipeline_class else "wan_t2v"
        try:
            alternatives = self.suggest_alternative_models(target)
        except (CheckpointError, OSError, ValueError, KeyError) as exc:  # an unreadable registry or folder: said in the skip reason
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
            details=plain({"alternatives": [a.to_dict() for a in best]}))

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
            diagnosis=plain(diagnosis.to_dict()),
            pipeline_class=type(outcome[0]).__name__ if outcome else None,
            pipeline=outcome[0] if outcome else None,
            output=outcome[1] if outcome else None,
        )
