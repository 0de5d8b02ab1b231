"""What a run asks for, seen from outside: its loads, its pipeline call's settings, a dry run.

The engine never parses the user's code. It watches ``from_pretrained`` and the pipeline's
``__call__`` (:mod:`wan_nb.recovery.patches`) and keeps what it saw as plain data in an
:class:`Observed`. :func:`dry_capture` runs the code up to its first pipeline call with every
load replaced by a stand-in, so learning the call's sizes costs no memory.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wan_nb.recovery.patches import CallInterceptor, original_call, patch_from_pretrained
from wan_nb.settings import DTYPE_BYTES, GenerationSettings
from wan_nb.strategies.usercall import UserCall, load_sources, source_of

_MISSING = object()


class _Captured(BaseException):
    """Stops a dry run at the pipeline call (a BaseException: `except Exception` in user code lets it by)."""


# -- settings --------------------------------------------------------------------------------
def _dtype_name(dtype: Any) -> str | None:
    name = str(dtype).replace("torch.", "") if dtype is not None else None
    return name if name in DTYPE_BYTES else None


def pipeline_dtype(pipe: Any) -> str:
    for name in ("transformer", "transformer_2", "unet"):
        model = getattr(pipe, name, None)
        if model is not None and hasattr(model, "dtype"):
            return _dtype_name(model.dtype) or "float32"
    return _dtype_name(getattr(pipe, "dtype", None)) or "float32"


def settings_from_call(cls: type, kwargs: dict[str, Any], dtype: str | None = None) -> GenerationSettings:
    """The :class:`GenerationSettings` of one pipeline call (its defaults fill what was not passed)."""
    params = inspect.signature(original_call(cls)).parameters

    def get(name: str, fallback: Any) -> Any:
        if kwargs.get(name) is not None:
            return kwargs[name]
        default = params[name].default if name in params else inspect.Parameter.empty
        return fallback if default in (inspect.Parameter.empty, None) else default

    prompt = kwargs.get("prompt")
    if isinstance(prompt, (list, tuple)):
        batch = len(prompt)
    elif prompt is None and kwargs.get("prompt_embeds") is not None:
        batch = int(kwargs["prompt_embeds"].shape[0])
    else:
        batch = 1
    batch *= int(kwargs.get("num_videos_per_prompt") or 1)
    defaults = GenerationSettings()
    frames = get("num_frames", defaults.num_frames)
    if "num_frames" not in params and isinstance(kwargs.get("video"), (list, tuple)) and kwargs["video"]:
        frames = len(kwargs["video"])  # V2V takes no num_frames: the input video's length is the clip's
    return GenerationSettings(
        height=int(get("height", defaults.height)),
        width=int(get("width", defaults.width)),
        num_frames=int(frames),
        num_inference_steps=int(get("num_inference_steps", defaults.num_inference_steps)),
        guidance_scale=float(get("guidance_scale", defaults.guidance_scale)),
        dtype=dtype or "float32",
        batch_size=max(1, batch),
        max_sequence_length=int(get("max_sequence_length", defaults.max_sequence_length)),
    )


def _dtype_from_kwargs(kwargs: dict[str, Any]) -> str | None:
    value = kwargs.get("dtype", kwargs.get("torch_dtype"))
    if isinstance(value, dict):
        value = value.get("default", value.get("transformer"))
    return _dtype_name(value)


@dataclass
class Observed:
    """What the engine saw the run do: its calls and loads (plain data only)."""

    settings: GenerationSettings | None = None
    path: str | None = None
    pipeline_class: str | None = None
    dtype: str | None = None
    device: str | None = None
    components: tuple[str, ...] = ()
    decode: bool = True
    # The run's first pipeline call and first load, as source (the user's own, before any
    # strategy or replay changed them): what a snippet repeats.
    call: UserCall | None = None
    load: dict[str, Any] | None = None


class _LoadStandIn:
    """Returned by ``from_pretrained`` in a dry run: absorbs setup calls, records the pipeline call."""

    def __init__(self, cls: type, observed: Observed, namespaces: list[dict[str, Any]]) -> None:
        self._cls = cls
        self._observed = observed
        self._namespaces = namespaces

    def to(self, *args: Any, **kwargs: Any) -> _LoadStandIn:
        import torch

        device = kwargs.get("device") or next((a for a in args if not isinstance(a, torch.dtype)), None)
        if device is not None:
            self._observed.device = str(device)
        return self

    def __getattr__(self, name: str) -> Any:
        return _Sink()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        signature = inspect.signature(original_call(self._cls))
        bound = signature.bind(None, *args, **kwargs).arguments
        bound.pop(next(iter(signature.parameters)), None)
        observe_user_call(self._observed, self, bound, self._namespaces)
        observe_call(self._observed, self._cls, bound, self._observed.dtype)
        raise _Captured()


class _Sink:
    def __getattr__(self, name: str) -> _Sink:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> _Sink:
        return self


def resolve_class(cls: type, path: str) -> type:
    """The concrete class ``DiffusionPipeline.from_pretrained(path)`` would build."""
    if "__call__" in cls.__dict__:
        return cls
    try:
        name = json.loads((Path(path) / "model_index.json").read_text())["_class_name"]
        import diffusers

        return getattr(diffusers, name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError):
        return cls  # a hub id or a class the installed diffusers lacks: no signature defaults


def load_path(args: tuple, kwargs: dict) -> str:
    """The folder or hub id of a ``from_pretrained(...)`` call."""
    return str(args[0]) if args else str(kwargs.get("pretrained_model_name_or_path", ""))


def observe_load(observed: Observed, cls: type, args: tuple, kwargs: dict,
                 namespaces: list[dict[str, Any]] | None = None) -> type:
    """Record a load the run makes (the first one wins); returns the class it builds."""
    path = load_path(args, kwargs)
    real = resolve_class(cls, path)
    if observed.load is None:
        observed.load = load_sources(cls.__name__, args[0] if args else path, kwargs, namespaces or ())
    observed.path = observed.path or path
    observed.pipeline_class = observed.pipeline_class or real.__name__
    observed.dtype = observed.dtype or _dtype_from_kwargs(kwargs)
    return real


def observe_user_call(observed: Observed, pipe: Any, kwargs: dict[str, Any],
                      namespaces: list[dict[str, Any]] | None = None) -> None:
    """Record the run's own call as source, the first time only (later ones carry a strategy's changes)."""
    if observed.call is not None:
        return
    namespaces = namespaces or []
    # A pipeline is no literal: its source is the name the notebook binds it to, if any.
    observed.call = UserCall.from_values(source_of(pipe, namespaces) or "pipe", kwargs, namespaces)


def observe_call(observed: Observed, cls: type, kwargs: dict[str, Any], dtype: str | None) -> None:
    """Record a pipeline call the run makes: its settings and whether it decodes."""
    observed.settings = settings_from_call(cls, kwargs, dtype)
    observed.decode = kwargs.get("output_type") != "latent"


def snapshot(namespaces: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(ns, dict(ns)) for ns in namespaces]


def restore_names(bindings: list[tuple[dict[str, Any], dict[str, Any]]], only: Callable[[Any], bool] | None = None) -> None:
    """Put names back as :func:`snapshot` saw them.

    With ``only``, just the names whose current value satisfies it (the pipelines a failed
    attempt loaded); without it, every name the run added or rebound.
    """
    for ns, before in bindings:
        for key, value in list(ns.items()):
            if only is not None and not only(value):
                continue
            if key not in before:
                del ns[key]
            elif value is not before[key]:
                ns[key] = before[key]
        if only is None:
            for key, value in before.items():
                if ns.get(key, _MISSING) is not value:
                    ns[key] = value


def dry_capture(run: Callable[[], Any], namespaces: list[dict[str, Any]], observed: Observed) -> BaseException | None:
    """Run ``run`` until its first pipeline call, loads replaced by a stand-in; record the call.

    Returns the error of a run that failed before reaching a pipeline call (its traceback is
    the caller's to clear), else None. Names the run bound go back to what they were.
    """

    def load(original: Callable[..., Any], cls: type, args: tuple, kwargs: dict) -> Any:
        return _LoadStandIn(observe_load(observed, cls, args, kwargs, namespaces), observed, namespaces)

    def handler(pipe: Any, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        observe_user_call(observed, pipe, kwargs, namespaces)
        observe_call(observed, type(pipe), kwargs, pipeline_dtype(pipe))
        raise _Captured()

    bindings = snapshot(namespaces)
    try:
        with patch_from_pretrained(load), CallInterceptor(handler):
            run()
    except _Captured:
        return None
    except Exception as exc:  # noqa: BLE001 - any failure before the call only means: no settings from it
        return exc
    finally:
        restore_names(bindings)
    return None
