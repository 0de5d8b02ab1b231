"""Recover a failing run: try the planned strategies in turn, measure each, keep the first that works.

Longer than most modules because ``recover``'s one loop (plan, attempt, record, stop) reads best in one place; the sandbox, the attempt, the checks and the replay are their own modules.

``recover(run)`` takes a zero-argument callable (a notebook cell, a function that calls a
pipeline) and, for each strategy of the :func:`wan_nb.plan`, runs it in a sandbox
(:mod:`wan_nb.recovery.sandbox`) under the meter and the budget, records an
:class:`~wan_nb.recovery.records.Attempt`, puts the pipelines back and frees memory, then
stops at the first success (or, with ``explore=True``, tries every candidate predicted to
fit so they can be compared).

Settings for the estimates come from, in this order: ``settings=``; the call the run makes
when ``recover`` first runs it as it is (when no ``error`` is passed); or a dry run that
stops at the pipeline call (when an ``error`` is passed), with loading replaced by a
stand-in so that it costs no memory (:mod:`wan_nb.recovery.observe`); failing all three,
diffusers' Wan defaults, and the plan says so.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wan_nb.planning import NOT_RETRIED, Candidate, Plan, plan
from wan_nb.recovery.attempt import Replay, Trial, run_attempt
from wan_nb.recovery.checks import check_arguments
from wan_nb.recovery.observe import dry_capture, pipeline_dtype
from wan_nb.recovery.pipelines import applied_strategies, default_device, find_pipelines, pipeline_bytes
from wan_nb.recovery.records import Attempt, RecoveryReport
from wan_nb.recovery.replay import KeptRun
from wan_nb.recovery.sandbox import Scope, clear_tracebacks
from wan_nb.settings import GenerationSettings
from wan_nb.strategies import Strategy, StrategyContext, dtype_kwarg_name, get_strategy
from wan_nb.strategies.state import release_caches
from wan_nb.strategies.usercall import UserCall, path_source
from wan_nb.vocabulary import check_device

__all__ = ["recover"]


def recover(
    run: Callable[[], Any],
    *,
    pipeline: Any = None,
    namespace: dict[str, Any] | None = None,
    error: BaseException | str | None = None,
    diagnosis: Any = None,
    settings: GenerationSettings | None = None,
    report: Any = None,
    budget: str | int | float | None = None,
    device: str | None = None,
    explore: bool = False,
    apply: bool = False,
    allow_degraded: bool = False,
    strategies: list[str] | None = None,
    force: bool = False,
    max_attempts: int | None = None,
    on_start: Callable[[Candidate, int], Any] | None = None,
    on_attempt: Callable[[Attempt], Any] | None = None,
    allow_remote_code: bool = False,
    models_dir: str | os.PathLike[str] | None = None,
    replay: bool = True,
    kept: KeptRun | None = None,
) -> RecoveryReport:
    """Rerun ``run`` under the planned strategies until one works; see the module docstring.

    Args:
        run: a zero-argument callable that fails as it is (a cell, a function).
        pipeline: the pipeline(s) the run uses, if it does not load its own.
        namespace: a mapping (``globals()``) to search for pipelines; names the run binds to
            pipelines of a failed attempt are put back afterwards.
        error: the failure (exception or traceback text). Without it, ``run`` is first run
            as it is (``report.probe``) to see how it fails. Its traceback is cleared: its
            frames hold the failed run's tensors.
        diagnosis: a ready :class:`~wan_nb.diagnosis.Diagnosis` (or its ``to_dict()``) instead of ``error``.
        settings: the call's :class:`GenerationSettings` (else observed, see above).
        report: a component report or model folder for the estimates (else the pipeline's).
        budget: rehearse a smaller device: every attempt runs under ``memory_budget(budget)``.
        device: where the pipeline computes (default: the pipeline's, else the accelerator).
        explore: try every candidate predicted to fit, not only up to the first success.
        apply: keep the winning strategy on the user's pipeline (in place) afterwards.
        allow_degraded: allow strategies that change the output (fewer frames, lower resolution).
        strategies: consider only these names (or "a+b" combinations).
        force: try ``strategies`` exactly in the given order, without predictions or skips.
        max_attempts: stop after this many attempts.
        on_start: called as ``on_start(candidate, index)`` before each attempt (live displays); the
            candidate's ``estimated_peak_bytes`` is the attempt's (what else is resident included).
        on_attempt: called with each :class:`Attempt` as it finishes.
        allow_remote_code: consent to run code from the model folder (``remote_code``).
        models_dir: a folder of models to take a missing or damaged component from
            (``component_donor``).
        replay: reuse what the failed run made (:mod:`wan_nb.recovery.replay`): after an
            OOM in the VAE decode, the call that matches the failed one decodes its latents
            instead of denoising again; after one in the denoising, it gets the prompt
            embeddings instead of encoding the prompt again. ``False``: every attempt runs in full.
        kept: what a failed run left (:func:`wan_nb.recovery.replay.keep_from_error`), when its
            frames were read before this call (the notebook's failed-cell hook does that).

    A structural strategy (``assemble_components``, ``generic_pipeline``, ``remote_code``,
    ``component_donor``) replaces the run's own ``from_pretrained(path)`` for the attempt:
    the call returns the pipeline it builds, in the dtype asked for. The folder is never
    written. Every attempt is recorded in the history (:mod:`wan_nb.history`).
    """
    diagnosis = check_arguments(run, locals())
    namespaces = [ns for ns in (namespace, getattr(run, "__globals__", None)) if isinstance(ns, dict)]
    pipelines = find_pipelines(pipeline, namespace, run)
    scope = Scope(
        pipelines=pipelines,
        namespaces=namespaces,
        device=check_device(device) if device is not None else default_device(pipelines),
        settings=settings,
        models_dir=str(Path(models_dir).expanduser()) if models_dir is not None else None,
        allow_remote_code=bool(allow_remote_code),
        source=run.source if isinstance(getattr(run, "source", None), str) else None,
    )
    outcome = _Outcome(budget=budget)
    reuse = Replay(enabled=bool(replay), kept=kept if replay else None)
    if replay and kept is None and isinstance(error, BaseException):
        reuse.keep(error, None, {})  # before its frames are cleared below

    if diagnosis is None and error is not None:
        from wan_nb.diagnosis import diagnose

        diagnosis = diagnose(error)
    if isinstance(error, BaseException):
        clear_tracebacks(error)
    error = None
    outcome.diagnosis = diagnosis
    if getattr(diagnosis, "category", None) in NOT_RETRIED and not force:
        # Nothing will be tried: do not run any of the user's code again.
        outcome.notes.append(NOT_RETRIED[diagnosis.category])
        return outcome.report(scope)
    # Whatever the failed run left (a pipeline in a reference cycle, a half-full VAE cache)
    # goes before anything is measured.
    _free_leftovers(scope)
    if diagnosis is None:
        # How does it fail? Run it as it is; that run also shows what it loads and asks for.
        probe, result, interrupted = run_attempt(scope, run, Trial("as_is", reason="the run as it is"), budget, reuse)
        outcome.probe, outcome.interrupted = probe, interrupted
        _notify(on_attempt, probe)
        if probe.succeeded or interrupted:
            if probe.succeeded:
                outcome.result = result
                outcome.notes.append("The run succeeded as it is: no strategy was needed.")
            return outcome.report(scope)
        from wan_nb.diagnosis import Diagnosis

        diagnosis = outcome.diagnosis = Diagnosis.from_dict(probe.diagnosis) if probe.diagnosis else None
    else:
        # A dry run (loads replaced by a stand-in, stopped at the pipeline call) says which
        # folder the run loads and what it asks for, at no memory cost.
        early = dry_capture(run, scope.namespaces, scope.observed)
        if early is not None:
            clear_tracebacks(early)
            outcome.notes.append(f"The dry run that reads the call's settings stopped early ({type(early).__name__}); "
                                 "the estimates use the settings given or diffusers' defaults.")
            del early
    released = _release_leftovers(scope, explicit=find_pipelines(pipeline))
    if released:
        outcome.notes += released
        _free_leftovers(scope)

    the_plan, resident = _plan(scope, diagnosis, report, budget, force=force, allow_degraded=allow_degraded,
                               strategies=strategies, allow_remote_code=allow_remote_code)
    outcome.plan = the_plan
    outcome.notes += list(the_plan.notes)
    # vae_tiling sizes its tile for the memory there is, where that is known: a budget, or an
    # accelerator's free memory (a budget's ballast included).
    known = the_plan.budget_bytes is not None or scope.device.split(":", 1)[0] != "cpu"
    scope.available = (int(the_plan.available_bytes * (1.0 - the_plan.margin))
                       if known and the_plan.available_bytes is not None else None)
    if reuse.kept is not None:
        outcome.notes.append(_kept_note(reuse.kept))
    candidates = _candidates(the_plan, strategies, force)

    try:
        for index, candidate in enumerate(candidates):
            if max_attempts is not None and len(outcome.attempts) >= max_attempts:
                outcome.notes.append(f"Stopped after {max_attempts} attempt(s) (`max_attempts`).")
                break
            # The plan estimates the pipeline's own memory; what else lives on the device
            # comes on top, so the attempt's estimate compares with its measured peak. A live
            # display is told that same figure, so the number it shows does not change.
            estimate = None if candidate.estimated_peak_bytes is None else candidate.estimated_peak_bytes + resident
            _notify(on_start, dataclasses.replace(candidate, estimated_peak_bytes=estimate), index)
            strategy = get_strategy(candidate.strategy)
            if strategy.guidance:
                outcome.notes.append(f"`{strategy.name}` is guidance only: {candidate.skip_reason or strategy.summary}")
                continue
            # Only an in-place change can stay on the user's pipeline; a fresh load or a
            # changed call is the snippet's job.
            keep = apply and not explore and _keepable(strategy)
            trial = Trial(candidate.strategy, strategy, estimate, dict(candidate.changes), keep, candidate.reason)
            attempt, value, interrupted = run_attempt(scope, run, trial, budget, reuse)
            outcome.attempts.append(attempt)
            _notify(on_attempt, attempt)
            if interrupted:
                outcome.interrupted = True
                break
            _record(scope, attempt, diagnosis, the_plan, outcome.notes)
            if attempt.succeeded and outcome.winner is None:
                outcome.winner, outcome.result, outcome.applied = candidate.strategy, value, keep
                if not explore:
                    break
            if (attempt.diagnosis or {}).get("category") == "accelerator_fault":
                outcome.notes.append(NOT_RETRIED["accelerator_fault"])
                break
    except KeyboardInterrupt:
        outcome.interrupted = True
    if outcome.winner and apply and not outcome.applied and not outcome.interrupted:
        winning = next(a for a in outcome.attempts if a.strategy == outcome.winner and a.succeeded)
        outcome.applied = _keep_winner(scope, get_strategy(outcome.winner), winning.changes, outcome.notes)
    if not outcome.winner and not outcome.interrupted and not outcome.attempts:
        outcome.notes.append(_nothing_to_try(the_plan))
    reuse.kept = None  # the kept tensors go with the recovery
    return outcome.report(scope)


def _kept_note(kept: KeptRun) -> str:
    from wan_nb.units import format_bytes

    if kept.stage == "vae_decode":
        size = kept.latents.numel() * kept.latents.element_size()
        return (f"The failed run's latents ({format_bytes(size)}, on the host) are kept: the call that matches it "
                "decodes them under each strategy instead of denoising again (replay=False to rerun in full).")
    return ("The failed run's prompt embeddings are kept on the host: matching calls get them instead of encoding "
            "the prompt again (replay=False to rerun in full).")


# -- the plan for this run ------------------------------------------------------------------
def _plan(scope: Scope, diagnosis: Any, report: Any, budget: Any, *, force: bool, allow_degraded: bool,
          strategies: list[str] | None, allow_remote_code: bool) -> tuple[Plan, int]:
    """The plan, and the bytes of device memory that are in use but not the pipelines'."""
    scope.settings = scope.settings or scope.observed.settings
    first = scope.pipelines[0] if scope.pipelines else None
    path = (getattr(first, "name_or_path", None) if first is not None else None) or scope.observed.path
    dtype = pipeline_dtype(first) if first is not None else scope.observed.dtype
    if scope.settings is not None and dtype and scope.settings.dtype != dtype:
        scope.settings = scope.settings.replace(dtype=dtype)
    held = pipeline_bytes(scope.pipelines, scope.device) if scope.pipelines else 0
    resident = max(0, _live_bytes(scope.device) - held)
    the_plan = plan(
        diagnosis, _report_for(report, path), scope.settings, scope.device, budget,
        allow_degraded=allow_degraded or force,
        strategies=strategies,
        resident_bytes=resident if budget is not None else 0,
        pipeline_bytes=held,
        # recover() without a budget measures this machine; the notebook passes the failed
        # cell's own budget explicitly (magic.py), so the plan needs no guess from the diagnosis.
        failure_capacity=False,
        applied=() if force else applied_strategies(scope.pipelines),
        fresh_load_possible=bool(path) or not scope.pipelines,
        decode=scope.observed.decode,
        allow_remote_code=bool(allow_remote_code),
        models_dir=scope.models_dir,
    )
    return the_plan, resident


def _candidates(the_plan: Plan, strategies: list[str] | None, force: bool) -> list[Candidate]:
    if not force:
        return list(the_plan.planned)
    names = [get_strategy(s).name for s in strategies or ()]
    if the_plan.category in NOT_RETRIED:
        return [Candidate(strategy=n, kind=get_strategy(n).kind, status="planned", reason="given with force=True")
                for n in names]
    return [c if c.planned else Candidate(**{**c.to_dict(), "status": "planned", "skip_reason": None})
            for c in (the_plan.candidate(n) for n in names)]


def _live_bytes(device: str) -> int:
    """What the budget will count as in use before the run: all live tensor memory on ``device``."""
    from wan_nb.memory.meter import measure

    with measure(device=device) as m:
        pass
    return int(m.result.baseline_bytes)


# (folder, model_index.json mtime) -> component report: a notebook recovers the same model
# again and again, and the analysis checks every class against the installed libraries.
_REPORTS: dict[tuple[str, float], Any] = {}


def _report_for(report: Any, path: str | None) -> Any:
    if report is not None and not isinstance(report, (str, Path)):
        return report
    path = str(report) if report is not None else path
    index = Path(path) / "model_index.json" if path else None
    if index is None or not index.is_file():
        return None
    key = (str(Path(path).resolve()), index.stat().st_mtime)
    if key not in _REPORTS:
        from wan_nb.model import CheckpointError, analyze_model_components

        try:
            _REPORTS[key] = analyze_model_components(path)
        except CheckpointError:
            return None  # an unreadable folder: the plan goes on without estimates, and says so
    return _REPORTS[key]


# -- before and after the attempts -----------------------------------------------------------
def _free_leftovers(scope: Scope) -> None:
    from wan_nb.memory import _accel

    for pipe in scope.pipelines:
        release_caches(pipe)
    _accel.free_memory(scope.device)


def _same_folder(a: Any, b: Any) -> bool:
    try:
        return bool(a) and bool(b) and Path(str(a)).resolve() == Path(str(b)).resolve()
    except OSError:
        return str(a) == str(b)


def _release_leftovers(scope: Scope, explicit: list[Any]) -> list[str]:
    """Unbind pipelines the failed run itself loaded, so the retries have their memory.

    A cell such as ``pipe = WanPipeline.from_pretrained(p).to("cuda"); pipe(...)`` that
    failed in the call leaves ``pipe`` bound to a full pipeline; rerunning the cell would
    load a second one beside it. A pipeline loaded from the folder the run loads, bound in
    ``namespace`` or the run's globals, and not passed as ``pipeline=``, is that leftover:
    its names are removed (the run binds them again when it succeeds).
    """
    path = scope.observed.path
    if not path:
        return []
    stale = [p for p in scope.pipelines
             if _same_folder(getattr(p, "name_or_path", None), path) and not any(p is e for e in explicit)]
    notes = []
    for pipe in stale:
        scope.pipelines.remove(pipe)
        for ns in scope.namespaces:
            for key in [k for k, v in ns.items() if v is pipe]:
                del ns[key]
                notes.append(f"`{key}` held the pipeline the failed run had loaded from {path}; it was unbound "
                             "so the retries have its memory (the run binds it again).")
    return notes


def _keepable(strategy: Strategy) -> bool:
    return not (strategy.fresh_load or strategy.rewrites_call or strategy.structural)


def _keep_winner(scope: Scope, strategy: Strategy, changes: dict[str, Any], notes: list[str]) -> bool:
    """Apply ``strategy`` to the user's pipelines for good (after ``explore``)."""
    if not _keepable(strategy):
        notes.append(f"`{strategy.name}` changes the load or the call, which wan_nb cannot keep on an existing "
                     "pipeline: use the snippet.")
        return False
    ctx = StrategyContext(device=scope.device, settings=scope.settings, changes=dict(changes))
    for pipe in scope.pipelines:
        strategy.setup(pipe, ctx)
    return bool(scope.pipelines)


def _record(scope: Scope, attempt: Attempt, diagnosis: Any, the_plan: Plan, notes: list[str]) -> None:
    """One attempt into the history file (``$WAN_NB_HISTORY``), for the plans to come."""
    from wan_nb.history import HistoryRecord, record_attempt

    diag = diagnosis.to_dict() if hasattr(diagnosis, "to_dict") else dict(diagnosis or {})
    first = scope.pipelines[0] if scope.pipelines else None
    try:
        record_attempt(HistoryRecord(
            strategy=attempt.strategy,
            category=diag.get("category") or the_plan.category or "unknown",
            success=attempt.succeeded,
            stage=diag.get("stage") or "unknown",
            model_class=type(first).__name__ if first is not None else scope.observed.pipeline_class,
            estimated_peak=attempt.estimated_peak_bytes,
            measured_peak=attempt.measured_peak_bytes,
            available=the_plan.available_bytes,
            failure=(attempt.diagnosis or {}).get("category"),
            device=scope.device,
            time=time.time(),
        ))
    except OSError as exc:
        # A read-only or full disk: the history only informs later plans, the recovery goes on.
        notes.append(f"The attempt history could not be written ({exc}); later plans will not learn from it.")


def _nothing_to_try(the_plan: Plan) -> str:
    if the_plan.category in NOT_RETRIED:
        return NOT_RETRIED[the_plan.category]
    degraded = [c for c in the_plan.skipped if c.degraded and c.fit in ("fits", "tight")]
    if degraded:
        c = degraded[0]
        what = ", ".join(f"{k}={v}" for k, v in c.changes.items())
        return (f"Nothing that keeps the output unchanged is predicted to fit; `{c.strategy}` would ({what}) "
                "but changes the output: rerun with allow_degraded=True to allow it.")
    if the_plan.candidates:
        return "Every candidate was skipped; the plan says why for each."
    return f"No strategy answers `{the_plan.category}`."


@dataclass
class _Outcome:
    """What the recovery did, gathered as it goes; :meth:`report` makes the RecoveryReport."""

    budget: Any = None
    attempts: list[Attempt] = field(default_factory=list)
    winner: str | None = None
    plan: Plan | None = None
    diagnosis: Any = None
    probe: Attempt | None = None
    interrupted: bool = False
    applied: bool = False
    notes: list[str] = field(default_factory=list)
    result: Any = None

    def report(self, scope: Scope) -> RecoveryReport:
        first = scope.pipelines[0] if scope.pipelines else None
        obs = scope.observed
        path = (getattr(first, "name_or_path", None) if first is not None else None) or obs.path
        dtype = pipeline_dtype(first) if first is not None else obs.dtype
        diag = self.diagnosis.to_dict() if hasattr(self.diagnosis, "to_dict") else self.diagnosis
        return RecoveryReport(
            attempts=tuple(self.attempts),
            winner=self.winner,
            plan=self.plan,
            device=scope.device,
            budget_bytes=self.plan.budget_bytes if self.plan else _budget_bytes(self.budget),
            available_bytes=self.plan.available_bytes if self.plan else None,
            settings=scope.settings,
            diagnosis=diag,
            probe=self.probe,
            interrupted=self.interrupted,
            applied=self.applied,
            path=str(path) if path else None,
            pipeline_class=type(first).__name__ if first is not None else obs.pipeline_class,
            dtype=dtype,
            notes=tuple(dict.fromkeys(self.notes)),
            result=self.result,
            models_dir=scope.models_dir,
            call=_user_call(scope, path, dtype),
        )


def _user_call(scope: Scope, path: Any, dtype: str | None) -> UserCall | None:
    """The run's own call for the snippet: its load when the run made one, else the pipeline's folder."""
    call = scope.observed.call
    if call is None:
        return None
    if scope.observed.load is not None:
        call = dataclasses.replace(call, loads=True, **scope.observed.load)
    else:
        # Loaded before the run: a snippet that must load again uses what the pipeline was
        # loaded from, in the precision it has.
        precision = {dtype_kwarg_name(): f"torch.{dtype}"} if dtype and dtype != "float32" else {}
        call = dataclasses.replace(call, load_path=path_source(path, scope.namespaces), load_arguments=precision)
    return call.with_source(scope.source) if scope.source else call


def _budget_bytes(budget: Any) -> int | None:
    if budget is None or isinstance(budget, float):
        return None  # a fraction: its bytes depend on the device, and no plan resolved it
    from wan_nb.units import parse_bytes

    return parse_bytes(budget)


def _notify(callback: Callable[..., Any] | None, *args: Any) -> None:
    if callback is None:
        return
    try:
        callback(*args)
    except Exception as exc:  # noqa: BLE001 - any error in the caller's display must not stop a recovery
        warnings.warn(f"wan_nb: the recovery callback {callback!r} failed: {exc}", RuntimeWarning, stacklevel=3)
