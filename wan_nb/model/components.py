"""Component report: what a diffusers model folder holds, read from its JSON and headers.

``analyze_model_components(path)`` reads ``model_index.json``, each component's config and
the safetensors headers (single files and shard indexes) — never the weights, and never
writes into the folder. Each component gets a status (``ok``, ``missing``, ``corrupt``,
``unavailable``, ``optional``) and its problems in plain words: which file, what is
wrong, what to do. ``deep=True`` also builds each component (on the meta device where
possible) to prove the installed classes accept the config and the weights' names and
shapes.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from wan_nb.libraries import (
    WAN22_INTRODUCED,
    WAN_CLASS_INTRODUCED,
    class_available,
    installed_version,
    version_at_least,
)
from wan_nb.model.checkpoint import (
    CheckpointError,
    MissingFileError,
    find_weight_files,
    read_json,
    read_safetensors_header,
)
from wan_nb.model.deep import check_functional
from wan_nb.model.kinds import CONFIG_FILES, TOKENIZER, TOKENIZER_VOCAB_FILES, component_kind, refusal
from wan_nb.model.report import ComponentInfo, ComponentReport, ModelFolderError

# model_index.json keys that are not components
_PIPELINE_KEYS = {"_class_name", "_diffusers_version", "_name_or_path"}


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _inside(folder: Path, name: str) -> Path | None:
    """The component folder if ``name`` stays inside ``folder``; None if it escapes."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or os.path.isabs(name):
        return None
    return folder / name


def _analyze_component(root: Path, name: str, library: str | None, class_name: str | None) -> ComponentInfo:
    info = ComponentInfo(
        name=name,
        library=library,
        class_name=class_name,
        status="ok",
        importable=class_available(library, class_name),
        introduced_in=WAN_CLASS_INTRODUCED.get(class_name or ""),
    )
    problems: list[str] = []
    if library is None and class_name is None:
        return replace(info, status="optional")

    folder = _inside(root, name)
    if folder is None:
        return replace(
            info,
            status="corrupt",
            problems=(
                f"model_index.json names component {name!r}, which points outside the model folder; "
                "wan_nb does not follow it. Fix that entry in model_index.json.",
            ),
        )
    try:
        exists = folder.is_dir()
        if exists:
            folder.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop before Python 3.13
        return replace(
            info,
            status="corrupt",
            problems=(f"folder {name}/ cannot be opened ({exc}); replace it with a real folder.",),
        )
    if not exists:
        return replace(
            info,
            status="missing",
            problems=(
                f"folder {name}/ is missing from {root}; download it again "
                f"(e.g. `hf download <repo> --include '{name}/*' --local-dir {root}`).",
            ),
        )

    files = sorted(_relative(p, root) for p in folder.iterdir() if p.is_file())
    kind = component_kind(library, class_name, files)
    info = replace(info, files=tuple(files), kind=kind)

    # config: the file this kind's save_pretrained writes
    candidates = CONFIG_FILES.get(kind or "", ("config.json",))
    config_path = next((folder / c for c in candidates if (folder / c).is_file()), None)
    status = "ok"
    if config_path is None:
        problems.append(f"{name}/{candidates[0]} is missing; download it again.")
        status = "missing"
    else:
        try:
            info = replace(info, config=read_json(config_path, f"{name}/{config_path.name}"))
        except CheckpointError as exc:
            problems.append(str(exc))
            status = "corrupt"
    if kind == TOKENIZER and not any((folder / f).is_file() for f in TOKENIZER_VOCAB_FILES):
        problems.append(
            f"{name}/ has no vocabulary file ({' or '.join(TOKENIZER_VOCAB_FILES[:2])}); download the tokenizer again."
        )
        status = "missing" if status == "ok" else status

    # weights: headers only
    if info.has_weights:
        try:
            weights, _index = find_weight_files(folder)
        except CheckpointError as exc:
            problems.append(str(exc))
            status = "missing" if isinstance(exc, MissingFileError) else "corrupt"
            weights = []
        else:
            if not weights:
                problems.append(
                    f"{name}/ has no weight file (diffusion_pytorch_model.safetensors or model.safetensors); "
                    "download the weights again."
                )
                status = "missing" if status == "ok" else status
        params = nbytes = 0
        dtypes: set[str] = set()
        readable = bool(weights)
        for weight in weights:
            if weight.suffix != ".safetensors":
                readable = False
                problems.append(
                    f"{_relative(weight, root)} is not safetensors, so its size was not read "
                    "(wan_nb reads headers only; pickle files would have to be loaded)."
                )
                continue
            try:
                header = read_safetensors_header(weight)
            except CheckpointError as exc:
                problems.append(str(exc))
                status = "corrupt"
                readable = False
                continue
            params += header.parameters
            nbytes += header.data_bytes
            dtypes.update(header.dtypes)
        if readable:
            info = replace(info, parameters=params, bytes=nbytes, dtypes=tuple(sorted(dtypes)))

    if status == "ok" and not info.importable:
        status = "unavailable"
        problems.append(_unavailable_advice(library, class_name))
    refused = refusal(library, class_name)
    if status == "ok" and refused:
        status = "unavailable"
        problems.append(refused)
    return replace(info, status=status, problems=tuple(problems))


def _unavailable_advice(library: str | None, class_name: str | None) -> str:
    installed = installed_version(library or "")
    introduced = WAN_CLASS_INTRODUCED.get(class_name or "")
    if installed is None:
        return f"{library} is not installed; `pip install {library}`."
    if introduced and not version_at_least(installed, introduced):
        return (
            f"{class_name} needs {library} >= {introduced} but {installed} is installed; "
            f'`pip install -U "{library}>={introduced}"`.'
        )
    return (
        f"{library} {installed} has no class {class_name}; upgrade {library} or load the "
        "components with classes it has."
    )


def analyze_model_components(path: str | os.PathLike[str], *, deep: bool = False) -> ComponentReport:
    """Analyse a diffusers model folder from its JSON files and safetensors headers.

    Raises:
        ModelFolderError: the path is missing, not a folder, or has no readable
            ``model_index.json`` — nothing to analyse.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a model folder (a str or a Path), got {type(path).__name__}.")
    root = Path(path).expanduser()
    if not root.exists():
        raise ModelFolderError(f"{root} does not exist; give the folder of a diffusers model.", root)
    if not root.is_dir():
        raise ModelFolderError(f"{root} is a file; give the folder that holds model_index.json.", root)
    index_path = root / "model_index.json"
    if not index_path.is_file():
        raise ModelFolderError(
            f"{root} has no model_index.json, so it is not a diffusers pipeline folder; give the folder "
            "that `from_pretrained` would load (it holds model_index.json and one folder per component).",
            root,
        )
    try:
        index = read_json(index_path)
    except CheckpointError as exc:
        raise ModelFolderError(str(exc), index_path) from None

    pipeline_class = index.get("_class_name") if isinstance(index.get("_class_name"), str) else None
    problems: list[str] = []
    pipeline_config: dict[str, Any] = {}
    components: list[ComponentInfo] = []
    for key, value in index.items():
        if key in _PIPELINE_KEYS:
            continue
        if isinstance(value, list) and len(value) == 2 and all(v is None or isinstance(v, str) for v in value):
            components.append(_analyze_component(root, key, value[0], value[1]))
        elif isinstance(value, list):
            problems.append(
                f"model_index.json entry {key!r} should be [library, class] but is {value!r}; fix model_index.json."
            )
        else:
            pipeline_config[key] = value

    installed = installed_version("diffusers")
    pipeline_importable = class_available("diffusers", pipeline_class)
    if pipeline_class is None:
        problems.append("model_index.json has no `_class_name`; add the pipeline class (e.g. WanPipeline).")
    elif not pipeline_importable:
        problems.append(f"pipeline {_unavailable_advice('diffusers', pipeline_class)}")
    uses_wan22 = "boundary_ratio" in pipeline_config or pipeline_config.get("expand_timesteps") or any(
        c.name == "transformer_2" and c.status != "optional" for c in components
    )
    if uses_wan22 and installed and not version_at_least(installed, WAN22_INTRODUCED):
        problems.append(
            f"this is a Wan 2.2 checkpoint (transformer_2 / boundary_ratio / expand_timesteps), which needs "
            f'diffusers >= {WAN22_INTRODUCED}; {installed} is installed: `pip install -U "diffusers>={WAN22_INTRODUCED}"`.'
        )

    report = ComponentReport(
        path=str(root),
        pipeline_class=pipeline_class,
        pipeline_importable=pipeline_importable,
        diffusers_version=installed,
        saved_with=index.get("_diffusers_version") if isinstance(index.get("_diffusers_version"), str) else None,
        components=tuple(components),
        pipeline_config=pipeline_config,
        problems=tuple(problems),
    )
    if deep:
        report = replace(report, components=tuple(check_functional(root, c) for c in components), deep=True)
    return report

