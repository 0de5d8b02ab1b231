"""The structural candidates of a plan: can each one run for this folder, and in which order.

Whether ``generic_pipeline``, ``assemble_components``, ``remote_code`` and ``component_donor``
can run comes from :mod:`wan_nb.repair`; the guidance ones (``upgrade_library``,
``redownload``, ``alternative_model``) never run and carry the command in their reason.
"""

from __future__ import annotations

import os
from typing import Any

from wan_nb.planning.records import Candidate
from wan_nb.strategies import get_strategy
from wan_nb.strategies.structural import GUIDANCE_PREFIX, donor_search_dirs


def structural_options(report: Any, allow_remote_code: bool, models_dir: Any) -> dict[str, tuple[bool, str]]:
    """Whether each structural strategy can run for this folder, and why (not)."""
    if isinstance(report, (str, os.PathLike)):
        try:
            from wan_nb.model.components import analyze_model_components

            report = analyze_model_components(report)
        except Exception:  # noqa: BLE001 - an unreadable folder: nothing to build from
            report = None
    out: dict[str, tuple[bool, str]] = {}
    if report is None:
        for name in ("generic_pipeline", "assemble_components", "remote_code", "component_donor"):
            out[name] = (False, "no model folder is known to build the pipeline from")
    else:
        from wan_nb.repair.assemble import CONSENT_REASON
        from wan_nb.repair.options import substitution_options

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
    from wan_nb.repair.donors import broken_components, find_donors

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
    from wan_nb.repair.redownload import redownload_instructions

    try:
        fetch = redownload_instructions(report)
    except Exception as exc:  # noqa: BLE001
        return False, prefix + f"cannot tell what to fetch ({type(exc).__name__}: {exc})"
    if not fetch:
        return False, prefix + "no component is missing or damaged"
    return False, prefix + "; ".join(
        f"`{r.component}` is {r.status}, fetch {', '.join(r.files)} with `{r.command}`" for r in fetch)


def rank_structural(rows: list[tuple[tuple, Candidate]], category: str, available: int | None,
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
