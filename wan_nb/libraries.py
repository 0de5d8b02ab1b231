"""What the installed libraries offer: versions, and whether a class can be imported.

Checking a class must stay cheap: ``import diffusers`` pulls in torch (seconds), so a
class that diffusers lists in its lazy import table counts as importable without
importing anything. Only a name the table lacks costs a real import, to be sure.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
from functools import cache, lru_cache

# The diffusers release that introduced each Wan class or feature (its changelog).
WAN_CLASS_INTRODUCED: dict[str, str] = {
    "WanPipeline": "0.33.0",
    "WanImageToVideoPipeline": "0.33.0",
    "WanVideoToVideoPipeline": "0.33.0",
    "WanTransformer3DModel": "0.33.0",
    "AutoencoderKLWan": "0.33.0",
    "WanVACEPipeline": "0.34.0",
    "WanVACETransformer3DModel": "0.34.0",
    "WanAnimatePipeline": "0.36.0",
    "WanAnimateTransformer3DModel": "0.36.0",
}
# Wan 2.2: transformer_2 / boundary_ratio / expand_timesteps and the 48-channel VAE.
WAN22_INTRODUCED = "0.35.0"


@cache
def installed_version(library: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_tuple(version: str | None) -> tuple[int, ...]:
    """``"0.35.0.dev0"`` -> ``(0, 35, 0)``; unknown -> ``()``."""
    if not version:
        return ()
    parts = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def version_at_least(installed: str | None, required: str) -> bool:
    return bool(installed) and version_tuple(installed) >= version_tuple(required)


@cache
def _lazy_table_text(library: str) -> str:
    spec = importlib.util.find_spec(library)
    if spec is None or not spec.origin:
        return ""
    try:
        with open(spec.origin, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""


@cache
def class_available(library: str | None, class_name: str | None) -> bool:
    """Whether ``from <library> import <class_name>`` would work in this environment.

    Cached: the answer only changes when packages are installed, which needs a restart.
    """
    if not library or not class_name:
        return False
    if installed_version(library) is None and importlib.util.find_spec(library) is None:
        return False
    if f'"{class_name}"' in _lazy_table_text(library):
        # diffusers lists every public name as a string literal in its lazy import table.
        return True
    try:
        module = importlib.import_module(library)
        # transformers' lazy module maps each class to its submodule; dir() would list the
        # same names but costs most of a second.
        if class_name in (getattr(module, "_class_to_module", None) or {}):
            return True
        return getattr(module, class_name, None) is not None  # aliases such as T5TokenizerFast
    except Exception:  # noqa: BLE001 - importing a library can fail in any way (a CUDA library, a broken install); the report then says the class is not importable
        return False


@lru_cache(maxsize=1)
def dtype_kwarg_name() -> str:
    """``dtype`` where the installed diffusers prefers it, else ``torch_dtype``.

    diffusers deprecated ``torch_dtype`` (``_resolve_dtype``); the module text is read, not
    imported, so snippets stay cheap to write.
    """
    try:
        spec = importlib.util.find_spec("diffusers.utils.deprecation_utils")
        with open(spec.origin, encoding="utf-8") as fh:  # type: ignore[union-attr, arg-type]
            return "dtype" if "def _resolve_dtype" in fh.read() else "torch_dtype"
    except (ImportError, AttributeError, OSError):  # no diffusers, or an unusual install: the old name works everywhere
        return "torch_dtype"
