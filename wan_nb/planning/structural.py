"""The structural candidates of a plan: can each one run for this folder, what it offers, in which order.

Whether ``generic_pipeline``, ``assemble_components``, ``remote_code`` and ``component_donor``
can run comes from :mod:`wan_nb.repair`; the guidance ones (``upgrade_library``,
``redownload``, ``alternative_model``) never run and carry the command in their reason.
:func:`structural_options` is the one place that decides it: :func:`wan_nb.plan` turns the
options into candidates, and the seed's API (:mod:`wan_nb.fallback`) shows the same options
with their details.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from wan_nb.planning.records import Candidate
from wan_nb.strategies import get_strategy
from wan_nb.strategies.structural import GUIDANCE_PREFIX

__all__ = ["StructuralOption", "rank_structural", "structural_options"]

_BUILDERS = ("generic_pipeline", "assemble_components", "remote_code", "component_donor")


@dataclass(frozen=True)
class StructuralOption:
    """One structural strategy for one folder.

    ``applies``: it has something to offer here (a pipeline it can build, or guidance that
    fits this folder); ``runs``: wan_nb can run it now (guidance never runs; ``remote_code``
    only with consent). ``details`` holds what it found (the assembly, the donors, the files
    to fetch) as plain data.
    """

    name: str
    applies: bool
    reason: str
    runs: bool = True
    needs_consent: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def planned(self) -> bool:
        return self.applies and self.runs

    @property
    def plan_reason(self) -> str:
        """The reason as a plan shows it: guidance says it is guidance."""
        return self.reason if self.runs else GUIDANCE_PREFIX + self.reason


def structural_options(report: Any, *, allow_remote_code: bool = False, search_dirs: list[str] | None = None,
                       include_hf_cache: bool = True) -> dict[str, StructuralOption]:
    """Every structural strategy for this folder (``report``: a component report, a path or None)."""
    from wan_nb.model import CheckpointError, analyze_model_components

    unreadable = None
    if isinstance(report, (str, os.PathLike)):
        try:
            report = analyze_model_components(report)
        except CheckpointError as exc:
            report, unreadable = None, str(exc)  # names the folder and what is wrong with it
    out: dict[str, StructuralOption] = {}
    if report is None:
        why = unreadable or "no model folder is known to build the pipeline from"
        for name in _BUILDERS:
            out[name] = StructuralOption(name, False, why)
        out["upgrade_library"] = StructuralOption(
            "upgrade_library", True, "install a newer diffusers: `pip install -U diffusers`", runs=False)
        out["redownload"] = StructuralOption(
            "redownload", False, "no model folder is known, so nothing to fetch again", runs=False)
    else:
        out.update(_substitution(report, allow_remote_code))
        out["component_donor"] = _donor(report, search_dirs, include_hf_cache)
        out["redownload"] = _redownload(report)
    out["alternative_model"] = StructuralOption(
        "alternative_model", True, "run another model the installed diffusers supports "
        "(`wan_nb.alternatives.suggest_alternatives()` ranks the known ones)", runs=False)
    return out


def _substitution(report: Any, allow_remote_code: bool) -> dict[str, StructuralOption]:
    from wan_nb.model import CheckpointError
    from wan_nb.repair import (
        CONSENT_REASON,
        SubstitutionError,
        find_remote_code,
        plan_assembly,
        substitution_options,
    )

    try:
        options = substitution_options(report, allow_remote_code=allow_remote_code)
    except (CheckpointError, SubstitutionError, OSError, ValueError) as exc:
        # The folder cannot be read as a pipeline at all: every substitution says why.
        why = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return {n: StructuralOption(n, False, why) for n in ("generic_pipeline", "assemble_components", "remote_code")}
    out = {}
    for option in options:
        reason = option.reason
        if option.name == "remote_code" and not allow_remote_code and option.needs_consent and "consent" in reason:
            reason = CONSENT_REASON
        details: dict[str, Any] = {}
        if option.name == "assemble_components" and option.applicable:
            details = {"assembly": plan_assembly(report).to_dict()}
        elif option.name == "remote_code":
            remote = find_remote_code(report.path)
            details = {"remote_code": remote.to_dict()} if remote else {}
        elif option.name == "upgrade_library":
            from wan_nb.repair import upgrade_guidance

            details = {"upgrade": upgrade_guidance(report).to_dict()}
        out[option.name] = StructuralOption(option.name, option.applicable, reason, runs=option.runs,
                                            needs_consent=option.needs_consent, details=details)
    return out


def _donor(report: Any, search_dirs: list[str] | None, include_hf_cache: bool) -> StructuralOption:
    from wan_nb.repair import broken_components, find_donors

    broken = broken_components(report)
    if not broken:
        return StructuralOption("component_donor", False, "no component is missing or damaged")
    found: dict[str, Any] = {}
    rejected: dict[str, Any] = {}
    for info in broken:
        donors, why_not = find_donors(report, info.name, search_dirs, include_hf_cache=include_hf_cache)
        found[info.name] = donors[0].to_dict() if donors else None
        rejected[info.name] = [list(r) for r in why_not[:5]]
    missing = [info for info in broken if found[info.name] is None]
    if missing:
        info = missing[0]
        where = ", ".join([*(str(d) for d in search_dirs or []), "the model's sibling folders",
                           *(["the Hugging Face cache"] if include_hf_cache else [])])
        return StructuralOption(
            "component_donor", False,
            f"no compatible {info.class_name or info.name} for `{info.name}` ({info.status}) in {where}; "
            "pass models_dir= a folder holding one", details={"donors": found, "rejected": rejected})
    text = ", ".join(f"`{name}` from {d['model']}" for name, d in found.items())
    return StructuralOption("component_donor", True, f"donors found: {text}", details={"donors": found})


def _redownload(report: Any) -> StructuralOption:
    from wan_nb.repair import redownload_instructions

    fetch = redownload_instructions(report)
    if not fetch:
        return StructuralOption("redownload", False, "no component is missing or damaged", runs=False)
    reason = "; ".join(f"`{r.component}` is {r.status}, fetch {', '.join(r.files)} with `{r.command}`" for r in fetch)
    return StructuralOption("redownload", True, reason, runs=False,
                            details={"redownload": [r.to_dict() for r in fetch]})


def rank_structural(rows: list[tuple[tuple, Candidate]], category: str, available: int | None,
                    allow_remote_code: bool) -> list[tuple[tuple, Candidate]]:
    """Reorder the planned structural candidates by their record (history), in their own slots."""
    from wan_nb.history import rank_strategies

    slots = [i for i, (_, c) in enumerate(rows) if c.planned and get_strategy(c.strategy).structural]
    if len(slots) < 2:
        return rows
    preferred = ["generic_pipeline", "assemble_components", "remote_code", "component_donor"]
    if allow_remote_code:
        preferred = ["generic_pipeline", "remote_code", "assemble_components", "component_donor"]
    by_name = {rows[i][1].strategy: rows[i] for i in slots}
    names = sorted(by_name, key=lambda n: preferred.index(n) if n in preferred else len(preferred))
    names = [n for n, _ in rank_strategies(names, category, available=available)]
    rows = list(rows)
    for slot, name in zip(slots, names, strict=True):
        rows[slot] = by_name[name]
    return rows
