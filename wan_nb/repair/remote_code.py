"""``remote_code``: load a folder with the pipeline code it ships, only with the user's consent.

``trust_remote_code`` runs code *from the model folder*, so it runs only with
``allow_remote_code=True``; without it the strategy is skipped with :data:`CONSENT_REASON`.
Code that would have to be downloaded is never run.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from wan_nb._records import json_native
from wan_nb.model.checkpoint import CheckpointError, read_json
from wan_nb.repair._common import (
    CONSENT_REASON,
    INDEX_META,
    ConsentRequired,
    SubstitutionError,
    import_class,
    torch_dtype_of,
)


@dataclass(frozen=True)
class RemoteCode:
    """Code in (or referenced by) a model folder that loading it would run."""

    path: str
    files: tuple[str, ...]  # .py files that would run, relative to the folder
    class_name: str | None  # the custom pipeline class, when the pipeline is custom
    pipeline_file: str | None  # relative path of the pipeline's module
    components: tuple[str, ...] = ()  # components whose class is defined in the folder
    local: bool = True  # False: the code would have to be downloaded (wan_nb never does)
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RemoteCode:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for key in ("files", "components", "missing"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)


def _defines_class(py: Path, name: str | None) -> bool:
    try:
        text = py.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if name:
        return re.search(rf"^class\s+{re.escape(name)}\b", text, re.MULTILINE) is not None
    return re.search(r"^class\s+\w+\(.*Pipeline.*\)", text, re.MULTILINE) is not None


def find_remote_code(path: str | os.PathLike[str]) -> RemoteCode | None:
    """The folder's own code that ``trust_remote_code`` would run, or None when there is none."""
    root = Path(path).expanduser()
    try:
        index = read_json(root / "model_index.json")
    except CheckpointError:
        return None
    files: list[str] = []
    missing: list[str] = []
    class_name = pipeline_file = None
    declared = index.get("_class_name")
    if isinstance(declared, list) and len(declared) == 2 and all(isinstance(v, str) for v in declared):
        # diffusers' convention for custom pipelines: ["<module in the repo>", "<class>"].
        pipeline_file, class_name = f"{declared[0]}.py", declared[1]
        (files if (root / pipeline_file).is_file() else missing).append(pipeline_file)
    elif isinstance(declared, str) and import_class("diffusers", declared) is None:
        for py in sorted(root.glob("*.py")):
            if _defines_class(py, declared):
                pipeline_file, class_name = py.name, declared
                files.append(py.name)
                break
    if pipeline_file is None and (root / "pipeline.py").is_file() and _defines_class(root / "pipeline.py", None):
        pipeline_file = "pipeline.py"  # diffusers' default custom pipeline file name
        files.append(pipeline_file)
    components = []
    for key, value in index.items():
        if key in INDEX_META or not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)):
            continue
        module = root / key / f"{value[0]}.py"
        if module.is_file():
            components.append(key)
            files.append(f"{key}/{value[0]}.py")
    if not files and not missing:
        return None
    return RemoteCode(
        path=str(root),
        files=tuple(files),
        class_name=class_name,
        pipeline_file=pipeline_file,
        components=tuple(components),
        local=not missing,
        missing=tuple(missing),
    )


def load_with_remote_code(
    path: str | os.PathLike[str], *, allow_remote_code: bool = False, torch_dtype=None, **kwargs
):
    """Load a folder whose pipeline (or components) is defined by code inside it.

    Runs that code only with ``allow_remote_code=True``, and only when it is all in the
    folder: wan_nb never downloads code.

    Raises:
        ConsentRequired: the code would run and consent was not given.
        SubstitutionError: the folder has no such code, or the code is not local.
    """
    root = Path(path).expanduser()
    remote = find_remote_code(root)
    if remote is None:
        raise SubstitutionError(
            f"{root} holds no pipeline or component code of its own, so `remote_code` has nothing to run; "
            "try assemble_components or upgrade_guidance."
        )
    if not remote.local:
        raise SubstitutionError(
            f"{root}: model_index.json refers to code that is not in the folder ({', '.join(remote.missing)}); "
            "wan_nb runs code only from the model folder and never downloads it. Put the file there after "
            "reading it, or load the pipeline yourself."
        )
    if not allow_remote_code:
        raise ConsentRequired(
            f"{root}: loading it runs {', '.join(remote.files)} from the model folder; {CONSENT_REASON}. "
            "Read the file(s), then pass `allow_remote_code=True`."
        )
    from diffusers import DiffusionPipeline

    dtype = torch_dtype_of(torch_dtype)
    if dtype is not None:
        kwargs["torch_dtype"] = dtype
    declared = read_json(root / "model_index.json").get("_class_name")
    if remote.pipeline_file and not isinstance(declared, list):
        # A class name diffusers lacks, defined in a file of the folder: point at the file.
        kwargs.setdefault("custom_pipeline", str(root / remote.pipeline_file))
    try:
        return DiffusionPipeline.from_pretrained(str(root), trust_remote_code=True, **kwargs)
    except Exception as exc:
        raise SubstitutionError(
            f"The code in {root} ({', '.join(remote.files)}) ran but loading failed: {type(exc).__name__}: {exc}"
        ) from exc
