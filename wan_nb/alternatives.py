"""Alternative models: a registry of video models diffusers runs, and what is already on disk.

The registry (``wan_nb/data/models.json``) holds, per model, its repo id, pipeline class,
tasks, features, the diffusers release that introduced its pipeline, parameters per
component and peak memory figures. Each figure says where it comes from:

* ``"estimated"`` — wan_nb's estimator over the real published configs (the Wan family,
  via the synthetic checkpoints; ``python -m wan_nb.alternatives --refresh`` recomputes
  them), at the registry's ``estimate_settings`` and a named strategy;
* ``"published"`` — a figure quoted from its authors, with its conditions and reference;
* nothing — unknown, and shown as such.

:func:`suggest_alternatives` ranks models for a target (``"wan_t2v"``, a model id, a repo
id, a pipeline class or a local folder) and an amount of memory: models predicted to fit
first among those that do the task, then by feature parity. :func:`get_local_alternatives` lists the
models already on disk (a models folder and the Hugging Face cache).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from wan_nb._records import json_native
from wan_nb.libraries import installed_version, version_at_least
from wan_nb.model import CheckpointError, ComponentReport, ModelFolderError, analyze_model_components
from wan_nb.model.registry import (
    ModelEntry,
    PeakFigure,
    camel_head,
    estimate_settings,
    identify_model,
    inferred_task,
    load_registry,
)
from wan_nb.units import format_bytes, parse_bytes

# Cheaper strategies first: a model that fits without help beats one that needs offloading.
_STRATEGY_COST = {
    None: 0,
    "vae_tiling": 1,
    "model_cpu_offload": 2,
    "model_cpu_offload+vae_tiling": 3,
    "group_offload": 4,
    "group_offload+vae_tiling": 5,
    "sequential_cpu_offload": 6,
    "sequential_cpu_offload+vae_tiling": 7,
}
_TASK_NAMES = {"t2v", "i2v", "v2v", "vace", "ti2v"}


@dataclass(frozen=True)
class AlternativeModel:
    """A model suggested in place of one that cannot run, with its predicted fit."""

    name: str
    repo_id: str | None
    pipeline_class: str | None
    architecture: str | None
    tasks: tuple[str, ...]
    min_diffusers: str | None
    installed_ok: bool  # the installed diffusers has its pipeline
    parameters: int | None
    predicted_peak_bytes: int | None
    peak_source: str  # estimated | published | unknown
    peak_strategy: str | None  # the strategy the figure assumes
    fits: bool | None  # None: unknown
    fit_probability: float | None
    task_match: bool
    feature_parity: float  # share of the target's features it has
    local_path: str | None = None
    id: str | None = None
    reasons: tuple[str, ...] = ()

    @property
    def predicted_peak(self) -> str:
        return format_bytes(self.predicted_peak_bytes) if self.predicted_peak_bytes else "unknown"

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlternativeModel:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for key in ("tasks", "reasons"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)


# --------------------------------------------------------------------------- ranking


def _parse_target(target: Any) -> tuple[str | None, set[str], set[str], str | None]:
    """``(family, tasks, features, label)`` of what the user wanted to run."""
    registry = load_registry()
    if isinstance(target, ComponentReport) or (isinstance(target, (str, os.PathLike)) and Path(str(target)).is_dir()):
        report = target if isinstance(target, ComponentReport) else analyze_model_components(target)
        entry = identify_model(report)
        if entry is not None:
            return entry.family, set(entry.tasks), set(entry.features), entry.id

        family = camel_head(report.pipeline_class or "").lower() or None
        return family, {inferred_task(report)}, {inferred_task(report)}, report.pipeline_class
    text = str(target).strip()
    for entry in registry:
        if text in (entry.id, entry.repo_id, entry.name):
            return entry.family, set(entry.tasks), set(entry.features), entry.id
    by_class = [e for e in registry if e.pipeline_class == text]
    if by_class:
        tasks = set().union(*(e.tasks for e in by_class))
        return by_class[0].family, tasks, set(tasks), text
    by_arch = [e for e in registry if e.architecture == text]
    if by_arch:
        tasks = set().union(*(e.tasks for e in by_arch if e.architecture == text))
        features = set.intersection(*(set(e.features) for e in by_arch))
        return by_arch[0].family, tasks, features, text
    # "<family>_<task>" (wan_t2v, ltx_i2v) or a bare task ("t2v").
    parts = text.lower().replace("-", "_").split("_")
    tasks = {p for p in parts if p in _TASK_NAMES}
    family = next((p for p in parts if p not in _TASK_NAMES), None)
    if "ti2v" in tasks:
        tasks = (tasks - {"ti2v"}) | {"t2v", "i2v"}
    if not tasks and not family:
        raise ValueError(
            f"`target={target!r}` is not a model wan_nb knows: give an architecture such as 'wan_t2v', a model id "
            f"({', '.join(e.id for e in registry[:3])}, ...), a repo id, a pipeline class or a model folder."
        )
    return family, tasks or {"t2v"}, tasks or {"t2v"}, text


def _peak_choice(entry: ModelEntry, available: int | None, history) -> tuple[PeakFigure | None, float | None]:
    """The cheapest figure that fits (estimates before published ones), and its fit probability."""
    from wan_nb.history import fit_probability

    figures = [p for p in entry.peak_memory if p.bytes]
    if not figures:
        return None, None
    figures.sort(key=lambda p: (_STRATEGY_COST.get(p.strategy, 9), p.source != "estimated", p.bytes))
    if available is None:
        return figures[0], None
    scored = [(p, fit_probability(p.bytes, available, history)) for p in figures]
    fitting = [(p, prob) for p, prob in scored if prob >= 0.5]
    if fitting:
        return fitting[0]
    return min(scored, key=lambda item: item[0].bytes)


def _alternative(
    entry: ModelEntry, family, tasks, features, available, history, local_path=None
) -> AlternativeModel:
    figure, probability = _peak_choice(entry, available, history)
    installed = installed_version("diffusers")
    installed_ok = bool(entry.min_diffusers is None or version_at_least(installed, entry.min_diffusers))
    task_match = bool(tasks & set(entry.tasks))
    parity = len(features & set(entry.features)) / len(features) if features else 0.0
    reasons = []
    if figure is not None:
        how = f"with {figure.strategy}" if figure.strategy else "without any memory strategy"
        reasons.append(f"peak {format_bytes(figure.bytes)} {how} ({figure.source}"
                       + (f": {figure.reference})" if figure.reference else ")"))
    else:
        reasons.append("peak memory unknown: no estimate and no published figure")
    if not installed_ok:
        reasons.append(f"needs diffusers >= {entry.min_diffusers} ({installed} is installed)")
    if entry.family == family:
        reasons.append("same family: prompts and settings carry over")
    fits = None if figure is None or available is None else probability >= 0.5
    return AlternativeModel(
        name=entry.name,
        repo_id=entry.repo_id,
        pipeline_class=entry.pipeline_class,
        architecture=entry.architecture,
        tasks=entry.tasks,
        min_diffusers=entry.min_diffusers,
        installed_ok=installed_ok,
        parameters=entry.total_parameters,
        predicted_peak_bytes=figure.bytes if figure else None,
        peak_source=figure.source if figure else "unknown",
        peak_strategy=figure.strategy if figure else None,
        fits=fits,
        fit_probability=probability,
        task_match=task_match,
        feature_parity=round(parity, 3),
        local_path=local_path,
        id=entry.id,
        reasons=tuple(reasons),
    )


def _rank_key(alt: AlternativeModel, family: str | None):
    fit_rank = {True: 0, None: 1, False: 2}[alt.fits]
    # A model that cannot do the task is no alternative however well it fits: task first.
    return (
        not alt.task_match,
        fit_rank,
        not alt.installed_ok,
        -alt.feature_parity,
        alt.architecture is not None and not (alt.architecture or "").startswith(family or "\0"),
        -(alt.fit_probability or 0.0),
        alt.predicted_peak_bytes is None,  # a known figure before an unknown one
        _STRATEGY_COST.get(alt.peak_strategy, 9),
        alt.predicted_peak_bytes or 0,
        alt.name,
    )


def suggest_alternatives(
    target: Any,
    available_memory: int | str | None = None,
    *,
    models_dir: str | os.PathLike[str] | None = None,
    include_hf_cache: bool = False,
    exclude_target: bool = True,
    history=None,
    limit: int | None = None,
) -> list[AlternativeModel]:
    """Models to try instead of ``target``, best first.

    Args:
        target: ``"wan_t2v"`` (family_task), a registry id, a repo id, a pipeline class, or
            a model folder.
        available_memory: bytes or ``"16GB"``; models predicted to fit come first.
        models_dir: also consider the models found there (with their local path).
        history: attempt records for the fit probabilities (default: the local history).

    Ranking: task match, then predicted fit (fits, unknown, does not fit), then whether
    the installed diffusers has the pipeline, then feature parity, then same family,
    then the fit probability, a known figure, and the cheapest strategy.
    """
    available = parse_bytes(available_memory) if available_memory is not None else None
    family, tasks, features, label = _parse_target(target)
    if history is None:
        from wan_nb.history import load_history

        history = load_history()
    registry = load_registry()
    local = {}
    if models_dir is not None or include_hf_cache:
        for alt in get_local_alternatives(models_dir, include_hf_cache=include_hf_cache):
            if alt.id:
                local[alt.id] = alt.local_path
    result = []
    for entry in registry:
        if exclude_target and label in (entry.id, entry.repo_id):
            continue
        result.append(_alternative(entry, family, tasks, features, available, history, local.get(entry.id)))
    # A model already on disk beats an equal one that must be downloaded first.
    result.sort(key=lambda alt: (_rank_key(alt, family), alt.local_path is None))
    return result[:limit] if limit else result


# --------------------------------------------------------------------------- local models


def get_local_alternatives(
    models_dir: str | os.PathLike[str] | None = None, *, include_hf_cache: bool = True, settings=None
) -> list[AlternativeModel]:
    """The diffusers video models already on disk, as alternatives with their local path.

    A model the registry knows (by its configs) takes its figures from there; any other
    model gets its parameters from its headers and, when the estimator can, a fresh
    estimate at the registry's settings.
    """
    from wan_nb.model.discovery import local_model_folders

    dirs = [(models_dir, "models_dir")] if models_dir is not None else []
    if models_dir is not None and not Path(models_dir).expanduser().is_dir():
        raise NotADirectoryError(f"`models_dir` {models_dir} is not a folder; give the folder that holds your models.")
    found = []
    for folder, _source, repo_id in local_model_folders(dirs, include_hf_cache=include_hf_cache):
        try:
            report = analyze_model_components(folder)
        except ModelFolderError:
            continue
        entry = identify_model(report)
        if entry is not None:
            alt = _alternative(entry, entry.family, set(entry.tasks), set(entry.features), None, [], str(folder))
            found.append(alt)
            continue

        task = inferred_task(report)
        peak, source, strategy = _local_estimate(report, settings)
        found.append(AlternativeModel(
            name=repo_id or folder.name,
            repo_id=repo_id,
            pipeline_class=report.pipeline_class,
            architecture=None,
            tasks=(task,),
            min_diffusers=None,
            installed_ok=report.pipeline_importable,
            parameters=report.total_parameters or None,
            predicted_peak_bytes=peak,
            peak_source=source,
            peak_strategy=strategy,
            fits=None,
            fit_probability=None,
            task_match=True,
            feature_parity=0.0,
            local_path=str(folder),
            reasons=("not in wan_nb's registry: figures from its own files",) + (() if report.ok else (
                f"damaged: {report.all_problems[0]}",)),
        ))
    return found


def _local_estimate(report: ComponentReport, settings) -> tuple[int | None, str, str | None]:
    try:
        from wan_nb.memory.estimate import estimate_memory
        from wan_nb.settings import GenerationSettings

        chosen = settings or GenerationSettings.from_dict(estimate_settings())
        estimate = estimate_memory(report, chosen)
        return int(estimate.peak_bytes), "estimated", None
    except (CheckpointError, ValueError, KeyError, TypeError, OSError):  # a model the estimator cannot size: its peak shows as unknown
        return None, "unknown", None


def alternatives_frame(alternatives: list[AlternativeModel]):
    """A pandas DataFrame of alternatives, one row each, in the given order."""
    import pandas as pd

    return pd.DataFrame([
        {
            "model": a.name,
            "repo_id": a.repo_id,
            "pipeline": a.pipeline_class,
            "tasks": ", ".join(a.tasks),
            "predicted_peak": a.predicted_peak,
            "peak_source": a.peak_source,
            "strategy": a.peak_strategy or "",
            "fits": a.fits,
            "p_fit": a.fit_probability,
            "task_match": a.task_match,
            "parity": a.feature_parity,
            "local_path": a.local_path or "",
        }
        for a in alternatives
    ])


if __name__ == "__main__":  # pragma: no cover - the maintainer's refresh entry point
    from tools.refresh_registry import main

    raise SystemExit(main())
