"""What a strategy changes on a loaded pipeline, captured so that it can be put back exactly.

:class:`PipelineState` records the placement and precision of every parameter and buffer,
accelerate's ``_hf_hook`` and diffusers' ``_diffusers_hook`` registries on every submodule,
the VAE's tiling/slicing flags and the pipeline's own attributes (``_offload_device``,
``_all_hooks``, ``hf_device_map``, an instance ``to``); :meth:`PipelineState.restore` removes
hooks it did not have the way their library removes them and moves tensors back. It sits
with the strategies because ``Strategy.apply`` returns one; the recovery sandbox uses it
between attempts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

_HOOK_ATTRS = ("forward", "_hf_hook", "_old_forward", "_diffusers_hook")
_PLAIN = (bool, int, float, str, type(None))
_MISSING = object()


def modules_of(pipe: Any) -> dict[str, Any]:
    import torch

    out = {}
    for name, value in _component_items(pipe):
        if isinstance(value, torch.nn.Module):
            out[name] = value
    return out


def _component_items(pipe: Any) -> list[tuple[str, Any]]:
    try:
        return list(pipe.components.items())
    except (AttributeError, KeyError, TypeError, ValueError):  # a pipeline whose config and attributes disagree
        config = getattr(pipe, "config", {}) or {}
        return [(k, getattr(pipe, k, None)) for k in config if not str(k).startswith("_")]


@dataclass
class _ModuleState:
    tensors: dict[str, tuple[Any, Any, bool]]  # qualified name -> (device, dtype, is_param)
    hooks: dict[str, dict[str, Any]]  # submodule name -> {attr: value} for the hook attributes it had
    registries: dict[str, tuple[str, ...]]  # submodule name -> diffusers hook names
    flags: dict[str, Any]  # plain attributes of the component itself (use_tiling, tile sizes)
    training: bool


def _capture_module(module: Any) -> _ModuleState:
    tensors: dict[str, tuple[Any, Any, bool]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        tensors[name] = (p.device, p.dtype, True)
    for name, b in module.named_buffers(remove_duplicate=False):
        tensors[name] = (b.device, b.dtype, False)
    hooks: dict[str, dict[str, Any]] = {}
    registries: dict[str, tuple[str, ...]] = {}
    for name, sub in module.named_modules(remove_duplicate=False):
        own = {k: sub.__dict__[k] for k in _HOOK_ATTRS if k in sub.__dict__}
        if own:
            hooks[name] = own
        registry = sub.__dict__.get("_diffusers_hook")
        if registry is not None:
            registries[name] = tuple(getattr(registry, "_hook_order", ()))
    flags = {k: v for k, v in module.__dict__.items() if isinstance(v, _PLAIN) and k != "training"}
    return _ModuleState(tensors, hooks, registries, flags, bool(module.training))


@dataclass
class PipelineState:
    """What a strategy may change on one pipeline, recorded so that :meth:`restore` undoes it."""

    pipe: Any
    cls: type
    attrs: dict[str, Any]
    modules: dict[str, tuple[Any, _ModuleState]]
    problems: list[str] = field(default_factory=list)

    @classmethod
    def capture(cls, pipe: Any) -> PipelineState:
        modules = {name: (module, _capture_module(module)) for name, module in modules_of(pipe).items()}
        return cls(pipe=pipe, cls=type(pipe), attrs=dict(pipe.__dict__), modules=modules)

    # -- restore -----------------------------------------------------------------------
    def restore(self) -> list[str]:
        """Undo every change since :meth:`capture`; returns what could not be put back exactly."""
        problems: list[str] = []
        pipe = self.pipe
        if type(pipe) is not self.cls:
            object.__setattr__(pipe, "__class__", self.cls)
        for name, (module, state) in self.modules.items():
            problems += _restore_hooks(name, module, state)
        for name, (module, state) in self.modules.items():
            problems += _restore_tensors(name, module, state)
            drop_caches(module)
            _restore_flags(module, state)
        # The pipeline's own attributes, by identity: components, config (`_internal_dict`),
        # offload bookkeeping, device maps, an instance-level `to`.
        current = pipe.__dict__
        for key in [k for k in current if k not in self.attrs]:
            del current[key]
        for key, value in self.attrs.items():
            if current.get(key, _MISSING) is not value:
                current[key] = value
        self.problems = problems
        return problems



def _restore_hooks(component: str, module: Any, state: _ModuleState) -> list[str]:
    problems: list[str] = []
    subs = dict(module.named_modules(remove_duplicate=False))
    # accelerate: model/sequential offload and device maps. remove_hook_from_module puts
    # sequentially offloaded weights back from the hook's weights map.
    added_hf = [n for n, s in subs.items() if "_hf_hook" in s.__dict__ and s.__dict__["_hf_hook"] is not state.hooks.get(n, {}).get("_hf_hook")]
    for name in added_hf:
        problems += _detach_hf_hook(f"{component}.{name}" if name else component, subs[name])
    # diffusers: group offloading, layerwise casting, caches. Remove, newest first, every
    # hook the registry did not hold before.
    for name, sub in subs.items():
        registry = sub.__dict__.get("_diffusers_hook")
        if registry is None:
            continue
        before = state.registries.get(name, ())
        for hook_name in reversed(list(getattr(registry, "_hook_order", ()))):
            if hook_name not in before:
                try:
                    registry.remove_hook(hook_name, recurse=False)
                except NotImplementedError:
                    # Layerwise casting refuses to be undone (its weights were cast in place):
                    # unhook it anyway; the dtype restore below reports the lost precision.
                    _unhook(registry, hook_name)
        if name not in state.registries and not getattr(registry, "hooks", None):
            del sub.__dict__["_diffusers_hook"]
        elif hasattr(registry, "invalidate_child_registries_cache"):
            registry.invalidate_child_registries_cache()
    # Whatever instance attributes the hooks left (a wrapped `forward`) go back as they were.
    for name, sub in subs.items():
        before = state.hooks.get(name, {})
        for attr in _HOOK_ATTRS:
            had = attr in before
            if attr in sub.__dict__ and not had:
                del sub.__dict__[attr]
            elif had and sub.__dict__.get(attr, _MISSING) is not before[attr]:
                if attr == "_hf_hook":
                    problems.append(
                        f"`{component}.{name or '(root)'}` had an accelerate hook before the attempt "
                        "that was replaced; it was re-attached as it was."
                    )
                    from accelerate.hooks import add_hook_to_module

                    add_hook_to_module(sub, before[attr])
                else:
                    sub.__dict__[attr] = before[attr]
    return problems


def _unhook(registry: Any, name: str) -> None:
    """diffusers' ``HookRegistry.remove_hook`` without the hook's ``deinitalize_hook``."""
    index = registry._hook_order.index(name)
    fn_ref = registry._fn_refs[index]
    old_forward = fn_ref.original_forward if fn_ref.original_forward is not None else fn_ref.forward
    if index == len(registry._hook_order) - 1:
        registry._module_ref.forward = old_forward
    else:
        registry._fn_refs[index + 1].forward = old_forward
    del registry.hooks[name]
    registry._hook_order.pop(index)
    registry._fn_refs.pop(index)


def _detach_hf_hook(where: str, module: Any) -> list[str]:
    """accelerate's ``remove_hook_from_module``; if it fails, put the offloaded weights back by hand.

    A run that failed inside an offload hook (an OOM while onloading, or accelerate's
    compiled ``post_forward`` tripping over a torch version) can leave the module half
    moved, and accelerate's own detach then fails on it too.
    """
    import torch
    from accelerate.hooks import remove_hook_from_module

    try:
        remove_hook_from_module(module, recurse=False)
        return []
    except Exception as exc:  # noqa: BLE001 - accelerate can fail in any way on a half-moved module; the weights go back by hand and the attempt's restore_problems say so
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
    hook = module.__dict__.pop("_hf_hook", None)
    for part in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):
        weights = getattr(part, "weights_map", None)
        devices = getattr(part, "original_devices", None) or {}
        if not getattr(part, "offload", False) or weights is None:
            continue
        for name, device in devices.items():
            if device == torch.device("meta") or name not in weights:
                continue
            value = weights[name].to(device)
            if name in module._parameters:
                module._parameters[name] = torch.nn.Parameter(value, requires_grad=False)
            else:
                module._buffers[name] = value
    old_forward = module.__dict__.pop("_old_forward", None)
    if old_forward is not None:
        module.forward = old_forward
    return [f"accelerate could not detach its hook from `{where}` ({reason}); its weights were put back by hand."]


def _restore_tensors(component: str, module: Any, state: _ModuleState) -> list[str]:
    import torch

    problems: list[str] = []
    current = {n: p for n, p in module.named_parameters(remove_duplicate=False)}
    current.update({n: b for n, b in module.named_buffers(remove_duplicate=False)})
    lossy = 0
    for name, (device, dtype, is_param) in state.tensors.items():
        tensor = current.get(name)
        if tensor is None or (tensor.device == device and tensor.dtype == dtype):
            continue
        if tensor.device.type == "meta":
            problems.append(f"`{component}.{name}` is on the meta device and cannot be moved back to {device}.")
            continue
        if tensor.dtype != dtype and tensor.dtype.itemsize < dtype.itemsize:
            lossy += 1
        moved = tensor.data.to(device=device, dtype=dtype)
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        if is_param:
            param = owner._parameters.get(leaf)
            if isinstance(param, torch.nn.Parameter):
                param.data = moved
            else:
                owner._parameters[leaf] = torch.nn.Parameter(moved, requires_grad=False)
        else:
            owner._buffers[leaf] = moved
    if lossy:
        problems.append(
            f"{lossy} tensor(s) of `{component}` were cast to a narrower dtype in place; "
            "their dtype is restored but the lost precision is not (reload the pipeline)."
        )
    return problems


def drop_caches(module: Any) -> None:
    """Empty the working caches a module keeps between calls.

    The Wan VAE decodes frame by frame through a feature cache (``_feat_map``) that it
    empties at the end of a decode; a decode that failed half way leaves it full, holding
    activations until the next decode.
    """
    clear = getattr(module, "clear_cache", None)
    held = [*(module.__dict__.get("_feat_map") or ()), *(module.__dict__.get("_enc_feat_map") or ())]
    if callable(clear) and any(x is not None for x in held):
        clear()


def release_caches(pipe: Any, *, after_failure: bool = False) -> None:
    """Empty every component's working caches (the weights stay).

    ``after_failure``: also reset the VAE, whose decode may have stopped half way.
    """
    for module in modules_of(pipe).values():
        drop_caches(module)
    clear = getattr(getattr(pipe, "vae", None), "clear_cache", None)
    if after_failure and callable(clear):
        # A VAE whose decode failed half way can be in a state its own clear trips over;
        # what matters is that nothing of the failed run stays referenced.
        with contextlib.suppress(Exception):
            clear()


def _restore_flags(module: Any, state: _ModuleState) -> None:
    for key in [k for k, v in module.__dict__.items() if isinstance(v, _PLAIN) and k != "training" and k not in state.flags]:
        del module.__dict__[key]
    for key, value in state.flags.items():
        if module.__dict__.get(key, _MISSING) != value:
            module.__dict__[key] = value
    if bool(module.training) != state.training:
        module.train(state.training)
