"""The models wan_nb knows (``data/models.json``) and what a folder's configs say about its model.

The registry holds published facts (repo ids, pipeline classes, tasks, the diffusers
release that added each class, published peak figures with their source) and the
estimates ``tools/refresh_registry.py`` computed. A folder is identified by its transformer's
shape-defining config (the entry's fingerprint), never by a class name alone.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from wan_nb._records import json_native
from wan_nb.libraries import version_tuple
from wan_nb.model.report import ComponentReport

_TASK_WORDS = (
    ("ImageToVideo", "i2v"),
    ("I2V", "i2v"),
    ("VideoToVideo", "v2v"),
    ("V2V", "v2v"),
    ("VACE", "vace"),
    ("Animate", "animate"),
)


@dataclass(frozen=True)
class PeakFigure:
    """One peak-memory figure of a registry model and where it comes from."""

    bytes: int | None
    source: str  # estimated | published
    strategy: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    as_published: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeakFigure:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class ModelEntry:
    """One model of the registry."""

    id: str
    name: str
    architecture: str
    family: str
    repo_id: str
    pipeline_class: str
    tasks: tuple[str, ...]
    features: tuple[str, ...]
    min_diffusers: str | None
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    peak_memory: tuple[PeakFigure, ...] = ()
    fingerprint: dict[str, dict[str, Any]] = field(default_factory=dict)
    synthetic_preset: str | None = None

    @property
    def total_parameters(self) -> int | None:
        counts = [p.get("count") for p in self.parameters.values()]
        return sum(counts) if counts and all(isinstance(c, int) for c in counts) else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEntry:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["tasks"] = tuple(data.get("tasks") or ())
        data["features"] = tuple(data.get("features") or ())
        data["peak_memory"] = tuple(PeakFigure.from_dict(p) for p in data.get("peak_memory") or ())
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))




def registry_path() -> Path:
    return Path(str(resources.files("wan_nb") / "data" / "models.json"))


@cache
def _registry_data(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def load_registry(path: str | os.PathLike[str] | None = None) -> list[ModelEntry]:
    """Every model of ``models.json`` (or of the file given)."""
    data = _registry_data(str(path or registry_path()))
    return [ModelEntry.from_dict(m) for m in data["models"]]


def estimate_settings() -> dict[str, Any]:
    """The generation settings the registry's estimated figures assume."""
    return dict(_registry_data(str(registry_path())).get("estimate_settings") or {})


def min_diffusers_for(pipeline_class: str) -> str | None:
    """The diffusers release that introduced ``pipeline_class``, when the registry knows it."""
    versions = [m.min_diffusers for m in load_registry() if m.pipeline_class == pipeline_class and m.min_diffusers]
    # Several checkpoints share a class (CogVideoX 2B / 5B): the class came with the earliest.

    return min(versions, key=version_tuple) if versions else None


def _fingerprint_of(report: ComponentReport, keys: dict[str, dict[str, Any]]) -> bool:
    for component, expected in keys.items():
        if component == "_pipeline":
            # Wan 2.1 14B and one Wan 2.2 A14B expert share a transformer config: the
            # pipeline's boundary_ratio (absent in 2.1) tells them apart.
            if any(report.pipeline_config.get(k) != v for k, v in expected.items()):
                return False
            continue
        info = report.component(component)
        if info is None or not info.config:
            return False
        for key, value in expected.items():
            have = info.config.get(key)
            if (list(have) if isinstance(have, tuple) else have) != value:
                return False
    return True


def identify_model(report: ComponentReport) -> ModelEntry | None:
    """The registry model a folder holds, when its pipeline class and configs say so.

    Only entries with a fingerprint (the transformer's shape-defining config) can be
    identified: a class name alone would call every tiny test model "Wan 2.1 1.3B".
    """
    for entry in load_registry():
        if entry.fingerprint and entry.pipeline_class == report.pipeline_class and _fingerprint_of(
            report, entry.fingerprint
        ):
            return entry
    return None


# -- what a folder's names and configs say ------------------------------------------------
def camel_head(name: str) -> str:
    """``"Wan3Pipeline"`` -> ``"Wan"``; ``"LTXVideoTransformer3DModel"`` -> ``"LTX"``."""
    match = re.match(r"[A-Z]+(?=[A-Z][a-z])|[A-Z][a-z]+|[A-Z]+", name or "")
    return match.group() if match else ""


def task_of(name: str | None) -> str | None:
    for word, task in _TASK_WORDS:
        if word in (name or ""):
            return task
    return None


def inferred_task(report: ComponentReport) -> str:
    named = task_of(report.pipeline_class)
    if named:
        return named
    present = {c.name for c in report.components if c.status != "optional"}
    if "image_encoder" in present:
        return "i2v"
    transformer = report.component("transformer")
    config = transformer.config if transformer else {}
    expand = bool(report.pipeline_config.get("expand_timesteps"))
    if not expand and config.get("in_channels") and config.get("out_channels"):
        if config["in_channels"] > config["out_channels"]:
            return "i2v"  # image latents and a mask are concatenated to the noise
    return "t2v"
