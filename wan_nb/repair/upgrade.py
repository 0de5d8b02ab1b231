"""``upgrade_library``: the diffusers release a folder's pipeline needs, and the pip command (advice only)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from wan_nb._records import json_native
from wan_nb.libraries import WAN22_INTRODUCED, WAN_CLASS_INTRODUCED, version_at_least, version_tuple
from wan_nb.model import ComponentReport
from wan_nb.model.registry import min_diffusers_for
from wan_nb.repair._common import as_report


@dataclass(frozen=True)
class UpgradeGuidance:
    """What to install for the folder's pipeline class (advice only: nothing is installed)."""

    library: str
    class_name: str | None
    installed: str | None
    required: str | None  # the release that introduced it; None when wan_nb does not know one
    command: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UpgradeGuidance:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _known_introduced(class_name: str | None) -> str | None:
    if not class_name:
        return None
    if class_name in WAN_CLASS_INTRODUCED:
        return WAN_CLASS_INTRODUCED[class_name]
    return min_diffusers_for(class_name)


def upgrade_guidance(path_or_report: str | os.PathLike[str] | ComponentReport) -> UpgradeGuidance:
    """The exact diffusers version and pip command the folder's pipeline needs."""
    report = as_report(path_or_report)
    installed = report.diffusers_version
    name = report.pipeline_class
    required = _known_introduced(name)
    uses_wan22 = "boundary_ratio" in report.pipeline_config or bool(report.pipeline_config.get("expand_timesteps"))
    uses_wan22 = uses_wan22 or any(c.name == "transformer_2" and c.status != "optional" for c in report.components)
    label = name or "the pipeline class"
    if uses_wan22 and (required is None or version_tuple(required) < version_tuple(WAN22_INTRODUCED)) and (
        required is not None or report.pipeline_importable
    ):
        required = WAN22_INTRODUCED
    for info in report.components:  # a component class newer than the pipeline's
        needed = _known_introduced(info.class_name)
        if needed and (required is None or version_tuple(needed) > version_tuple(required)):
            if not info.importable:
                required = needed
    saved = report.saved_with
    if required:
        command = f'pip install -U "diffusers>={required}"'
        if version_at_least(installed, required):
            message = (
                f"diffusers {installed} is already >= {required}, which introduced {label}; an upgrade "
                "is not what this folder needs."
            )
        else:
            message = f"{label} needs diffusers >= {required} (it was introduced there); {installed} is installed."
    elif saved and version_tuple(saved) > version_tuple(installed):
        dev = "dev" in saved
        command = ('pip install -U "git+https://github.com/huggingface/diffusers"' if dev
                   else f'pip install -U "diffusers>={saved}"')
        message = (
            f"{label} is not in diffusers {installed}, and wan_nb knows no release that introduced it; the folder "
            f"was saved with diffusers {saved}, so that version (or newer) should have it."
        )
    else:
        command = 'pip install -U diffusers'
        message = (
            f"{label} is not in diffusers {installed} and wan_nb knows no release that has it; it may come from a "
            "newer release, a fork or custom code. Check the model card before upgrading."
        )
    message += " wan_nb does not install anything itself: run the command, then restart the kernel."
    return UpgradeGuidance("diffusers", name, installed, required, command, message)
