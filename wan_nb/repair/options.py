"""Which pipeline-substitution strategies can run for a folder, and why (not)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from wan_nb._records import json_native
from wan_nb.libraries import version_at_least
from wan_nb.model import ComponentReport
from wan_nb.repair._common import CONSENT_REASON, SubstitutionError, as_report
from wan_nb.repair.assemble import plan_assembly
from wan_nb.repair.remote_code import find_remote_code
from wan_nb.repair.upgrade import upgrade_guidance


@dataclass(frozen=True)
class SubstitutionOption:
    """One structural strategy for a folder: can it run, and if not, why not."""

    name: str  # generic_pipeline | assemble_components | upgrade_library | remote_code
    applicable: bool
    reason: str  # why it may help, or why it is skipped
    needs_consent: bool = False
    runs: bool = True  # False: guidance only (upgrade_library)

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubstitutionOption:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def substitution_options(
    path_or_report: str | os.PathLike[str] | ComponentReport, *, allow_remote_code: bool = False
) -> list[SubstitutionOption]:
    """The four substitution strategies for this folder, in the order worth trying."""
    report = as_report(path_or_report)
    remote = find_remote_code(report.path)
    guidance = upgrade_guidance(report)
    too_old = bool(guidance.required and not version_at_least(report.diffusers_version, guidance.required))
    options: list[SubstitutionOption] = []

    if report.pipeline_importable and too_old:
        # The class loads, but lacks what the checkpoint needs (Wan 2.2 on diffusers 0.34).
        options.append(SubstitutionOption(
            "generic_pipeline", False, f"{report.pipeline_class} loads, but diffusers {report.diffusers_version} "
            f"predates {guidance.required}, which this checkpoint needs"))
    elif report.pipeline_importable:
        options.append(SubstitutionOption(
            "generic_pipeline", True, f"DiffusionPipeline loads the class the folder names ({report.pipeline_class})"))
    else:
        options.append(SubstitutionOption(
            "generic_pipeline", False, f"{report.pipeline_class or 'the pipeline class'} is not installed, so "
            "DiffusionPipeline cannot load it either"))
    try:
        options.append(SubstitutionOption("assemble_components", True, plan_assembly(report).describe()))
    except SubstitutionError as exc:
        options.append(SubstitutionOption("assemble_components", False, str(exc)))

    if remote is not None and remote.local:
        reason = f"runs {', '.join(remote.files)} from the folder (consent given)" if allow_remote_code else CONSENT_REASON
        options.append(SubstitutionOption("remote_code", allow_remote_code, reason, needs_consent=True))
    elif remote is not None:
        options.append(SubstitutionOption(
            "remote_code", False, f"the code ({', '.join(remote.missing)}) is not in the folder; wan_nb never "
            "downloads code", needs_consent=True))
    else:
        options.append(SubstitutionOption("remote_code", False, "the folder holds no code of its own",
                                          needs_consent=True))

    if remote is not None and remote.class_name:
        options.append(SubstitutionOption(
            "upgrade_library", False, f"{remote.class_name} is defined by the folder's own code "
            f"({remote.pipeline_file}), not by a diffusers release", runs=False))
    else:
        options.append(SubstitutionOption("upgrade_library", not report.pipeline_importable or too_old,
                                          f"{guidance.message} `{guidance.command}`", runs=False))
    # With consent, the author's own code is the faithful way to run the folder; without
    # it, assembly from installed classes is the safe one and remote_code is listed, skipped.
    order = ["generic_pipeline", "assemble_components", "remote_code", "upgrade_library"]
    if allow_remote_code:
        order = ["generic_pipeline", "remote_code", "assemble_components", "upgrade_library"]
    return sorted(options, key=lambda o: order.index(o.name))
