"""Plan a recovery: which strategies to try, in what order, and why the others are left out.

Longer than most modules because the order of a plan is one sort key built from every reason a strategy can or cannot run; the records and the structural options are apart.

``plan(diagnosis, report, settings, device, budget=None)`` returns a :class:`Plan`: every
strategy that answers the failure, each with its estimated peak, the memory available and a
reason; those it will not try say why (predicted not to fit, needs an accelerator, a package
is missing, it changes the output and ``allow_degraded`` is off, ...).

Order, in this priority:

1. the diagnosis: a strategy aimed at the failing stage first (``vae_tiling`` for an OOM in
   ``vae_decode``, ``text_encoder_cpu`` in ``text_encode``), then those that act on that
   stage or that ``diagnose`` suggested, then the rest;
2. the predicted fit: comfortably inside the available memory, then within the safety
   margin ("tight"), then without an estimate; predicted not to fit is not tried;
3. the cost: quality unchanged before changed, small slowdowns before large ones, one
   strategy before a combination.

Whatever the diagnosis, a strategy that changes the video (fewer frames, lower resolution)
comes after every one that does not, and only runs with ``allow_degraded=True``. Among
those, fewer frames come before a lower resolution (each frame keeps its detail), and the
mildest change first: ``fewer_frames+vae_tiling`` keeping 13 of 33 frames is tried before
``fewer_frames`` alone keeping 5.

The safety margin (:data:`SAFETY_MARGIN`, 10 %) is the share of the available memory an
estimate must leave free to count as fitting comfortably. It covers what an estimate of
tensor bytes does not see: the CUDA caching allocator rounds blocks up (to 512 B, and
2 MiB segments for large ones) and fragments between denoising steps, cuBLAS/cuDNN take
workspaces outside the tensors, and the estimator's own error on activations. A candidate
inside the available memory but not the margin is still tried, after the comfortable ones.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from wan_nb import geometry
from wan_nb.planning.records import SAFETY_MARGIN, Candidate, Plan
from wan_nb.planning.structural import rank_structural, structural_options
from wan_nb.settings import GenerationSettings
from wan_nb.strategies import COMBINATIONS, STRATEGIES, Strategy, get_strategy
from wan_nb.units import format_bytes
from wan_nb.vocabulary import check_device

__all__ = ["NOT_RETRIED", "SAFETY_MARGIN", "plan"]


# Categories a retry cannot fix, with what to do instead.
NOT_RETRIED: dict[str, str] = {
    "user_code": "The error is in the notebook's own code, not in the pipeline: a fallback would fail the "
    "same way. Fix the cell the traceback points to and run it again.",
    "accelerator_fault": "The accelerator reported a fault (an illegal memory access, a device-side assert, "
    "ECC or driver error); its context is unusable until the process ends. Restart the kernel, then rerun; "
    "wan_nb does not retry because every later call on this device fails too.",
    "invalid_input": "An argument is invalid (sizes, types): a fallback would fail the same way. Fix the "
    "argument the message names.",
}

# The stage each strategy is aimed at (tier 0 of the order).
_AIMED = {
    "vae_decode": ("vae_tiling", "vae_slicing", "vae_on_cpu"),
    "vae_encode": ("vae_tiling", "vae_slicing"),
    "text_encode": ("text_encoder_cpu",),
}
_FIT_ORDER = {"fits": 0, "tight": 1, "unknown": 2, "no": 3}


# -- the plan ------------------------------------------------------------------------------
def _candidate_names(category: str, strategies: list[str] | None) -> list[str]:
    if strategies is not None:
        return [get_strategy(s).name for s in strategies]
    names = [n for n, s in STRATEGIES.items() if category in s.answers]
    names += [c for c in COMBINATIONS if category in get_strategy(c).answers]
    return names


def _tier(strategy: Strategy, stage: str | None, suggested: tuple[str, ...]) -> int:
    names = [m.name for m in strategy.members]
    if stage in _AIMED and any(n in _AIMED[stage] for n in names):
        return 0
    if any(n in suggested for n in names) or any(stage in m.stages for m in strategy.members):
        return 1
    return 2


_DECODE_STAGES = ("vae_decode", "postprocess")


@dataclass(frozen=True)
class _Predictor:
    """Estimates for one plan: the model, where it computes, the memory available, the margin."""

    report: Any
    device: str  # the estimator's device kind: "cpu" or "cuda"
    available: int | None
    margin: float
    decode: bool
    # What vae_tiling sizes its tile for (wan_nb.memory.tiles), where the memory is known.
    tile_memory: int | None = None

    def peak(self, settings: GenerationSettings, strategy: str | None, extra: int = 0) -> tuple[int | None, str | None]:
        """(estimated peak, why there is none); ``extra`` is memory held beside the run."""
        if self.report is None:
            return None, "no model folder or component report to estimate from"
        from wan_nb.memory.estimate import estimate_memory
        from wan_nb.model import CheckpointError

        try:
            est = estimate_memory(self.report, settings, strategy, device=self.device, memory_available=self.tile_memory)
        except (CheckpointError, ValueError, KeyError, TypeError, OSError) as exc:
            # A component the estimator cannot model: the plan goes on without this estimate,
            # and its notes say why.
            return None, f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        peak = int(est.peak_bytes)
        if not self.decode:
            # `output_type="latent"`: the call stops after denoising, so the decode's peak
            # never happens.
            stages = [v for k, v in est.by_stage.items() if k not in _DECODE_STAGES and k != "weights"]
            if stages:
                peak = int(max(stages))
        return peak + extra, None

    def fit(self, peak: int | None) -> str:
        if peak is None or self.available is None:
            return "unknown"
        if peak <= self.available * (1.0 - self.margin):
            return "fits"
        if peak <= self.available:
            return "tight"
        return "no"


@dataclass(frozen=True)
class _Environment:
    """What decides whether a strategy can run here at all, whatever it would cost."""

    device: str
    accelerators: int
    any_accelerator: bool
    diffusers_version: str | None
    settings: GenerationSettings
    applied: tuple[str, ...]
    fresh_load_possible: bool

    @property
    def is_cpu(self) -> bool:
        return self.device.split(":", 1)[0] == "cpu"


def plan(
    diagnosis: Any,
    report: Any,
    settings: GenerationSettings | None,
    device: str = "cpu",
    budget: str | int | None = None,
    *,
    allow_degraded: bool = False,
    strategies: list[str] | None = None,
    available_bytes: int | None = None,
    resident_bytes: int = 0,
    pipeline_bytes: int = 0,
    failure_capacity: bool = True,
    applied: tuple[str, ...] = (),
    fresh_load_possible: bool = True,
    decode: bool = True,
    margin: float = SAFETY_MARGIN,
    allow_remote_code: bool = False,
    models_dir: str | os.PathLike[str] | None = None,
) -> Plan:
    """Order the strategies that answer ``diagnosis`` for this model, settings and device.

    Args:
        diagnosis: a :class:`wan_nb.Diagnosis` (or its ``to_dict()``); None plans for an
            out-of-memory failure at an unknown stage.
        report: a component report or model folder for the estimates (None: no estimates).
        settings: the failing call's settings (None: diffusers' Wan defaults, 480x832x81).
        device: where the pipeline computes.
        budget: a cap that rehearses a smaller device; the memory available is then the
            budget, else the device's free memory.
        allow_degraded: let strategies that change the output (fewer frames, lower
            resolution) run.
        strategies: consider only these (names or "a+b"), in place of the catalogue.
        available_bytes: override the memory available (the engine passes what it measured).
        failure_capacity: without ``budget``, judge against the failure's own capacity (the
            memory budget in the diagnosis, or the total its CUDA/HIP/MPS message reports)
            rather than this machine's free memory.
        resident_bytes: memory held on the device by others, subtracted from a budget.
        pipeline_bytes: memory the user's existing pipeline holds; a fresh-load strategy on
            the CPU keeps it in memory beside the new load, so it is added to that estimate.
        applied: strategies the pipeline already uses (``vae_tiling`` when tiling is on).
        fresh_load_possible: False when the pipeline was not loaded from a folder.
        decode: False when the call returns latents (``output_type="latent"``): the VAE
            decode and the post-processing do not run, so their peaks do not count.
        allow_remote_code: consent to run code from the model folder (``remote_code``).
        models_dir: a folder of models to take a missing or damaged component from
            (``component_donor``), searched before the model's siblings and the HF cache.

    The structural strategies (``generic_pipeline``, ``assemble_components``, ``remote_code``,
    ``component_donor``) are planned when :func:`wan_nb.repair.substitution_options`
    or a donor search says they can run, ordered by :func:`wan_nb.history.rank_strategies`;
    the guidance ones (``upgrade_library``, ``redownload``, ``alternative_model``) are always
    listed as skipped, with the command or suggestion in the reason.
    """
    diagnosis, device, budget_bytes = _check_arguments(diagnosis, report, settings, device, budget, margin, strategies)
    category = getattr(diagnosis, "category", None) or "out_of_memory"
    stage = getattr(diagnosis, "stage", None) or "unknown"
    suggested = tuple(getattr(diagnosis, "suggested", ()) or ())
    notes: list[str] = []
    if settings is None:
        settings = GenerationSettings()
        notes.append("The call's settings are unknown: estimates use diffusers' Wan defaults (480x832, 81 frames).")
    if available_bytes is None and budget_bytes is None and failure_capacity:
        # No budget given: the memory that matters is the failing device's, never this
        # machine's free RAM. The failure states it: the budget it ran under, or the total
        # capacity the CUDA/HIP/MPS message reports.
        evidence = getattr(diagnosis, "evidence", None) or {}
        own = next((evidence[k] for k in ("budget", "total_capacity")
                    if isinstance(evidence.get(k), int) and not isinstance(evidence.get(k), bool) and evidence[k] > 0),
                   None)
        if own is not None:
            budget_bytes = own
            where = "the memory budget it ran under" if evidence.get("budget") == own else \
                "the device's total capacity its message reports"
            notes.append(f"No budget given: the memory available is the failure's own, {format_bytes(own)} ({where}).")
    assumed_resident = 0
    if available_bytes is None:
        if budget_bytes is not None:
            assumed_resident = int(resident_bytes)
            available_bytes = max(0, budget_bytes - resident_bytes)
        else:
            free = _free_bytes(device)
            available_bytes = None if free is None else free + pipeline_bytes

    if category in NOT_RETRIED:
        return Plan((), device, category, stage, budget_bytes, available_bytes, settings, allow_degraded, margin,
                    (NOT_RETRIED[category],), resident_bytes=assumed_resident,
                pipeline_bytes=int(pipeline_bytes))
    names = _candidate_names(category, strategies)
    if not names:
        notes.append(
            f"No strategy in wan_nb's catalogue answers `{category}`; "
            + ("see the diagnosis' next steps." if diagnosis is not None else "pass a diagnosis.")
        )

    env = _environment(device, settings, applied, fresh_load_possible)
    # A CPU's free host memory says nothing of a budget the cell sets itself: there, without a
    # budget, vae_tiling keeps its fixed tiles.
    tile_memory = (None if available_bytes is None or (env.is_cpu and budget_bytes is None)
                   else int(available_bytes * (1.0 - margin)))
    predictor = _Predictor(report, "cpu" if env.is_cpu else "cuda", available_bytes, margin, decode, tile_memory)
    temporal, spatial, patch = geometry.geometry_from_report(report)
    multiple = geometry.side_multiple(spatial, patch)
    estimate_problems: list[str] = []
    rows: list[tuple[tuple, Candidate]] = []
    structural = {}
    if any(get_strategy(n).structural for n in names):
        search = [str(models_dir)] if models_dir else None
        structural = structural_options(report, allow_remote_code=allow_remote_code, search_dirs=search)
    for name in names:
        strategy = get_strategy(name)
        if strategy.structural:
            option = structural.get(name)
            runnable = option is not None and option.planned
            why = option.plan_reason if option is not None else "not applicable here"
            rows.append(((0 if runnable else 1, 0, 0, 0, 0, 0, 0, strategy.cost_rank, 1, name), Candidate(
                strategy=name, kind=strategy.kind, status="planned" if runnable else "skipped",
                reason=f"{strategy.summary}; {why}", available_bytes=available_bytes,
                skip_reason=None if runnable else why, quality=strategy.quality)))
            continue
        skip = _why_not(strategy, env) or _cannot_change(strategy, stage, report, diagnosis)
        extra = pipeline_bytes if (strategy.fresh_load and env.is_cpu) else 0
        non_degraded = "+".join(m.name for m in strategy.members if not m.degraded) or None
        changes: dict[str, Any] = {}
        peak = None
        fit = "unknown"
        if strategy.degraded:
            changes, peak, fit, problem = _degraded_search(
                strategy, predictor, settings, non_degraded, extra, (temporal, multiple))
            if not changes:
                skip = skip or "the video is already as small as this strategy makes it"
        else:
            peak, problem = predictor.peak(settings, non_degraded, extra)
            fit = predictor.fit(peak)
        if problem and problem not in estimate_problems:
            estimate_problems.append(problem)
        reason = _reason(strategy, stage, fit, peak, available_bytes, (changes, extra))
        if skip is None and fit == "no":
            skip = (f"predicted not to fit: needs about {format_bytes(peak)}, "
                    f"{format_bytes(available_bytes)} available")
        if skip is None and strategy.degraded and not allow_degraded:
            what = ", ".join(f"{k} {getattr(settings, k)} -> {v}" for k, v in changes.items())
            skip = (f"changes the output ({what}) and the user has not allowed that: "
                    "pass allow_degraded=True to let it run")
            if fit in ("fits", "tight"):
                skip += f" (predicted to fit: about {format_bytes(peak)} of {format_bytes(available_bytes)})"
        kept = 1.0
        for name_, value in changes.items():
            if name_ == "num_frames":
                kept *= value / settings.num_frames
            elif name_ in ("height", "width"):
                kept *= value / getattr(settings, name_)
        key = (
            1 if skip else 0,
            1 if strategy.degraded else 0,
            sum(m.cost_rank for m in strategy.members if m.degraded),
            -kept,
            _tier(strategy, stage, suggested),
            _FIT_ORDER[fit],
            1 if strategy.quality == "changed" else 0,
            strategy.cost_rank,
            len(strategy.members),
            name,
        )
        rows.append((key, Candidate(
            strategy=name,
            kind=strategy.kind,
            status="skipped" if skip else "planned",
            reason=reason,
            estimated_peak_bytes=peak,
            available_bytes=available_bytes,
            fit=fit,
            skip_reason=skip,
            changes=changes,
            quality=strategy.quality,
            slowdown=strategy.slowdown,
            degraded=strategy.degraded,
            fresh_load=strategy.fresh_load,
        )))
    rows.sort(key=lambda r: r[0])
    rows = rank_structural(rows, category, available_bytes, allow_remote_code)
    if estimate_problems and report is not None:
        notes.append("Some estimates are missing: " + "; ".join(estimate_problems[:3]))
    elif report is None and names:
        notes.append("No model folder is known, so nothing is estimated: the order follows the diagnosis and cost.")
    return Plan(tuple(c for _, c in rows), device, category, stage, budget_bytes, available_bytes, settings,
                allow_degraded, margin, tuple(notes), resident_bytes=assumed_resident,
                pipeline_bytes=int(pipeline_bytes))


def _why_not(strategy: Strategy, env: _Environment) -> str | None:
    """Why ``strategy`` cannot run here (None when it can): hardware, packages, versions, redundancy."""
    from wan_nb.libraries import version_at_least

    device, settings, accelerators = env.device, env.settings, env.accelerators
    diffusers_version = env.diffusers_version
    if strategy.needs_accelerator and env.is_cpu:
        if not env.any_accelerator:
            return "needs an accelerator (CUDA/XPU/MPS); this kernel has none"
        return "needs an accelerator; this run computes on the CPU"
    if strategy.min_accelerators > 1 and accelerators < strategy.min_accelerators:
        return f"needs {strategy.min_accelerators} or more GPUs; this machine has {accelerators}"
    if strategy.needs_packages and device.split(":", 1)[0] != "cuda":
        return f"{', '.join(strategy.needs_packages)} quantization needs a CUDA GPU; this run uses {device}"
    missing = [p for p in strategy.needs_packages if _package_missing(p)]
    if missing:
        return f"needs the package{'s' if len(missing) > 1 else ''} {', '.join(missing)} (pip install {' '.join(missing)})"
    if strategy.min_diffusers and diffusers_version and not version_at_least(diffusers_version, strategy.min_diffusers):
        return f"needs diffusers >= {strategy.min_diffusers}; {diffusers_version} is installed"
    names = [m.name for m in strategy.members]
    done = [n for n in names if n in env.applied]
    if done:
        return f"the pipeline already uses {', '.join(done)}"
    if "half_precision" in names and settings.dtype != "float32":
        return f"the pipeline already runs in {settings.dtype}"
    if "vae_slicing" in names and settings.batch_size <= 1:
        return "no effect here: it decodes a batch one video at a time, and this call makes one video"
    if strategy.fresh_load and not env.fresh_load_possible:
        return "needs a fresh load of the model folder, and this pipeline was not loaded from one"
    return None


def _degraded_search(strategy: Strategy, predictor: _Predictor, settings: GenerationSettings, rest: str | None,
                     extra: int, geometry_: tuple[int, int]) -> tuple[dict[str, Any], int | None, str, str | None]:
    """The largest smaller size predicted to fit with the margin, else within it, else the smallest.

    The output changes anyway, so a size that leaves the safety margin free is worth a few
    more frames or pixels less. ``geometry_`` is (temporal factor, side multiple).
    """
    temporal, multiple = geometry_
    names = [m.name for m in strategy.members]
    if "fewer_frames" in names and "lower_resolution" in names:
        frames = list(geometry.frame_options(settings, temporal))
        sides = list(geometry.resolution_options(settings, multiple))
        options = [{"num_frames": f, "height": h, "width": w} for f in frames for h, w in sides]
    elif "fewer_frames" in names:
        options = [{"num_frames": f} for f in geometry.frame_options(settings, temporal)]
    else:
        options = [{"height": h, "width": w} for h, w in geometry.resolution_options(settings, multiple)]
    last: tuple[dict[str, Any], int | None, str, str | None] = ({}, None, "unknown", None)
    tight = None
    for changes in options:
        peak, problem = predictor.peak(settings.replace(**changes), rest, extra)
        fit = predictor.fit(peak)
        last = (changes, peak, fit, problem)
        if fit == "fits" or peak is None:
            # The mildest change predicted to fit with the margin (without estimates: the
            # first step down).
            return last
        if fit == "tight" and tight is None:
            tight = last
    return tight or last


def _reason(strategy: Strategy, stage: str, fit: str, peak: int | None, available: int | None,
            change: tuple[dict[str, Any], int]) -> str:
    changes, extra = change
    parts = [strategy.summary]
    if stage in _AIMED and any(m.name in _AIMED[stage] for m in strategy.members):
        parts.append(f"aimed at the failing stage ({stage})")
    if fit == "fits":
        parts.append(f"predicted to fit ({format_bytes(peak)} of {format_bytes(available)})")
    elif fit == "tight":
        parts.append(f"predicted to fit within the safety margin only ({format_bytes(peak)} of "
                     f"{format_bytes(available)})")
    elif fit == "unknown":
        parts.append("no estimate")
    if changes:
        parts.append("changes " + ", ".join(f"{k} to {v}" for k, v in changes.items()))
    if extra:
        parts.append(f"a fresh load beside the existing pipeline ({format_bytes(extra)} stays in memory)")
    return "; ".join(parts)


# -- checks at entry and the device --------------------------------------------------------
# Pipelines whose frame count comes from the input video, not from num_frames.
_INPUT_VIDEO_PIPELINES = frozenset({"WanVideoToVideoPipeline", "WanVACEPipeline"})


def _cannot_change(strategy: Any, stage: str, report: Any, diagnosis: Any) -> str | None:
    """Why ``strategy`` cannot change the allocation that failed, or None when it may.

    Fewer frames shrink what is generated, not what the input fixes: the input image or
    video made ready for encoding (``preprocess``), a V2V/VACE input video's encoding, or
    an I2V transformer's projection of the image context (one image, whatever the frames).
    """
    if not any(m.name == "fewer_frames" for m in strategy.members):
        return None
    evidence = getattr(diagnosis, "evidence", None) or {}
    pipeline = _pipeline_class(report)
    if stage == "preprocess":
        return "cannot change the failing allocation: it is in the input's preprocessing, which the input fixes"
    if stage == "vae_encode" and pipeline in _INPUT_VIDEO_PIPELINES:
        return f"cannot change the failing allocation: {pipeline} takes its frame count from the input video"
    # The diagnosis reads the frames and says where the allocation was (wan_nb.diagnosis.core).
    if evidence.get("allocation_in") == "image_context":
        return ("cannot change the failing allocation: it is in the image-context projection, "
                "whose size does not depend on the frames")
    return None


def _pipeline_class(report: Any) -> str | None:
    """The pipeline class of a component report, or of a model folder's ``model_index.json``."""
    if isinstance(report, (str, os.PathLike)):
        from wan_nb.model.checkpoint import CheckpointError, read_json

        try:
            name = read_json(os.path.join(report, "model_index.json")).get("_class_name")
        except CheckpointError:  # a hub id or a damaged folder: the estimates say so, not this
            return None
        return name if isinstance(name, str) else None
    return getattr(report, "pipeline_class", None)


def _check_arguments(diagnosis: Any, report: Any, settings: Any, device: Any, budget: Any, margin: Any,
                     strategies: Any) -> tuple[Any, str, int | None]:
    """Validate ``plan``'s arguments; returns (diagnosis, device, budget in bytes)."""
    from wan_nb.diagnosis import Diagnosis

    if isinstance(diagnosis, dict):
        diagnosis = Diagnosis.from_dict(diagnosis)
    elif diagnosis is not None and not isinstance(diagnosis, Diagnosis):
        raise TypeError(f"`diagnosis` must be a wan_nb.Diagnosis, its to_dict() or None, got {type(diagnosis).__name__}; "
                        "pass an exception or traceback text through wan_nb.diagnose() first.")
    if settings is not None and not isinstance(settings, GenerationSettings):
        raise TypeError(f"`settings` must be a wan_nb.GenerationSettings or None, got {type(settings).__name__}.")
    device = check_device(device or "cpu")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0.0 <= margin < 1.0:
        raise ValueError(f"`margin` must be a share in [0, 1), got {margin!r}.")
    if strategies is not None and (isinstance(strategies, str) or not all(isinstance(s, str) for s in strategies)):
        raise TypeError(f"`strategies` must be a list of names such as ['vae_tiling', 'a+b'], got {strategies!r}.")
    budget_bytes = None
    if budget is not None:
        from wan_nb.memory.budget import MemoryBudget

        limit = MemoryBudget(budget)  # raises ValueError naming `budget`
        if limit.limit_bytes is not None:
            budget_bytes = limit.limit_bytes
        else:
            from wan_nb.memory import _accel

            budget_bytes = int(budget * _accel.device_total_bytes(device))
    return diagnosis, device, budget_bytes


def _environment(device: str, settings: GenerationSettings, applied: tuple[str, ...],
                 fresh_load_possible: bool) -> _Environment:
    from wan_nb.libraries import installed_version
    from wan_nb.memory import _accel

    return _Environment(device=device, accelerators=_accel.accelerator_count(device),
                        any_accelerator=_accel.has_any_accelerator(), diffusers_version=installed_version("diffusers"),
                        settings=settings, applied=tuple(applied), fresh_load_possible=fresh_load_possible)


def _free_bytes(device: str) -> int | None:
    from wan_nb.memory import _accel

    try:
        return _accel.device_free_bytes(device)
    except RuntimeError:
        return None  # a backend that cannot report free memory: the plan has no "available"


def _package_missing(name: str) -> bool:
    return importlib.util.find_spec(name) is None
