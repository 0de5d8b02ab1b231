"""``redownload``: the exact files of a damaged component to fetch again, and the command (wan_nb never downloads)."""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from wan_nb._records import json_native
from wan_nb.model import ComponentInfo, ComponentReport, analyze_model_components
from wan_nb.model.checkpoint import CheckpointError, find_weight_files, read_json, read_safetensors_header
from wan_nb.model.discovery import repo_id_from_cache_path
from wan_nb.model.kinds import CONFIG_FILES, MODEL, TOKENIZER, component_kind
from wan_nb.model.registry import identify_model
from wan_nb.repair._common import broken_components


@dataclass(frozen=True)
class Redownload:
    """What to fetch again for one component, and the command that does it."""

    component: str
    status: str  # missing | corrupt
    files: tuple[str, ...]  # relative to the model folder
    files_known: bool  # False: the folder is gone, these are the usual names
    repo_id: str | None
    command: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Redownload:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["files"] = tuple(data.get("files") or ())
        return cls(**data)


def _expected_files(info: ComponentInfo) -> tuple[str, ...]:
    """The file names a component of this class usually has (its folder being gone)."""
    name = info.name
    kind = info.kind or component_kind(info.library, info.class_name, info.files)
    if kind == TOKENIZER:
        return (f"{name}/tokenizer_config.json", f"{name}/tokenizer.json")
    if kind in CONFIG_FILES and kind != MODEL:
        return (f"{name}/{CONFIG_FILES[kind][0]}",)
    weights = "diffusion_pytorch_model.safetensors" if info.library == "diffusers" else "model.safetensors"
    return (f"{name}/config.json", f"{name}/{weights}")


def _bad_files(root: Path, info: ComponentInfo) -> tuple[str, ...]:
    """The files of a present component that are damaged or missing."""
    folder = root / info.name
    bad: list[str] = []

    def rel(file: str | os.PathLike[str]) -> str:
        try:
            return str(Path(file).resolve().relative_to(root.resolve()))
        except ValueError:
            return str(file)

    kind = info.kind or component_kind(info.library, info.class_name, info.files)
    config_name = CONFIG_FILES.get(kind or "", ("config.json",))[0]
    if info.has_weights or kind in CONFIG_FILES:
        config_path = folder / config_name
        try:
            read_json(config_path)
        except CheckpointError:
            bad.append(f"{info.name}/{config_name}")
    if info.has_weights:
        try:
            weights, _ = find_weight_files(folder)
        except CheckpointError as exc:
            if exc.path:
                bad.append(rel(exc.path))
            weights = []
        for weight in weights:
            if weight.suffix != ".safetensors":
                continue
            try:
                read_safetensors_header(weight)
            except CheckpointError:
                bad.append(rel(weight))
        if not weights and not bad:
            weight_name = "diffusion_pytorch_model.safetensors" if info.library == "diffusers" else "model.safetensors"
            bad.append(f"{info.name}/{weight_name}")
    if not bad:  # damage the headers cannot see (a tokenizer, a deep-check finding): all files
        bad = list(info.files)
    return tuple(dict.fromkeys(bad))


def guess_repo_id(report: ComponentReport) -> str | None:
    """The Hub repository the folder came from, when its path or contents say so."""
    from_path = repo_id_from_cache_path(report.path)
    if from_path:
        return from_path
    try:

        entry = identify_model(report)
        return entry.repo_id if entry else None
    except (CheckpointError, OSError, ValueError, KeyError):  # identification is a convenience: the command then says <repo-id>
        return None


def redownload_instructions(
    path: str | os.PathLike[str] | ComponentReport, *, repo_id: str | None = None
) -> list[Redownload]:
    """For each missing or damaged component: the files to fetch again and the command.

    ``repo_id`` (e.g. ``"Wan-AI/Wan2.1-T2V-1.3B-Diffusers"``) fills the command; without
    it the Hugging Face cache path or the registry of known models may tell, and
    otherwise the command holds ``<repo-id>`` for you to replace.
    """
    report = path if isinstance(path, ComponentReport) else analyze_model_components(path)
    root = Path(report.path)
    repo = repo_id or guess_repo_id(report)
    in_cache = repo_id_from_cache_path(root) is not None
    result = []
    for info in broken_components(report):
        if info.status == "missing" and not (root / info.name).is_dir():
            files, known = _expected_files(info), False
            selection = f"--include {shlex.quote(info.name + '/*')}"
        else:
            files, known = _bad_files(root, info), True
            selection = " ".join(shlex.quote(f) for f in files)
        parts = ["hf", "download", shlex.quote(repo) if repo else "<repo-id>", selection]
        if in_cache:
            parts.append("--force-download")  # the cache's copy is the damaged one
        else:
            # --force-download: hf would otherwise trust its metadata for a truncated file.
            parts += ["--local-dir", shlex.quote(str(root)), "--force-download"]
        reason = info.problems[0] if info.problems else f"{info.name} is {info.status}"
        if not repo:
            reason += " (replace <repo-id> with the repository the model came from)"
        result.append(Redownload(info.name, info.status, files, known, repo, " ".join(parts), reason))
    return result
