"""Model folders on this machine: folders the user names, the model's siblings, the Hugging Face cache.

Read without importing huggingface_hub: the cache layout (``models--org--name/snapshots/<rev>``)
and its environment variables are enough, and nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def hf_cache_dirs() -> list[Path]:
    """The Hugging Face hub caches to search: ``$HF_HUB_CACHE``, ``$HF_HOME/hub``, the default."""
    candidates = []
    if os.environ.get("HF_HUB_CACHE"):
        candidates.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        candidates.append(Path(os.environ["HF_HOME"]) / "hub")
    if not candidates:
        candidates.append(Path.home() / ".cache" / "huggingface" / "hub")
    seen, result = set(), []
    for c in candidates:
        c = c.expanduser()
        if c.is_dir() and c.resolve() not in seen:
            seen.add(c.resolve())
            result.append(c)
    return result


def repo_id_from_cache_path(path: str | os.PathLike[str]) -> str | None:
    """``.../models--Wan-AI--Wan2.1-T2V-1.3B-Diffusers/snapshots/<sha>`` -> the repo id."""
    for part in Path(path).parts:
        if part.startswith("models--"):
            return part[len("models--"):].replace("--", "/")
    return None


def local_model_folders(
    search_dirs: list[Any] | None = None, *, include_hf_cache: bool = True
) -> list[tuple[Path, str, str | None]]:
    """Diffusers model folders found locally: ``(folder, source, repo_id)``.

    ``search_dirs`` holds paths (source ``"user"``) or ``(path, source)`` pairs. A search dir is a model itself, or holds models one or two levels down (``name/`` or
    ``org/name/``). The Hugging Face cache is read as ``models--*/snapshots/*/`` without
    importing huggingface_hub.
    """
    found: list[tuple[Path, str, str | None]] = []
    seen: set[Path] = set()

    def add(folder: Path, source: str, repo_id: str | None) -> None:
        try:
            key = folder.resolve()
        except OSError:
            return
        if key not in seen and (folder / "model_index.json").is_file():
            seen.add(key)
            found.append((folder, source, repo_id))

    for item in search_dirs or []:
        raw, source = item if isinstance(item, tuple) else (item, "user")
        base = Path(raw).expanduser()
        if not base.is_dir():
            continue
        add(base, source, repo_id_from_cache_path(base))
        for child in sorted(p for p in base.iterdir() if p.is_dir()):
            add(child, source, repo_id_from_cache_path(child))
            if not (child / "model_index.json").is_file():
                for grandchild in sorted(p for p in child.iterdir() if p.is_dir()):
                    add(grandchild, source, repo_id_from_cache_path(grandchild))
    if include_hf_cache:
        for cache in hf_cache_dirs():
            for snapshot in sorted(cache.glob("models--*/snapshots/*")):
                add(snapshot, "hf_cache", repo_id_from_cache_path(snapshot))
    return found
