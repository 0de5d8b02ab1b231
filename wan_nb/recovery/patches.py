"""Patches that let the engine see a run's loads and pipeline calls, for one attempt at a time.

- :func:`patch_from_pretrained` wraps ``DiffusionPipeline.from_pretrained`` (a classmethod
  every pipeline class inherits; diffusers' own subclasses do not override it) for the
  duration of a ``with`` block.
- :class:`CallInterceptor` wraps ``__call__`` of every imported pipeline class, so that the
  engine sees each call: on a pipeline it was given, one it found, or one the run built.
- :func:`guard_to` makes a user's ``pipe.to(device)`` harmless while a strategy placed the models.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

Loader = Callable[..., Any]


@contextlib.contextmanager
def patch_from_pretrained(load: Callable[[Loader, type, tuple, dict], Any]) -> Iterator[Loader]:
    """Route ``DiffusionPipeline.from_pretrained`` through ``load`` inside the block; yields the original.

    ``load(original, cls, args, kwargs)`` returns the pipeline the run gets: it may change the
    arguments, call ``original(cls, *args, **kwargs)``, change what that returns, or build
    something else entirely.
    """
    from diffusers import DiffusionPipeline

    classmethod_ = DiffusionPipeline.__dict__["from_pretrained"]
    func = classmethod_.__func__

    def original(cls: type, *args: Any, **kwargs: Any) -> Any:
        return func(cls, *args, **kwargs)

    @functools.wraps(func)
    def patched(cls, *args, **kwargs):
        return load(original, cls, args, kwargs)

    DiffusionPipeline.from_pretrained = classmethod(patched)
    try:
        yield original
    finally:
        DiffusionPipeline.from_pretrained = classmethod_


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
