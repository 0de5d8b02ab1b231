"""Structural repairs: build a pipeline the folder's own class cannot, or say what to fetch or install.

- :mod:`~wan_nb.repair.assemble`: ``assemble_components``, ``generic_pipeline``;
- :mod:`~wan_nb.repair.upgrade`: ``upgrade_guidance`` (advice only);
- :mod:`~wan_nb.repair.remote_code`: the folder's own code, only with consent;
- :mod:`~wan_nb.repair.options`: which of those can run for a folder;
- :mod:`~wan_nb.repair.donors`: isolation and donor components;
- :mod:`~wan_nb.repair.redownload`: the files to fetch again (wan_nb never downloads).
"""

from __future__ import annotations

from wan_nb.repair._common import CONSENT_REASON, ConsentRequired, SubstitutionError, broken_components
from wan_nb.repair.assemble import ComponentSource, assemble_components, generic_pipeline, plan_assembly
from wan_nb.repair.donors import UsableComponent, find_donor, find_donors, isolate_components
from wan_nb.repair.options import SubstitutionOption, substitution_options
from wan_nb.repair.redownload import redownload_instructions
from wan_nb.repair.remote_code import find_remote_code, load_with_remote_code
from wan_nb.repair.upgrade import UpgradeGuidance, upgrade_guidance

__all__ = [
    "CONSENT_REASON", "ComponentSource", "broken_components", "ConsentRequired", "SubstitutionError", "SubstitutionOption",
    "UpgradeGuidance", "UsableComponent", "assemble_components", "find_donor", "find_donors", "find_remote_code",
    "generic_pipeline", "isolate_components", "load_with_remote_code", "plan_assembly", "redownload_instructions",
    "substitution_options", "upgrade_guidance",
]  # fmt: skip
