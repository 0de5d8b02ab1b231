"""What the repairs share: their errors, the consent rule, class lookups, which components are broken."""

from __future__ import annotations

import importlib
import os

from wan_nb.model import ComponentInfo, ComponentReport, analyze_model_components

CONSENT_REASON = "needs your consent: runs code from the model folder"
# model_index.json keys that are metadata, not constructor arguments.
INDEX_META = {"_class_name", "_diffusers_version", "_name_or_path"}


class SubstitutionError(Exception):
    """A substitution strategy cannot run for this folder; the message says why and what to do."""


class ConsentRequired(SubstitutionError):
    """Running the folder's own code needs ``allow_remote_code=True``."""


def is_model_class_name(class_name: str, library: str | None = None) -> bool:
    """Whether the class holds weights, by its place in its library (``model.kinds``), not its name."""
    from wan_nb.model.kinds import MODEL, component_kind

    return component_kind(library, class_name) == MODEL


def as_report(path_or_report: str | os.PathLike[str] | ComponentReport) -> ComponentReport:
    """A component report, analysing the folder when given a path."""
    if isinstance(path_or_report, ComponentReport):
        return path_or_report
    return analyze_model_components(path_or_report)


def import_class(library: str | None, class_name: str | None):
    """The class, or None when the installed library lacks it or cannot be imported."""
    if not library or not class_name:
        return None
    try:
        module = importlib.import_module(library)
        return getattr(module, class_name, None)
    except Exception:  # noqa: BLE001 - an import can fail in any way; the caller reports the class as not usable here
        return None


def torch_dtype_of(torch_dtype):
    if torch_dtype is None or not isinstance(torch_dtype, str):
        return torch_dtype
    import torch

    value = getattr(torch, torch_dtype, None)
    if not isinstance(value, torch.dtype):
        raise SubstitutionError(f"`torch_dtype={torch_dtype!r}` is not a torch dtype; use e.g. 'bfloat16'.")
    return value


def broken_components(report: ComponentReport) -> list[ComponentInfo]:
    """Components a pipeline cannot be built without: missing or corrupt."""
    return [c for c in report.components if c.status in ("missing", "corrupt")]
