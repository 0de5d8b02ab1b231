"""The user's pipelines: finding them in a namespace or a function, without importing diffusers."""

from __future__ import annotations

import contextlib
import inspect
import sys
from typing import Any

from wan_nb.strategies.state import modules_of


def is_pipeline(obj: Any) -> bool:
    """Whether ``obj`` is a diffusers pipeline, without importing diffusers when it is not loaded."""
    module = sys.modules.get("diffusers")
    if module is None:
        return False
    try:
        base = module.DiffusionPipeline
    except Exception:  # noqa: BLE001 - a half-imported diffusers can fail in any way: then nothing is a pipeline
        return False
    try:
        return isinstance(obj, base)
    except Exception:  # noqa: BLE001 - a proxy whose __class__ raises anything is not a pipeline
        return False




def find_pipelines(*sources: Any) -> list[Any]:
    """Pipelines among ``sources``: mappings (a namespace), iterables, pipelines, or a function
    (the pipelines its code reads from globals and closures)."""
    found: list[Any] = []

    def add(obj: Any) -> None:
        if is_pipeline(obj) and not any(obj is f for f in found):
            found.append(obj)

    for source in sources:
        if source is None:
            continue
        if is_pipeline(source):
            add(source)
        elif isinstance(source, dict):
            for value in list(source.values()):
                add(value)
        elif callable(source) and hasattr(source, "__code__"):
            for value in _function_references(source):
                add(value)
        elif isinstance(source, (list, tuple, set)):
            for value in source:
                add(value)
    return found


def _function_references(func: Any) -> list[Any]:
    """Values a function reads by name from its closure and globals (one level of nested code)."""
    values: list[Any] = []
    for cell in getattr(func, "__closure__", None) or ():
        with contextlib.suppress(ValueError):
            values.append(cell.cell_contents)
    code = func.__code__
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= set(const.co_names)
    module_globals = getattr(func, "__globals__", {})
    values += [module_globals[n] for n in names if n in module_globals]
    return values


def default_device(pipelines: list[Any]) -> str:
    """Where the pipelines compute (an offload's device, else the execution device), else the accelerator."""
    for pipe in pipelines:
        offload = pipe.__dict__.get("_offload_device")
        if offload is not None:
            return str(offload)
        try:
            return str(pipe._execution_device)
        except (AttributeError, RuntimeError, StopIteration):  # a pipeline with no module to ask
            continue
    from wan_nb.memory import _accel

    return _accel.default_device().type


def applied_strategies(pipelines: list[Any]) -> tuple[str, ...]:
    """The strategies already on the pipelines (the plan does not try them again)."""
    done: list[str] = []
    for pipe in pipelines:
        vae = getattr(pipe, "vae", None)
        if getattr(vae, "use_tiling", False):
            done.append("vae_tiling")
        if getattr(vae, "use_slicing", False):
            done.append("vae_slicing")
        if pipe.__dict__.get("_all_hooks"):
            done.append("model_cpu_offload")
        if getattr(pipe, "hf_device_map", None):
            done.append("balanced_device_map")
    return tuple(dict.fromkeys(done))


def pipeline_bytes(pipelines: list[Any], device: str) -> int:
    """Bytes of parameters and buffers the pipelines hold on ``device`` (shared storage once)."""
    import torch

    kind = torch.device(device).type
    seen: set[int] = set()
    total = 0
    for pipe in pipelines:
        for module in modules_of(pipe).values():
            for tensor in [*module.parameters(), *module.buffers()]:
                if tensor.device.type != kind:
                    continue
                storage = tensor.untyped_storage()
                if storage.data_ptr() in seen:
                    continue
                seen.add(storage.data_ptr())
                total += storage.nbytes()
    return total
