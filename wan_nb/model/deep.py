"""Deep analysis: build each component with the installed classes to prove it would load.

Models are built on the meta device (no memory, no weights read) and their parameter
names and shapes compared with the safetensors headers; tokenizers, schedulers and
processors are small, so they are loaded for real.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

from wan_nb.model.checkpoint import CheckpointError, find_weight_files, read_safetensors_header
from wan_nb.model.kinds import SCHEDULER, component_kind
from wan_nb.model.report import ComponentInfo


def _header_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    weights, _ = find_weight_files(folder)
    for weight in weights:
        if weight.suffix == ".safetensors":
            shapes.update({k: t.shape for k, t in read_safetensors_header(weight).tensors.items()})
    return shapes


def _build_model(cls, info: ComponentInfo, folder: Path):
    from accelerate import init_empty_weights

    with init_empty_weights():
        if info.library == "diffusers":
            return cls.from_config(info.config)
        config = cls.config_class.from_pretrained(folder)
        return cls(config)


def _split_buffers(info: ComponentInfo, model, shapes: dict[str, tuple[int, ...]]) -> ComponentInfo:
    """``parameters`` as ``module.parameters()`` counts them, the stored buffers apart.

    The header holds every persistent tensor; only the built class knows which of them are
    buffers (LTX's VAE stores ``latents_mean`` and ``latents_std``).
    """
    import math

    persistent = set(model.state_dict())
    stored = {k for k, _ in model.named_buffers() if k in persistent and k in shapes}
    buffers = sum(math.prod(shapes[k]) for k in stored)
    if info.parameters is None:
        return replace(info, buffers=buffers)
    return replace(info, parameters=info.parameters - buffers, buffers=buffers)


def _compare(model, shapes: dict[str, tuple[int, ...]], name: str) -> list[str]:
    problems: list[str] = []
    # Tied weights (UMT5's shared / embed_tokens) are one tensor under several names and
    # stored once: a tensor is missing only when none of its names is in the files.
    names_of: dict[int, list[str]] = {}
    tensors: dict[int, object] = {}
    for key, tensor in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        names_of.setdefault(id(tensor), []).append(key)
        tensors[id(tensor)] = tensor
    persistent = set(model.state_dict())
    # transformers declares ties it makes at load time (a list, or target -> source in v5);
    # on the meta device they are not made yet, so the file holds only the source.
    tied = set(getattr(model, "_tied_weights_keys", None) or ())
    missing, mismatched = [], []
    for ident, keys in names_of.items():
        keys = [k for k in keys if k in persistent and k not in tied]
        if not keys:
            continue
        stored = [k for k in keys if k in shapes]
        if not stored:
            missing.append(keys[0])
        elif shapes[stored[0]] != tuple(tensors[ident].shape):
            mismatched.append((stored[0], shapes[stored[0]], tuple(tensors[ident].shape)))
    if missing:
        problems.append(
            f"{len(missing)} tensor(s) the class expects are not in the weight files of {name}/ "
            f"(first: {missing[0]}); the checkpoint is for another version or model."
        )
    if mismatched:
        key, have, want = mismatched[0]
        problems.append(
            f"{len(mismatched)} tensor(s) in {name}/ have another shape than the config implies "
            f"(first: {key} is {have}, the config gives {want})."
        )
    return problems


def check_functional(root: Path, info: ComponentInfo) -> ComponentInfo:
    """Return ``info`` with ``functional`` set and any problem found while building it."""
    if info.status == "optional":
        return info
    if info.status != "ok":
        return replace(info, functional=False)
    folder = root / info.name
    try:
        cls = getattr(importlib.import_module(info.library), info.class_name)
        if info.has_weights:
            model = _build_model(cls, info, folder)
            shapes = _header_shapes(folder)
            problems = _compare(model, shapes, info.name)
            info = _split_buffers(info, model, shapes)
        elif (info.kind or component_kind(info.library, info.class_name, info.files)) == SCHEDULER:
            cls.from_config(info.config)
            problems = []
        else:
            cls.from_pretrained(folder)
            problems = []
    except CheckpointError as exc:
        problems = [str(exc)]
    except Exception as exc:  # noqa: BLE001 - a class that rejects its config, however it fails, is the finding: it goes into the report's problems
        problems = [f"{info.class_name} could not be built from {info.name}/: {type(exc).__name__}: {exc}"]
    if problems:
        return replace(info, functional=False, status="corrupt", problems=info.problems + tuple(problems))
    return replace(info, functional=True)
