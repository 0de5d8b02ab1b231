"""Plan a recovery: which strategies to try, in what order, and why the others are left out.

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
from dataclasses import dataclass, field
from typing import Any

from wan_nb.settings import GenerationSettings
from wan_nb.strategies import COMBINATIONS, STRATEGIES, Strategy, get_strategy
from wan_nb.strategies import sizes as _sizes
from wan_nb.units import format_bytes, parse_bytes

__all__ = ["Candidate", "Plan", "SAFETY_MARGIN", "NOT_RETRIED", "plan"]

SAFETY_MARGIN = 0.10

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
    "vae_decode": ("vae_tiling", "vae_slicing"),
    "vae_encode": ("vae_tiling", "vae_slicing"),
    "text_encode": ("text_encoder_cpu",),
}
_FIT_ORDER = {"fits": 0, "tight": 1, "unknown": 2, "no": 3}


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
            head += f" (budget {format_bytes(self.budget_bytes)})" if self.budget_bytes is not None else ""
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


# -- environment ---------------------------------------------------------------------------
def _accelerator_count(device: str) -> int:
    kind = device.split(":", 1)[0]
    if kind == "cpu":
        return 0
    try:
        import torch

        if kind == "cuda":
            return torch.cuda.device_count()
        if kind == "xpu":
            return torch.xpu.device_count()
        if kind == "mps":
            return 1 if torch.backends.mps.is_available() else 0
    except Exception:  # noqa: BLE001 - a torch build without that backend
        return 0
    return 0


def _has_any_accelerator() -> bool:
    try:
        import torch

        acc = getattr(torch, "accelerator", None)
        if acc is not None:
            return bool(acc.is_available())
        return torch.cuda.is_available() or torch.backends.mps.is_available()
    except Exception:  # noqa: BLE001
        return False


def device_free_bytes(device: str) -> int | None:
    """Free memory of ``device``: ``mem_get_info`` on accelerators, psutil's ``available`` on the CPU."""
    kind = device.split(":", 1)[0]
    try:
        if kind == "cpu":
            import psutil

            return int(psutil.virtual_memory().available)
        from wan_nb.memory import _accel

        return int(_accel.mem_get_info(_accel.normalize(device))[0])
    except Exception:  # noqa: BLE001 - a backend without memory queries
        return None


def _package_missing(name: str) -> bool:
    return importlib.util.find_spec(name) is None


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


def _estimate(report: Any, settings: GenerationSettings, strategy: str | None, device: str,
              decode: bool = True, available: int | None = None) -> tuple[int | None, str | None]:
    if report is None:
        return None, "no model folder or component report to estimate from"
    try:
        from wan_nb.memory.estimate import estimate_memory

        # vae_tiling picks its tile for the memory there is (wan_nb.memory.tiles): estimate that tile.
        est = estimate_memory(report, settings, strategy, device=device, memory_available=available)
        if not decode:
            # `output_type="latent"`: the call stops after denoising, so the decode's peak
            # never happens.
            stages = [v for k, v in est.by_stage.items() if k not in _DECODE_STAGES and k != "weights"]
            if stages:
                return int(max(stages)), None
        return int(est.peak_bytes), None
    except Exception as exc:  # noqa: BLE001 - an estimate is optional: the plan says why it lacks one
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def _fit(peak: int | None, available: int | None, margin: float) -> str:
    if peak is None or available is None:
        return "unknown"
    if peak <= available * (1.0 - margin):
        return "fits"
    if peak <= available:
        return "tight"
    return "no"


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
    applied: tuple[str, ...] = (),
    fresh_load_possible: bool = True,
    decode: bool = True,
    margin: float = SAFETY_MARGIN,
    allow_remote_code: bool = False,
    models_dir: str | os.PathLike[str] | None = None,
) -> Plan:
    """Order the strategies that answer ``diagnosis`` for this model, settings and device.

    Args:
        diagnosis: a :class:`wan_nb.diagnose.Diagnosis` (or its dict).
        report: a component report or model folder for the estimates (None: no estimates).
        settings: the failing call's settings (None: diffusers' Wan defaults, 480x832x81).
        device: where the pipeline computes.
        budget: a cap that rehearses a smaller device; the memory available is then the
            budget, else the device's free memory.
        allow_degraded: let strategies that change the output (fewer frames, lower
            resolution) run.
        strategies: consider only these (names or "a+b"), in place of the catalogue.
        available_bytes: override the memory available (the engine passes what it measured).
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
    ``component_donor``) are planned when :func:`wan_nb.substitution.substitution_options`
    or a donor search says they can run, ordered by :func:`wan_nb.history.rank_strategies`;
    the guidance ones (``upgrade_library``, ``redownload``, ``alternative_model``) are always
    listed as skipped, with the command or suggestion in the reason.
    """
    if isinstance(diagnosis, dict):
        from wan_nb.diagnose import Diagnosis

        diagnosis = Diagnosis.from_dict(diagnosis)
    category = getattr(diagnosis, "category", None) or "out_of_memory"
    stage = getattr(diagnosis, "stage", None) or "unknown"
    suggested = tuple(getattr(diagnosis, "suggested", ()) or ())
    device = str(device or "cpu")
    notes: list[str] = []
    if settings is None:
        settings = GenerationSettings()
        notes.append("The call's settings are unknown: estimates use diffusers' Wan defaults (480x832, 81 frames).")
    budget_bytes = parse_bytes(budget) if budget is not None and not isinstance(budget, float) else None
    if isinstance(budget, float) and budget is not None:
        from wan_nb.memory import _accel
        from wan_nb.memory.budget import _device_total

        budget_bytes = int(budget * _device_total(_accel.normalize(device)))
    if available_bytes is None:
        if budget_bytes is not None:
            available_bytes = max(0, budget_bytes - resident_bytes)
        else:
            free = device_free_bytes(device)
            available_bytes = None if free is None else free + pipeline_bytes

    if category in NOT_RETRIED:
        return Plan((), device, category, stage, budget_bytes, available_bytes, settings, allow_degraded, margin,
                    (NOT_RETRIED[category],))
    names = _candidate_names(category, strategies)
    if not names:
        notes.append(
            f"No strategy in wan_nb's catalogue answers `{category}`; "
            + ("see the diagnosis' next steps." if diagnosis is not None else "pass a diagnosis.")
        )

    is_cpu = device.split(":", 1)[0] == "cpu"
    est_device = "cpu" if is_cpu else "cuda"
    accelerators = _accelerator_count(device)
    any_accel = _has_any_accelerator()
    temporal, spatial, patch = _sizes.geometry_from_report(report)
    multiple = _sizes.side_multiple(spatial, patch)
    from wan_nb.libraries import installed_version, version_at_least

    diffusers_version = installed_version("diffusers")
    estimate_problems: list[str] = []
    rows: list[tuple[tuple, Candidate]] = []
    structural: dict[str, tuple[bool, str]] = {}
    if any(get_strategy(n).structural for n in names):
        structural = _structural_options(report, allow_remote_code, models_dir)
    for name in names:
        strategy = get_strategy(name)
        if strategy.structural:
            runnable, why = structural.get(name, (False, "not applicable here"))
            rows.append(((0 if runnable else 1, 0, 0, 0, 0, 0, 0, strategy.cost_rank, 1, name), Candidate(
                strategy=name, kind=strategy.kind, status="planned" if runnable else "skipped",
                reason=f"{strategy.summary}; {why}", available_bytes=available_bytes,
                skip_reason=None if runnable else why, quality=strategy.quality)))
            continue
        skip = _why_not(strategy, device, is_cpu, any_accel, accelerators, diffusers_version, version_at_least,
                        settings, applied, fresh_load_possible)
        extra = pipeline_bytes if (strategy.fresh_load and is_cpu) else 0
        non_degraded = "+".join(m.name for m in strategy.members if not m.degraded) or None
        changes: dict[str, Any] = {}
        peak = None
        fit = "unknown"
        if strategy.degraded:
            changes, peak, fit, problem = _degraded_search(
                strategy, report, settings, non_degraded, est_device, available_bytes, margin, extra,
                temporal, multiple, decode)
            if not changes:
                skip = skip or "the video is already as small as this strategy makes it"
        else:
            peak, problem = _estimate(report, settings, non_degraded, est_device, decode,
                                      None if available_bytes is None or (is_cpu and budget_bytes is None)
                                      else int(available_bytes * (1.0 - margin)))
            peak = None if peak is None else peak + extra
            fit = _fit(peak, available_bytes, margin)
        if problem and problem not in estimate_problems:
            estimate_problems.append(problem)
        reason = _reason(strategy, stage, fit, peak, available_bytes, changes, extra)
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
    rows = _rank_structural(rows, category, available_bytes, allow_remote_code)
    if estimate_problems and report is not None:
        notes.append("Some estimates are missing: " + "; ".join(estimate_problems[:3]))
    elif report is None and names:
        notes.append("No model folder is known, so nothing is estimated: the order follows the diagnosis and cost.")
    return Plan(tuple(c for _, c in rows), device, category, stage, budget_bytes, available_bytes, settings,
                allow_degraded, margin, tuple(notes))


def _structural_options(report: Any, allow_remote_code: bool, models_dir: Any) -> dict[str, tuple[bool, str]]:
    """Whether each structural strategy can run for this folder, and why (not)."""
    from wan_nb.strategies.structural import GUIDANCE_PREFIX, donor_search_dirs

    if isinstance(report, (str, os.PathLike)):
        try:
            from wan_nb.components import analyze_model_components

            report = analyze_model_components(report)
        except Exception:  # noqa: BLE001 - an unreadable folder: nothing to build from
            report = None
    out: dict[str, tuple[bool, str]] = {}
    if report is None:
        for name in ("generic_pipeline", "assemble_components", "remote_code", "component_donor"):
            out[name] = (False, "no model folder is known to build the pipeline from")
    else:
        from wan_nb.substitution import CONSENT_REASON, substitution_options

        try:
            for option in substitution_options(report, allow_remote_code=allow_remote_code):
                runs = option.applicable and option.runs
                reason = option.reason
                if option.name == "remote_code" and not allow_remote_code and option.needs_consent:
                    reason = CONSENT_REASON if "consent" in reason else reason
                if not option.runs:
                    reason = GUIDANCE_PREFIX + reason
                out[option.name] = (runs, reason)
        except Exception as exc:  # noqa: BLE001 - the folder cannot be read as a pipeline
            for name in ("generic_pipeline", "assemble_components", "remote_code"):
                out[name] = (False, f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
        out["component_donor"] = _donor_option(report, donor_search_dirs(models_dir))
        out["redownload"] = _redownload_option(report, GUIDANCE_PREFIX)
    out.setdefault("upgrade_library", (False, GUIDANCE_PREFIX + 'install a newer diffusers: `pip install -U diffusers`'))
    out.setdefault("redownload", (False, GUIDANCE_PREFIX + "no model folder is known, so nothing to fetch again"))
    out["alternative_model"] = (False, GUIDANCE_PREFIX + "run another model the installed diffusers supports "
                                "(`wan_nb.alternatives.load_registry()` lists the known ones)")
    return out


def _donor_option(report: Any, search_dirs: list[str] | None) -> tuple[bool, str]:
    from wan_nb.donors import broken_components, find_donors

    broken = broken_components(report)
    if not broken:
        return False, "no component is missing or damaged"
    found = []
    for info in broken:
        try:
            donors, _ = find_donors(report, info.name, search_dirs)
        except Exception as exc:  # noqa: BLE001 - a search that fails finds nothing
            donors = []
            why = f" ({type(exc).__name__}: {exc})"
        else:
            why = ""
        if not donors:
            where = ", ".join([*(search_dirs or []), "the model's sibling folders", "the Hugging Face cache"])
            return False, (f"no compatible {info.class_name or info.name} for `{info.name}` ({info.status}) in "
                           f"{where}{why}; pass models_dir= a folder holding one")
        found.append(f"`{info.name}` from {donors[0].model}")
    return True, "donors found: " + ", ".join(found)


def _redownload_option(report: Any, prefix: str) -> tuple[bool, str]:
    from wan_nb.donors import redownload_instructions

    try:
        fetch = redownload_instructions(report)
    except Exception as exc:  # noqa: BLE001
        return False, prefix + f"cannot tell what to fetch ({type(exc).__name__}: {exc})"
    if not fetch:
        return False, prefix + "no component is missing or damaged"
    return False, prefix + "; ".join(
        f"`{r.component}` is {r.status}, fetch {', '.join(r.files)} with `{r.command}`" for r in fetch)


def _rank_structural(rows: list[tuple[tuple, Candidate]], category: str, available: int | None,
                     allow_remote_code: bool) -> list[tuple[tuple, Candidate]]:
    """Reorder the planned structural candidates by their record (history), in their own slots."""
    slots = [i for i, (_, c) in enumerate(rows) if c.planned and get_strategy(c.strategy).structural]
    if len(slots) < 2:
        return rows
    preferred = ["generic_pipeline", "assemble_components", "remote_code", "component_donor"]
    if allow_remote_code:
        preferred = ["generic_pipeline", "remote_code", "assemble_components", "component_donor"]
    by_name = {rows[i][1].strategy: rows[i] for i in slots}
    names = sorted(by_name, key=lambda n: preferred.index(n) if n in preferred else len(preferred))
    try:
        from wan_nb.history import rank_strategies

        names = [n for n, _ in rank_strategies(names, category, available=available)]
    except Exception:  # noqa: BLE001 - an unreadable history keeps the preferred order
        pass
    rows = list(rows)
    for slot, name in zip(slots, names, strict=True):
        rows[slot] = by_name[name]
    return rows


def _why_not(strategy, device, is_cpu, any_accel, accelerators, diffusers_version, version_at_least, settings,
             applied, fresh_load_possible) -> str | None:
    if strategy.needs_accelerator and is_cpu:
        if not any_accel:
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
    done = [n for n in names if n in applied]
    if done:
        return f"the pipeline already uses {', '.join(done)}"
    if "half_precision" in names and settings.dtype != "float32":
        return f"the pipeline already runs in {settings.dtype}"
    if "vae_slicing" in names and settings.batch_size <= 1:
        return "no effect here: it decodes a batch one video at a time, and this call makes one video"
    if strategy.fresh_load and not fresh_load_possible:
        return "needs a fresh load of the model folder, and this pipeline was not loaded from one"
    return None


def _degraded_search(strategy, report, settings, rest, est_device, available, margin, extra, temporal, multiple,
                     decode):
    """The largest smaller size predicted to fit with the margin, else within it, else the smallest.

    The output changes anyway, so a size that leaves the safety margin free is worth a few
    more frames or pixels less.
    """
    names = [m.name for m in strategy.members]
    options: list[dict[str, Any]] = []
    if "fewer_frames" in names and "lower_resolution" in names:
        frames = list(_sizes.frame_options(settings, temporal))
        sides = list(_sizes.resolution_options(settings, multiple))
        options = [{"num_frames": f, "height": h, "width": w} for f in frames for h, w in sides]
    elif "fewer_frames" in names:
        options = [{"num_frames": f} for f in _sizes.frame_options(settings, temporal)]
    else:
        options = [{"height": h, "width": w} for h, w in _sizes.resolution_options(settings, multiple)]
    last: tuple[dict[str, Any], int | None, str, str | None] = ({}, None, "unknown", None)
    tight = None
    for changes in options:
        smaller = settings.replace(**changes)
        peak, problem = _estimate(report, smaller, rest, est_device, decode)
        peak = None if peak is None else peak + extra
        fit = _fit(peak, available, margin)
        last = (changes, peak, fit, problem)
        if fit == "fits" or peak is None:
            # The mildest change predicted to fit with the margin (without estimates: the
            # first step down).
            return last
        if fit == "tight" and tight is None:
            tight = last
    return tight or last


def _reason(strategy, stage, fit, peak, available, changes, extra) -> str:
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
