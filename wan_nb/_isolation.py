"""Keep attempts apart: snapshot and restore a pipeline, patch loading and calling for one attempt.

- :class:`PipelineState` records what a strategy may change on a loaded pipeline — the
  placement and precision of every parameter and buffer, accelerate's ``_hf_hook`` and
  diffusers' ``_diffusers_hook`` registries on every submodule, the VAE's tiling/slicing
  flags, the pipeline's own attributes (``_offload_device``, ``_all_hooks``,
  ``hf_device_map``, an instance ``to``) — and puts it back: hooks it did not have are
  removed the way their library removes them, tensors go back where they were.
- :func:`patch_from_pretrained` wraps ``DiffusionPipeline.from_pretrained`` (a classmethod
  every pipeline class inherits; diffusers' own subclasses do not override it) for the
  duration of a ``with`` block.
- :func:`intercept_calls` wraps ``__call__`` of every imported pipeline class, so that the
  engine sees each call — on a pipeline it was given, one it found, or one the run built.
- :func:`clear_tracebacks` and :func:`free_memory` run between attempts: a held traceback
  keeps its frames, and so their (device) tensors, alive.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_HOOK_ATTRS = ("forward", "_hf_hook", "_old_forward", "_diffusers_hook")
_PLAIN = (bool, int, float, str, type(None))


def is_pipeline(obj: Any) -> bool:
    """Whether ``obj`` is a diffusers pipeline, without importing diffusers when it is not loaded."""
    module = sys.modules.get("diffusers")
    if module is None:
        return False
    try:
        base = module.DiffusionPipeline
    except Exception:  # noqa: BLE001 - a half-imported diffusers
        return False
    try:
        return isinstance(obj, base)
    except Exception:  # noqa: BLE001 - proxies whose __class__ raises
        return False


def _modules(pipe: Any) -> dict[str, Any]:
    import torch

    out = {}
    for name, value in _component_items(pipe):
        if isinstance(value, torch.nn.Module):
            out[name] = value
    return out


def _component_items(pipe: Any) -> list[tuple[str, Any]]:
    try:
        return list(pipe.components.items())
    except Exception:  # noqa: BLE001 - a pipeline whose config and attributes disagree
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
        modules = {name: (module, _capture_module(module)) for name, module in _modules(pipe).items()}
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


_MISSING = object()


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
    except Exception as exc:  # noqa: BLE001 - fall back to the hook's own weights map
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


def _restore_flags(module: Any, state: _ModuleState) -> None:
    for key in [k for k, v in module.__dict__.items() if isinstance(v, _PLAIN) and k != "training" and k not in state.flags]:
        del module.__dict__[key]
    for key, value in state.flags.items():
        if module.__dict__.get(key, _MISSING) != value:
            module.__dict__[key] = value
    if bool(module.training) != state.training:
        module.train(state.training)


# -- patches ----------------------------------------------------------------------------
@contextlib.contextmanager
def patch_from_pretrained(
    before: Callable[[type, tuple, dict], tuple[tuple, dict]] | None = None,
    after: Callable[[Any, tuple, dict], Any] | None = None,
    replace: Callable[[type, tuple, dict], Any] | None = None,
) -> Iterator[Callable[..., Any]]:
    """Wrap ``DiffusionPipeline.from_pretrained`` inside the block; yields the original.

    ``before(cls, args, kwargs)`` may change the arguments, ``after(pipe, args, kwargs)`` sees
    (and may replace) the loaded pipeline; ``replace(cls, args, kwargs)``, when given, is
    called instead of loading at all.
    """
    from diffusers import DiffusionPipeline

    original = DiffusionPipeline.__dict__["from_pretrained"]
    func = original.__func__

    def load(cls, *args, **kwargs):
        return func(cls, *args, **kwargs)

    @functools.wraps(func)
    def patched(cls, *args, **kwargs):
        if replace is not None:
            return replace(cls, args, kwargs)
        if before is not None:
            args, kwargs = before(cls, args, kwargs)
        pipe = func(cls, *args, **kwargs)
        if after is not None:
            pipe = after(pipe, args, kwargs)
        return pipe

    DiffusionPipeline.from_pretrained = classmethod(patched)
    try:
        yield load
    finally:
        DiffusionPipeline.from_pretrained = original


def _pipeline_classes() -> list[type]:
    module = sys.modules.get("diffusers")
    if module is None:
        return []
    base = module.DiffusionPipeline
    seen: list[type] = []
    stack = [base]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                stack.append(sub)
    return [c for c in seen if "__call__" in c.__dict__]


def original_call(cls: type) -> Callable[..., Any]:
    """A pipeline class's own ``__call__``, beneath any wrapper of ours."""
    call = cls.__call__
    return getattr(call, "__wan_nb_original__", call)


class CallInterceptor:
    """While active, every call of a pipeline goes through ``handler(pipe, call, kwargs)``.

    ``call`` is the class's own ``__call__`` and ``kwargs`` the call's arguments, bound to
    its signature (positional ones named). A call made while the same pipeline is already
    inside a handled call (``super().__call__``, a handler running the pipeline) passes
    straight through.
    """

    def __init__(self, handler: Callable[[Any, Callable[..., Any], dict[str, Any]], Any]) -> None:
        self.handler = handler
        self._patched: dict[type, Any] = {}
        self._local = threading.local()

    def __enter__(self) -> CallInterceptor:
        for cls in _pipeline_classes():
            self.cover(cls)
        return self

    def __exit__(self, *exc: Any) -> None:
        for cls, original in self._patched.items():
            cls.__call__ = original
        self._patched.clear()

    def cover(self, cls: type) -> None:
        """Intercept ``cls`` too (a pipeline class first imported inside the block)."""
        for klass in cls.__mro__:
            if "__call__" in klass.__dict__ and klass not in self._patched and is_pipeline_class(klass):
                original = klass.__dict__["__call__"]
                self._patched[klass] = original
                klass.__call__ = self._wrap(original)

    def _busy(self) -> set[int]:
        busy = getattr(self._local, "busy", None)
        if busy is None:
            busy = self._local.busy = set()
        return busy

    def run_direct(self, pipe: Any, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        busy = self._busy()
        busy.add(id(pipe))
        try:
            return call(pipe, **kwargs)
        finally:
            busy.discard(id(pipe))

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(original)

        @functools.wraps(original)
        def wrapper(pipe, *args, **kwargs):
            busy = self._busy()
            if id(pipe) in busy:
                return original(pipe, *args, **kwargs)
            bound = signature.bind(pipe, *args, **kwargs)
            arguments = dict(bound.arguments)
            arguments.pop(next(iter(signature.parameters)), None)
            for name, param in signature.parameters.items():
                if param.kind is inspect.Parameter.VAR_KEYWORD and name in arguments:
                    arguments.update(arguments.pop(name))
            busy.add(id(pipe))
            try:
                return self.handler(pipe, original, arguments)
            finally:
                busy.discard(id(pipe))

        wrapper.__wan_nb_original__ = original  # type: ignore[attr-defined]
        return wrapper


def is_pipeline_class(cls: type) -> bool:
    module = sys.modules.get("diffusers")
    return module is not None and isinstance(cls, type) and issubclass(cls, module.DiffusionPipeline)


def guard_to(pipe: Any, policy: str, after: Callable[[Any], None] | None = None) -> None:
    """Make ``pipe.to(device)`` harmless for this attempt (an instance attribute; restored by the state).

    ``policy="ignore"``: device moves are dropped (the strategy placed the models: offload
    hooks, a device map), dtype conversions still happen. ``policy="reapply"``: the move
    happens, then ``after(pipe)`` puts the strategy's pieces back (the text encoder on CPU).
    """
    original = type(pipe).to

    def to(*args: Any, **kwargs: Any) -> Any:
        import torch

        if policy == "reapply":
            result = original(pipe, *args, **kwargs)
            if after is not None:
                after(pipe)
            return result
        dtype = kwargs.get("dtype")
        dtype = dtype or next((a for a in args if isinstance(a, torch.dtype)), None)
        if dtype is not None:
            original(pipe, dtype=dtype, silence_dtype_warnings=True)
        return pipe

    to.__wan_nb_guard__ = policy  # type: ignore[attr-defined]
    object.__setattr__(pipe, "to", to)


# -- between attempts --------------------------------------------------------------------
def _clear_frame(frame: Any) -> None:
    """Drop a finished frame's locals, including the dict a traceback display cached.

    ``frame.clear()`` empties the fast locals; before Python 3.13 a ``f_locals`` dict that
    was already built (IPython's traceback display reads it) is a separate copy that
    survives. Reading ``f_locals`` after the clear syncs that copy to the now empty locals;
    it is then emptied as well for a function frame (never a module's globals).
    """
    with contextlib.suppress(RuntimeError):  # a frame that is still executing
        frame.clear()
        if frame.f_code.co_flags & inspect.CO_OPTIMIZED:  # a function frame, not a module or class body
            cached = frame.f_locals
            if isinstance(cached, dict):
                cached.clear()


def clear_tracebacks(error: BaseException | None = None) -> None:
    """Drop the frames a failure keeps alive: the error's chain and the interpreter's last error."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        tb = error.__traceback__
        while tb is not None:
            _clear_frame(tb.tb_frame)
            tb = tb.tb_next
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
    for name in ("last_traceback", "last_value", "last_type", "last_exc"):
        if hasattr(sys, name):
            with contextlib.suppress(AttributeError):
                setattr(sys, name, None)


def free_memory(device: str | None = None) -> None:
    """``gc.collect()`` then the backend's ``empty_cache()``, as accelerate's ``release_memory`` does."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    kind = (device or "cpu").split(":", 1)[0]
    if kind == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif kind == "xpu" and hasattr(torch, "xpu") and torch.xpu.is_available():
        torch.xpu.empty_cache()
    elif kind == "mps" and torch.backends.mps.is_available():
        torch.mps.empty_cache()


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
