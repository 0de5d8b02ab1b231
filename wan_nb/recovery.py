"""Recover a failing run: try the planned strategies in turn, measure each, keep the first that works.

``recover(run)`` takes a zero-argument callable — a notebook cell, a function that calls a
pipeline — and, for each strategy of the :func:`wan_nb.plan`, applies it, runs ``run``
under the meter (and the budget, when one is given), records an :class:`Attempt`, puts the
pipelines back as they were and frees memory, then stops at the first success (or, with
``explore=True``, tries every candidate predicted to fit so they can be compared).

How a strategy reaches the pipeline the run uses, whatever the run looks like:

- **The run loads it** (``pipe = WanPipeline.from_pretrained(...)``): for the attempt,
  ``DiffusionPipeline.from_pretrained`` adds the strategy's load arguments, then applies its
  setup calls to the new pipeline; on an offloaded pipeline ``pipe.to(device)`` is made
  harmless, so the user's own ``.to("cuda")`` does not undo the offload.
- **The run uses an existing pipeline** (passed as ``pipeline=``, found in ``namespace=``,
  or read by ``run`` from its globals/closure): at its first call in the attempt, the
  strategy is applied in place and undone afterwards. A strategy that cannot be undone in
  place (precision, layerwise casting, quantization, device maps) runs on a fresh load of
  the same folder instead — the user's non-model components (scheduler, tokenizer) are
  reused — and on an accelerator the user's pipeline waits on the CPU meanwhile.
- **Call arguments** (fewer frames, prompt embeddings from a CPU text encoder) are changed
  on the way into the pipeline's ``__call__``: the run's code is not edited.

Settings for the estimates come from, in this order: ``settings=``; the call the run makes
when ``recover`` first runs it as it is (when no ``error`` is passed); or a dry run that
stops at the pipeline call (when an ``error`` is passed) — loading is replaced by a
stand-in there, so it costs no memory; failing all three, diffusers' Wan defaults, and the
plan says so.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wan_nb import _isolation as iso
from wan_nb.planning import NOT_RETRIED, Candidate, Plan, plan
from wan_nb.settings import DTYPE_BYTES, GenerationSettings
from wan_nb.strategies import Strategy, StrategyContext, dtype_kwarg_name, get_strategy
from wan_nb.units import format_bytes

__all__ = ["Attempt", "RecoveryError", "RecoveryReport", "recover", "retry_on_failure"]

STATUSES = ("success", "failed", "skipped", "interrupted")


# -- records -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    """One try of one strategy: what happened, what it cost, measured (and what was predicted)."""

    strategy: str
    status: str
    reason: str = ""
    diagnosis: dict[str, Any] | None = None
    estimated_peak_bytes: int | None = None
    measured_peak_bytes: int | None = None
    baseline_bytes: int | None = None
    by_stage: dict[str, int] = field(default_factory=dict)
    seconds: float | None = None
    error: str | None = None
    error_text: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    restore_problems: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"`status` must be one of {', '.join(STATUSES)}, got {self.status!r}.")

    @property
    def succeeded(self) -> bool:
        return self.status == "success"

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "status": self.status,
            "reason": self.reason,
            "diagnosis": self.diagnosis,
            "estimated_peak_bytes": self.estimated_peak_bytes,
            "measured_peak_bytes": self.measured_peak_bytes,
            "baseline_bytes": self.baseline_bytes,
            "by_stage": dict(self.by_stage),
            "seconds": self.seconds,
            "error": self.error,
            "error_text": self.error_text,
            "changes": dict(self.changes),
            "restore_problems": list(self.restore_problems),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        data = dict(data)
        data["by_stage"] = {str(k): int(v) for k, v in (data.get("by_stage") or {}).items()}
        data["changes"] = dict(data.get("changes") or {})
        data["restore_problems"] = tuple(data.get("restore_problems") or ())
        return cls(**data)


@dataclass(frozen=True, repr=False)
class RecoveryReport:
    """What ``recover`` did: the plan, every attempt, the winner and its code.

    ``attempts[i].estimated_peak_bytes`` is the plan's estimate for the pipeline plus what
    else was in the device's memory when recovery began, so it compares with
    ``measured_peak_bytes`` (the meter's peak of the whole device).
    """

    attempts: tuple[Attempt, ...]
    winner: str | None
    plan: Plan | None
    device: str
    budget_bytes: int | None = None
    available_bytes: int | None = None
    settings: GenerationSettings | None = None
    diagnosis: dict[str, Any] | None = None
    probe: Attempt | None = None
    interrupted: bool = False
    applied: bool = False
    path: str | None = None
    pipeline_class: str | None = None
    dtype: str | None = None
    notes: tuple[str, ...] = ()
    result: Any = field(default=None, compare=False, repr=False)
    models_dir: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.winner is not None or (self.probe is not None and self.probe.succeeded)

    @property
    def winning_attempt(self) -> Attempt | None:
        return next((a for a in self.attempts if a.strategy == self.winner and a.succeeded), None)

    def plot(self):
        """Estimated vs measured peak per strategy and per stage, as a matplotlib Figure."""
        from wan_nb.plots import plot_report

        return plot_report(self)

    def snippet(self, pipe_var: str = "pipe") -> str:
        """The winning strategy's code, for this model, device and settings ("" without a winner)."""
        if self.winner is None:
            return ""
        attempt = self.winning_attempt
        return get_strategy(self.winner).snippet(
            pipe_var,
            path=self.path,
            pipeline_class=self.pipeline_class,
            device=self.device,
            settings=self.settings,
            dtype=self.dtype,
            changes=attempt.changes if attempt else None,
            components=_model_index_components(self.path),
            models_dir=self.models_dir,
        )

    # -- plain data ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "attempts": [a.to_dict() for a in self.attempts],
            "winner": self.winner,
            "plan": self.plan.to_dict() if self.plan else None,
            "device": self.device,
            "budget_bytes": self.budget_bytes,
            "available_bytes": self.available_bytes,
            "settings": self.settings.to_dict() if self.settings else None,
            "diagnosis": self.diagnosis,
            "probe": self.probe.to_dict() if self.probe else None,
            "interrupted": self.interrupted,
            "applied": self.applied,
            "path": self.path,
            "pipeline_class": self.pipeline_class,
            "dtype": self.dtype,
            "notes": list(self.notes),
            "models_dir": self.models_dir,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecoveryReport:
        settings = data.get("settings")
        return cls(
            attempts=tuple(Attempt.from_dict(a) for a in data.get("attempts", ())),
            winner=data.get("winner"),
            plan=Plan.from_dict(data["plan"]) if data.get("plan") else None,
            device=data["device"],
            budget_bytes=data.get("budget_bytes"),
            available_bytes=data.get("available_bytes"),
            settings=GenerationSettings.from_dict(settings) if settings else None,
            diagnosis=data.get("diagnosis"),
            probe=Attempt.from_dict(data["probe"]) if data.get("probe") else None,
            interrupted=bool(data.get("interrupted", False)),
            applied=bool(data.get("applied", False)),
            path=data.get("path"),
            pipeline_class=data.get("pipeline_class"),
            dtype=data.get("dtype"),
            notes=tuple(data.get("notes", ())),
            models_dir=data.get("models_dir"),
        )

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> RecoveryReport:
        return cls.from_dict(json.loads(text))

    def to_frame(self):
        """One row per attempt: strategy, status, estimated and measured peak, seconds, error."""
        import pandas as pd

        rows = [{
            "strategy": a.strategy,
            "status": a.status,
            "estimated_peak_bytes": a.estimated_peak_bytes,
            "measured_peak_bytes": a.measured_peak_bytes,
            "seconds": a.seconds,
            "changes": ", ".join(f"{k}={v}" for k, v in a.changes.items()),
            "category": (a.diagnosis or {}).get("category"),
            "stage": (a.diagnosis or {}).get("stage"),
            "error": a.error,
        } for a in self.attempts]
        return pd.DataFrame(rows, columns=["strategy", "status", "estimated_peak_bytes", "measured_peak_bytes",
                                           "seconds", "changes", "category", "stage", "error"])

    def to_text(self) -> str:
        lines: list[str] = []
        what = (self.diagnosis or {}).get("summary")
        if what:
            lines.append(f"Failure: {what}")
        if self.budget_bytes is not None:
            lines.append(f"Budget: {format_bytes(self.budget_bytes)} on {self.device}")
        if self.probe is not None:
            lines.append(f"As it is: {self.probe.status}" + (f" ({self.probe.error})" if self.probe.error else ""))
        for i, a in enumerate(self.attempts, 1):
            measured = format_bytes(a.measured_peak_bytes) if a.measured_peak_bytes is not None else "—"
            est = format_bytes(a.estimated_peak_bytes) if a.estimated_peak_bytes is not None else "—"
            secs = f"{a.seconds:.1f}s" if a.seconds is not None else "—"
            line = f"  {i}. {a.strategy:<34} {a.status:<11} peak {measured:>11} (est. {est}) {secs}"
            if a.error:
                line += f"  {a.error}"
            lines.append(line)
        if self.winner:
            lines.append(f"Recovered with `{self.winner}`" + (" (kept on the pipeline)." if self.applied else "."))
            lines.append("Paste this to apply it yourself:")
            lines.append(self.snippet())
        elif self.interrupted:
            lines.append("Interrupted: the pipelines were put back as they were.")
        elif self.succeeded:
            lines.append("The run succeeded as it is: no strategy was needed.")
        else:
            lines.append("No strategy recovered the run.")
        if self.plan is not None and not self.winner:
            for c in self.plan.skipped:
                lines.append(f"  not tried: {c.strategy}: {c.skip_reason}")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        state = "interrupted" if self.interrupted else ("recovered" if self.succeeded else "not recovered")
        return (f"<RecoveryReport {state}: winner={self.winner!r}, {len(self.attempts)} attempt(s) "
                f"on {self.device}>")


class RecoveryError(RuntimeError):
    """No strategy recovered the run; ``.report`` says what was tried and why each failed."""

    def __init__(self, report: RecoveryReport) -> None:
        self.report = report
        tried = ", ".join(f"{a.strategy} ({a.status})" for a in report.attempts) or "nothing"
        reason = report.notes[0] if report.notes else "see `.report` for the plan"
        super().__init__(f"wan_nb could not recover the run; tried: {tried}. {reason}")


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
    params = inspect.signature(iso.original_call(cls)).parameters

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
    return GenerationSettings(
        height=int(get("height", defaults.height)),
        width=int(get("width", defaults.width)),
        num_frames=int(get("num_frames", defaults.num_frames)),
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
class _Observed:
    """What the engine saw the run do: its calls and loads (plain data only)."""

    settings: GenerationSettings | None = None
    path: str | None = None
    pipeline_class: str | None = None
    dtype: str | None = None
    device: str | None = None
    components: tuple[str, ...] = ()
    decode: bool = True


class _LoadStandIn:
    """Returned by ``from_pretrained`` in a dry run: absorbs setup calls, records the pipeline call."""

    def __init__(self, cls: type, observed: _Observed) -> None:
        self._cls = cls
        self._observed = observed

    def to(self, *args: Any, **kwargs: Any) -> _LoadStandIn:
        import torch

        device = kwargs.get("device") or next((a for a in args if not isinstance(a, torch.dtype)), None)
        if device is not None:
            self._observed.device = str(device)
        return self

    def __getattr__(self, name: str) -> Any:
        return _Sink()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        signature = inspect.signature(iso.original_call(self._cls))
        bound = signature.bind(None, *args, **kwargs).arguments
        bound.pop(next(iter(signature.parameters)), None)
        self._observed.settings = settings_from_call(self._cls, bound, self._observed.dtype)
        self._observed.decode = bound.get("output_type") != "latent"
        raise _Captured()


class _Sink:
    def __getattr__(self, name: str) -> _Sink:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> _Sink:
        return self


def _resolve_class(cls: type, path: str) -> type:
    """The concrete class ``DiffusionPipeline.from_pretrained(path)`` would build."""
    if "__call__" in cls.__dict__:
        return cls
    try:
        name = json.loads((Path(path) / "model_index.json").read_text())["_class_name"]
        import diffusers

        return getattr(diffusers, name)
    except Exception:  # noqa: BLE001 - a hub id or an unknown class: no signature defaults
        return cls


def _model_index_components(path: str | None) -> tuple[str, ...]:
    if not path:
        return ()
    try:
        data = json.loads((Path(path) / "model_index.json").read_text())
    except Exception:  # noqa: BLE001 - a hub id: unknown until loaded
        return ()
    return tuple(k for k, v in data.items() if not k.startswith("_") and isinstance(v, list) and v[0])


# -- one attempt -----------------------------------------------------------------------------
class _Session:
    """The patches and records of one attempt; ``close()`` undoes them."""

    def __init__(self, engine: _Engine, strategy: Strategy | None, changes: dict[str, Any]) -> None:
        self.engine = engine
        self.strategy = strategy
        self.changes = changes
        self.states: dict[int, iso.PipelineState] = {}
        self.targets: dict[int, Any] = {}
        self.loaded: list[Any] = []
        self.fresh: list[Any] = []
        self.meter: Any = None
        self.watched: set[int] = set()
        self.interceptor = iso.CallInterceptor(self._handle)
        self._stack = contextlib.ExitStack()
        self._bindings: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._original_load: Callable[..., Any] | None = None

    # -- setup -------------------------------------------------------------------------
    def open(self) -> None:
        for ns in self.engine.namespaces:
            self._bindings.append((ns, dict(ns)))
        replace = self._replace_load if self.strategy is not None and self.strategy._assemble else None
        self._original_load = self._stack.enter_context(
            iso.patch_from_pretrained(before=self._before_load, after=self._after_load, replace=replace))
        self._stack.enter_context(self.interceptor)
        policy = self._to_policy()
        for pipe in self.engine.pipelines:
            self.states[id(pipe)] = iso.PipelineState.capture(pipe)
            if policy:
                iso.guard_to(pipe, policy, self._reapply)

    def _ctx(self, pipe: Any = None, path: str | None = None) -> StrategyContext:
        obs = self.engine.observed
        components = tuple(getattr(pipe, "components", {}) or ()) if pipe is not None else ()
        return StrategyContext(
            device=self.engine.device,
            settings=self.engine.settings,
            dtype=pipeline_dtype(pipe) if pipe is not None else (obs.dtype or "float32"),
            components=components or _model_index_components(path or obs.path),
            changes=dict(self.changes),
            models_dir=self.engine.models_dir,
            allow_remote_code=self.engine.allow_remote_code,
            memory_available=self.engine.available,
        )

    def _to_policy(self) -> str | None:
        return self.strategy.to_policy if self.strategy is not None else None

    def _reapply(self, pipe: Any) -> None:
        text_encoder = getattr(pipe, "text_encoder", None)
        if text_encoder is not None:
            text_encoder.to("cpu")

    # -- loads made by the run -------------------------------------------------------------
    def _before_load(self, cls: type, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        path = str(args[0]) if args else str(kwargs.get("pretrained_model_name_or_path", ""))
        obs = self.engine.observed
        obs.path = obs.path or path
        obs.pipeline_class = obs.pipeline_class or _resolve_class(cls, path).__name__
        obs.dtype = obs.dtype or _dtype_from_kwargs(kwargs)
        if self.strategy is None:
            return args, kwargs
        extra = self.strategy.load_kwargs(self._ctx(path=path))
        kwargs = dict(kwargs)
        if {"dtype", "torch_dtype"} & set(extra):
            kwargs.pop("dtype", None)
            kwargs.pop("torch_dtype", None)
        kwargs.update(extra)
        return args, kwargs

    def _replace_load(self, cls: type, args: tuple, kwargs: dict) -> Any:
        """A structural attempt: the run's ``from_pretrained(path)`` returns the pipeline it builds."""
        path = str(args[0]) if args else str(kwargs.get("pretrained_model_name_or_path", ""))
        obs = self.engine.observed
        obs.path = obs.path or path
        obs.pipeline_class = obs.pipeline_class or _resolve_class(cls, path).__name__
        obs.dtype = obs.dtype or _dtype_from_kwargs(kwargs)
        torch_dtype = kwargs.get("torch_dtype", kwargs.get("dtype"))
        pipe = self.strategy._assemble(path, torch_dtype, self._ctx(path=path))
        return self._after_load(pipe, args, kwargs)

    def _after_load(self, pipe: Any, args: tuple, kwargs: dict) -> Any:
        self.loaded.append(pipe)
        self.interceptor.cover(type(pipe))
        self.targets[id(pipe)] = pipe
        if self.strategy is not None:
            ctx = self._ctx(pipe)
            for member in self.strategy.members:
                member._setup(pipe, ctx)
            policy = self._to_policy()
            if policy:
                iso.guard_to(pipe, policy, self._reapply)
        return pipe

    # -- calls --------------------------------------------------------------------------
    def _prepare(self, pipe: Any) -> Any:
        target = self.targets.get(id(pipe))
        if target is not None:
            return target
        if id(pipe) not in self.states:
            # A pipeline the engine had not found: it is the user's all the same.
            self.states[id(pipe)] = iso.PipelineState.capture(pipe)
            self.engine.remember(pipe)
        target = pipe
        if self.strategy is not None:
            if self.strategy.fresh_load:
                target = self._fresh_copy(pipe)
            else:
                ctx = self._ctx(pipe)
                for member in self.strategy.members:
                    member._setup(pipe, ctx)
        self.targets[id(pipe)] = target
        return target

    def _fresh_copy(self, pipe: Any) -> Any:
        import torch

        path = getattr(pipe, "name_or_path", None)
        if not path:
            raise RuntimeError(
                f"`{self.strategy.name}` needs a fresh load of the model folder, and this pipeline was not "
                "loaded from one (its `name_or_path` is empty)."
            )
        ctx = self._ctx(pipe)
        kwargs: dict[str, Any] = {dtype_kwarg_name(): getattr(torch, ctx.dtype)}
        for name, component in pipe.components.items():
            # Schedulers, tokenizers and processors weigh nothing and may be the user's own
            # (a replaced scheduler): the fresh pipeline shares them.
            if component is not None and not isinstance(component, torch.nn.Module):
                kwargs[name] = component
        extra = self.strategy.load_kwargs(ctx)
        if {"dtype", "torch_dtype"} & set(extra):
            kwargs.pop("dtype", None)
            kwargs.pop("torch_dtype", None)
        kwargs.update(extra)
        # On an accelerator the user's pipeline waits on the CPU, so the fresh load has the
        # device to itself; its state was captured before and is restored after.
        if self.engine.device.split(":", 1)[0] != "cpu":
            for component in pipe.components.values():
                if isinstance(component, torch.nn.Module) and not hasattr(component, "_hf_hook"):
                    component.to("cpu")
            iso.free_memory(self.engine.device)
        fresh = self._original_load(type(pipe), path, **kwargs)
        self.fresh.append(fresh)
        progress = getattr(pipe, "_progress_bar_config", None)
        if isinstance(progress, dict):
            # The user's set_progress_bar_config (disable=True in a quiet notebook) holds.
            fresh._progress_bar_config = dict(progress)
        for member in self.strategy.members:
            member._setup(fresh, ctx)
        if self._to_policy() != "ignore" and self.engine.device != "cpu":
            fresh.to(self.engine.device)
            if self._to_policy() == "reapply":
                self._reapply(fresh)
        self.targets[id(fresh)] = fresh
        return fresh

    def _handle(self, pipe: Any, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        target = self._prepare(pipe)
        if self.strategy is not None and self.strategy.rewrites_call:
            kwargs = self.strategy.rewrite_call(target, kwargs, self._ctx(target))
        obs = self.engine.observed
        obs.settings = settings_from_call(type(target), kwargs, pipeline_dtype(target))
        obs.decode = kwargs.get("output_type") != "latent"
        if self.meter is not None and id(target) not in self.watched:
            self.watched.add(id(target))
            self.meter.watch(target)
        return self.interceptor.run_direct(target, iso.original_call(type(target)), kwargs)

    # -- teardown -----------------------------------------------------------------------------
    def close(self, keep: bool = False, succeeded: bool = False) -> list[str]:
        """Undo the patches; restore the user's pipelines unless ``keep``; release failed loads."""
        problems: list[str] = []
        self._stack.close()
        for pipe in [*self.loaded, *self.fresh]:
            pipe.__dict__.pop("to", None)
            if not succeeded:
                for module in iso._modules(pipe).values():
                    iso.drop_caches(module)
        if not succeeded:
            # A decode that failed half way leaves the Wan VAE's feature caches full.
            for pipe in [*self.loaded, *self.fresh, *self.engine.pipelines]:
                clear = getattr(getattr(pipe, "vae", None), "clear_cache", None)
                if callable(clear):
                    with contextlib.suppress(Exception):
                        clear()
        if not keep:
            for state in self.states.values():
                problems += state.restore()
        else:
            for state in self.states.values():
                state.pipe.__dict__.pop("to", None)
        if not succeeded:
            # Names the run bound to pipelines it loaded go back to what they were, so the
            # failed load is freed even when the run stored it in the notebook's globals.
            loaded = {id(p) for p in self.loaded}
            for ns, before in self._bindings:
                for key, value in list(ns.items()):
                    if id(value) in loaded:
                        if key in before:
                            ns[key] = before[key]
                        else:
                            del ns[key]
        self.fresh.clear()
        self.loaded.clear()
        self.targets.clear()
        return problems


# -- the engine ------------------------------------------------------------------------------
class _Engine:
    def __init__(self, run: Callable[[], Any], pipelines: list[Any], namespaces: list[dict[str, Any]],
                 device: str, budget: Any, settings: GenerationSettings | None,
                 models_dir: str | None = None, allow_remote_code: bool = False) -> None:
        self.run = run
        self.models_dir = models_dir
        self.allow_remote_code = allow_remote_code
        self.pipelines = pipelines
        self.namespaces = namespaces
        self.device = device
        self.budget = budget
        self.settings = settings
        self.observed = _Observed()
        self.available: int | None = None  # the plan's memory available (vae_tiling sizes its tile by it)

    def remember(self, pipe: Any) -> None:
        if not any(p is pipe for p in self.pipelines):
            self.pipelines.append(pipe)

    def attempt(self, strategy: Strategy | None, name: str, estimate: int | None, changes: dict[str, Any],
                keep: bool = False, reason: str = "") -> tuple[Attempt, Any, bool]:
        """Run once under ``strategy``; returns (attempt, result, interrupted)."""
        from wan_nb.memory.meter import measure

        session = _Session(self, strategy, changes)
        result = None
        error: BaseException | None = None
        interrupted = False
        meter = None
        start = time.perf_counter()
        try:
            session.open()
            with self._budget():
                with measure(device=self.device) as meter:
                    session.meter = meter
                    for pipe in self.pipelines:
                        session.watched.add(id(pipe))
                        meter.watch(pipe)
                    result = self.run()
        except KeyboardInterrupt as exc:
            interrupted = True
            error = exc
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, diagnosed and undone
            error = exc
        except BaseException:
            # SystemExit and the like end the engine too, with the pipelines put back.
            session.close()
            raise
        seconds = time.perf_counter() - start
        succeeded = error is None
        problems = session.close(keep=keep and succeeded, succeeded=succeeded)
        measured = None
        if meter is not None:
            with contextlib.suppress(RuntimeError):  # the meter never started
                measured = meter.result
        diagnosis = error_line = error_text = None
        if error is not None and not interrupted:
            from wan_nb.diagnose import diagnose

            diagnosis = diagnose(error).to_dict()
        if error is not None:
            message = str(error).strip().splitlines()
            error_line = f"{type(error).__name__}: {message[0]}" if message else type(error).__name__
            error_text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            iso.clear_tracebacks(error)
        if not succeeded:
            result = None
        # The meter and the session hold the attempt's pipelines (a fresh load, a failed
        # load): drop them, and the error, before collecting.
        del error, meter, session
        iso.free_memory(self.device)
        status = "success" if succeeded else ("interrupted" if interrupted else "failed")
        attempt = Attempt(
            strategy=name,
            status=status,
            reason=reason,
            diagnosis=diagnosis,
            estimated_peak_bytes=estimate,
            measured_peak_bytes=measured.peak_bytes if measured else None,
            baseline_bytes=measured.baseline_bytes if measured else None,
            by_stage=dict(measured.by_stage) if measured else {},
            seconds=round(seconds, 4),
            error=error_line,
            error_text=error_text,
            changes=dict(changes),
            restore_problems=tuple(problems),
        )
        return attempt, result, interrupted

    def _budget(self):
        if self.budget is None:
            return contextlib.nullcontext()
        from wan_nb.memory.budget import memory_budget

        return memory_budget(self.budget, device=self.device)

    def dry_capture(self) -> None:
        """Run until the first pipeline call, with loads replaced by a stand-in; record the call."""
        obs = self.observed

        def replace(cls: type, args: tuple, kwargs: dict) -> Any:
            path = str(args[0]) if args else str(kwargs.get("pretrained_model_name_or_path", ""))
            obs.path = obs.path or path
            real = _resolve_class(cls, path)
            obs.pipeline_class = obs.pipeline_class or real.__name__
            obs.dtype = obs.dtype or _dtype_from_kwargs(kwargs)
            return _LoadStandIn(real, obs)

        def handler(pipe: Any, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
            obs.settings = settings_from_call(type(pipe), kwargs, pipeline_dtype(pipe))
            obs.decode = kwargs.get("output_type") != "latent"
            raise _Captured()

        bindings = [(ns, dict(ns)) for ns in self.namespaces]
        try:
            with iso.patch_from_pretrained(replace=replace), iso.CallInterceptor(handler):
                self.run()
        except _Captured:
            pass
        except Exception as exc:  # noqa: BLE001 - a run that fails before its call: no settings from it
            iso.clear_tracebacks(exc)
        finally:
            # Names the dry run bound (to a stand-in) go back to what they were.
            for ns, before in bindings:
                for key in [k for k in ns if k not in before]:
                    del ns[key]
                for key, value in before.items():
                    if ns.get(key, _MISSING) is not value:
                        ns[key] = value


def _default_device(pipelines: list[Any]) -> str:
    for pipe in pipelines:
        offload = pipe.__dict__.get("_offload_device")
        if offload is not None:
            return str(offload)
        try:
            return str(pipe._execution_device)
        except Exception:  # noqa: BLE001
            continue
    import torch

    acc = getattr(torch, "accelerator", None)
    if acc is not None and acc.is_available():
        return str(acc.current_accelerator())
    return "cuda" if torch.cuda.is_available() else "cpu"


def _pipeline_bytes(pipelines: list[Any], device: str) -> int:
    import torch

    kind = torch.device(device).type
    seen: set[int] = set()
    total = 0
    for pipe in pipelines:
        for module in iso._modules(pipe).values():
            for tensor in [*module.parameters(), *module.buffers()]:
                if tensor.device.type != kind:
                    continue
                storage = tensor.untyped_storage()
                if storage.data_ptr() in seen:
                    continue
                seen.add(storage.data_ptr())
                total += storage.nbytes()
    return total


def _live_bytes(device: str) -> int:
    """What the budget will count as in use before the run: all live tensor memory on ``device``."""
    from wan_nb.memory.meter import measure

    with measure(device=device) as m:
        pass
    return int(m.result.baseline_bytes)


def _applied(pipelines: list[Any]) -> tuple[str, ...]:
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


# (folder, model_index.json mtime) -> component report: a notebook recovers the same model
# again and again, and the analysis checks every class against the installed libraries.
_REPORTS: dict[tuple[str, float], Any] = {}


def _report_for(report: Any, path: str | None) -> Any:
    if report is not None and not isinstance(report, (str, Path)):
        return report
    path = str(report) if report is not None else path
    index = Path(path) / "model_index.json" if path else None
    if index is None or not index.is_file():
        return None
    key = (str(Path(path).resolve()), index.stat().st_mtime)
    if key not in _REPORTS:
        try:
            from wan_nb.components import analyze_model_components

            _REPORTS[key] = analyze_model_components(path)
        except Exception:  # noqa: BLE001 - estimates are optional
            return None
    return _REPORTS[key]


def recover(
    run: Callable[[], Any],
    *,
    pipeline: Any = None,
    namespace: dict[str, Any] | None = None,
    error: BaseException | str | None = None,
    diagnosis: Any = None,
    settings: GenerationSettings | None = None,
    report: Any = None,
    budget: str | int | float | None = None,
    device: str | None = None,
    explore: bool = False,
    apply: bool = False,
    allow_degraded: bool = False,
    strategies: list[str] | None = None,
    force: bool = False,
    max_attempts: int | None = None,
    on_start: Callable[[Candidate, int], Any] | None = None,
    on_attempt: Callable[[Attempt], Any] | None = None,
    allow_remote_code: bool = False,
    models_dir: str | os.PathLike[str] | None = None,
) -> RecoveryReport:
    """Rerun ``run`` under the planned strategies until one works; see the module docstring.

    Args:
        run: a zero-argument callable that fails as it is (a cell, a function).
        pipeline: the pipeline(s) the run uses, if it does not load its own.
        namespace: a mapping (``globals()``) to search for pipelines; names the run binds to
            pipelines of a failed attempt are put back afterwards.
        error: the failure (exception or traceback text). Without it, ``run`` is first run
            as it is (``report.probe``) to see how it fails. Its traceback is cleared: its
            frames hold the failed run's tensors.
        diagnosis: a ready :class:`~wan_nb.diagnose.Diagnosis` instead of ``error``.
        settings: the call's :class:`GenerationSettings` (else observed, see above).
        report: a component report or model folder for the estimates (else the pipeline's).
        budget: rehearse a smaller device: every attempt runs under ``memory_budget(budget)``.
        device: where the pipeline computes (default: the pipeline's, else the accelerator).
        explore: try every candidate predicted to fit, not only up to the first success.
        apply: keep the winning strategy on the user's pipeline (in place) afterwards.
        allow_degraded: allow strategies that change the output (fewer frames, lower resolution).
        strategies: consider only these names (or "a+b" combinations).
        force: try ``strategies`` exactly in the given order, without predictions or skips.
        max_attempts: stop after this many attempts.
        on_start: called as ``on_start(candidate, index)`` before each attempt (live displays).
        on_attempt: called with each :class:`Attempt` as it finishes.
        allow_remote_code: consent to run code from the model folder (``remote_code``).
        models_dir: a folder of models to take a missing or damaged component from
            (``component_donor``).

    A structural strategy (``assemble_components``, ``generic_pipeline``, ``remote_code``,
    ``component_donor``) replaces the run's own ``from_pretrained(path)`` for the attempt:
    the call returns the pipeline it builds, in the dtype asked for. The folder is never
    written. Every attempt is recorded in the history (:mod:`wan_nb.history`).
    """
    if not callable(run):
        raise TypeError(f"`run` must be a zero-argument callable (a function or a cell), got {type(run).__name__}.")
    if force and not strategies:
        raise ValueError("`force=True` tries the `strategies` you list, in order: pass `strategies=[...]`.")
    namespaces = [ns for ns in (namespace, getattr(run, "__globals__", None)) if isinstance(ns, dict)]
    pipelines = iso.find_pipelines(pipeline, namespace, run)
    device = str(device or _default_device(pipelines))
    models_dir = str(Path(models_dir).expanduser()) if models_dir is not None else None
    engine = _Engine(run, pipelines, namespaces, device, budget, settings, models_dir, bool(allow_remote_code))
    notes: list[str] = []
    probe = None

    if diagnosis is None and error is not None:
        from wan_nb.diagnose import diagnose

        diagnosis = diagnose(error)
        if isinstance(error, BaseException):
            iso.clear_tracebacks(error)
        error = None
    elif isinstance(diagnosis, dict):
        from wan_nb.diagnose import Diagnosis

        diagnosis = Diagnosis.from_dict(diagnosis)

    interrupted = False
    if getattr(diagnosis, "category", None) in NOT_RETRIED and not force:
        # Nothing will be tried: do not run any of the user's code again.
        notes.append(NOT_RETRIED[diagnosis.category])
        return _finish(engine, (), None, None, diagnosis, None, False, False, notes, None, budget)
    # Whatever the failed run left (a pipeline in a reference cycle, a half-full VAE cache)
    # goes before anything is measured.
    _free_leftovers(engine)
    if diagnosis is None:
        # How does it fail? Run it as it is; that run also shows what it loads and asks for.
        probe, result, interrupted = engine.attempt(None, "as_is", None, {}, reason="the run as it is")
        _notify(on_attempt, probe)
        if probe.succeeded or interrupted:
            return _finish(engine, (), None, None, diagnosis, probe, interrupted, False,
                           ["The run succeeded as it is: no strategy was needed."] if probe.succeeded else [],
                           result, budget)
        from wan_nb.diagnose import Diagnosis

        diagnosis = Diagnosis.from_dict(probe.diagnosis) if probe.diagnosis else None
    else:
        # A dry run (loads replaced by a stand-in, stopped at the pipeline call) says which
        # folder the run loads and what it asks for, at no memory cost.
        engine.dry_capture()
    released = _release_leftovers(engine, explicit=iso.find_pipelines(pipeline))
    if released:
        notes += released
        _free_leftovers(engine)

    engine.settings = engine.settings or engine.observed.settings
    first = pipelines[0] if pipelines else None
    path = (getattr(first, "name_or_path", None) if first is not None else None) or engine.observed.path
    dtype = pipeline_dtype(first) if first is not None else engine.observed.dtype
    if engine.settings is not None and dtype and engine.settings.dtype != dtype:
        engine.settings = engine.settings.replace(dtype=dtype)
    component_report = _report_for(report, path)

    held = _pipeline_bytes(pipelines, device) if pipelines else 0
    resident = max(0, _live_bytes(device) - held)
    the_plan = plan(
        diagnosis, component_report, engine.settings, device, budget,
        allow_degraded=allow_degraded or force,
        strategies=strategies,
        resident_bytes=resident if budget is not None else 0,
        pipeline_bytes=held,
        applied=() if force else _applied(pipelines),
        fresh_load_possible=bool(path) or not pipelines,
        decode=engine.observed.decode,
        allow_remote_code=bool(allow_remote_code),
        models_dir=models_dir,
    )
    # vae_tiling sizes its tile for the memory there is, where that is known: a budget, or an
    # accelerator's free memory (a budget's ballast included). A CPU's free host memory says
    # nothing of a budget the cell sets itself, so there the strategy keeps its fixed tiles.
    known = the_plan.budget_bytes is not None or device.split(":", 1)[0] != "cpu"
    engine.available = (int(the_plan.available_bytes * (1.0 - the_plan.margin))  # the plan's margin kept free
                        if known and the_plan.available_bytes is not None else None)
    if force and the_plan.category in NOT_RETRIED:
        candidates = [Candidate(strategy=get_strategy(s).name, kind=get_strategy(s).kind, status="planned",
                                reason="given with force=True") for s in strategies]
    elif force:
        candidates = [c if c.planned else Candidate(**{**c.to_dict(), "status": "planned", "skip_reason": None})
                      for c in (the_plan.candidate(get_strategy(s).name) for s in strategies)]
    else:
        candidates = list(the_plan.planned)
    notes += list(the_plan.notes)

    attempts: list[Attempt] = []
    winner = None
    result = None
    applied = False
    try:
        for index, candidate in enumerate(candidates):
            if max_attempts is not None and len(attempts) >= max_attempts:
                notes.append(f"Stopped after {max_attempts} attempt(s) (`max_attempts`).")
                break
            _notify(on_start, candidate, index)
            strategy = get_strategy(candidate.strategy)
            if strategy.guidance:
                notes.append(f"`{strategy.name}` is guidance only: {candidate.skip_reason or strategy.summary}")
                continue
            # Only an in-place change can stay on the user's pipeline; a fresh load or a
            # changed call is the snippet's job.
            keep = (apply and not explore and not strategy.fresh_load and not strategy.rewrites_call
                    and not strategy.structural)
            # The plan estimates the pipeline's own memory; what else lives on the device
            # comes on top, so the attempt's estimate compares with its measured peak.
            estimate = None if candidate.estimated_peak_bytes is None else candidate.estimated_peak_bytes + resident
            attempt, value, interrupted = engine.attempt(
                strategy, candidate.strategy, estimate, dict(candidate.changes), keep=keep, reason=candidate.reason)
            attempts.append(attempt)
            _notify(on_attempt, attempt)
            if interrupted:
                break
            _record(engine, attempt, diagnosis, the_plan, device)
            if attempt.succeeded and winner is None:
                winner, result, applied = candidate.strategy, value, keep
                if not explore:
                    break
            category = (attempt.diagnosis or {}).get("category")
            if category == "accelerator_fault":
                notes.append(NOT_RETRIED["accelerator_fault"])
                break
    except KeyboardInterrupt:
        interrupted = True
    if winner and apply and not applied and not interrupted:
        changes = next(a.changes for a in attempts if a.strategy == winner and a.succeeded)
        applied = _keep_winner(engine, get_strategy(winner), changes, notes)
    if not winner and not interrupted and not attempts:
        notes.append(_nothing_to_try(the_plan))
    return _finish(engine, tuple(attempts), winner, the_plan, diagnosis, probe, interrupted, applied, notes, result,
                   budget)


def _free_leftovers(engine: _Engine) -> None:
    for pipe in engine.pipelines:
        for module in iso._modules(pipe).values():
            iso.drop_caches(module)
    iso.free_memory(engine.device)


def _same_folder(a: Any, b: Any) -> bool:
    try:
        return bool(a) and bool(b) and Path(str(a)).resolve() == Path(str(b)).resolve()
    except OSError:
        return str(a) == str(b)


def _release_leftovers(engine: _Engine, explicit: list[Any]) -> list[str]:
    """Unbind pipelines the failed run itself loaded, so the retries have their memory.

    A cell such as ``pipe = WanPipeline.from_pretrained(p).to("cuda"); pipe(...)`` that
    failed in the call leaves ``pipe`` bound to a full pipeline; rerunning the cell would
    load a second one beside it. A pipeline loaded from the folder the run loads, bound in
    ``namespace`` or the run's globals, and not passed as ``pipeline=``, is that leftover:
    its names are removed (the run binds them again when it succeeds).
    """
    path = engine.observed.path
    if not path:
        return []
    stale = [p for p in engine.pipelines
             if _same_folder(getattr(p, "name_or_path", None), path) and not any(p is e for e in explicit)]
    notes = []
    for pipe in stale:
        engine.pipelines.remove(pipe)
        for ns in engine.namespaces:
            for key in [k for k, v in ns.items() if v is pipe]:
                del ns[key]
                notes.append(f"`{key}` held the pipeline the failed run had loaded from {path}; it was unbound "
                             "so the retries have its memory (the run binds it again).")
    return notes


def _keep_winner(engine: _Engine, strategy: Strategy, changes: dict[str, Any], notes: list[str]) -> bool:
    """Apply ``strategy`` to the user's pipelines for good (after ``explore``)."""
    if strategy.fresh_load or strategy.rewrites_call or strategy.structural:
        notes.append(f"`{strategy.name}` changes the load or the call, which wan_nb cannot keep on an existing "
                     "pipeline: use the snippet.")
        return False
    ctx = StrategyContext(device=engine.device, settings=engine.settings, changes=dict(changes))
    for pipe in engine.pipelines:
        for member in strategy.members:
            member._setup(pipe, ctx)
    return bool(engine.pipelines)


def _record(engine: _Engine, attempt: Attempt, diagnosis: Any, the_plan: Plan, device: str) -> None:
    """One attempt into the history file (``$WAN_NB_HISTORY``), for the plans to come."""
    from wan_nb.history import HistoryRecord, record_attempt

    diag = diagnosis.to_dict() if hasattr(diagnosis, "to_dict") else dict(diagnosis or {})
    first = engine.pipelines[0] if engine.pipelines else None
    try:
        record_attempt(HistoryRecord(
            strategy=attempt.strategy,
            category=diag.get("category") or the_plan.category or "unknown",
            success=attempt.succeeded,
            stage=diag.get("stage") or "unknown",
            model_class=type(first).__name__ if first is not None else engine.observed.pipeline_class,
            estimated_peak=attempt.estimated_peak_bytes,
            measured_peak=attempt.measured_peak_bytes,
            available=the_plan.available_bytes,
            failure=(attempt.diagnosis or {}).get("category"),
            device=device,
            time=time.time(),
        ))
    except Exception as exc:  # noqa: BLE001 - the history must never break a recovery
        warnings.warn(f"wan_nb could not record the attempt: {exc}", stacklevel=2)


def _nothing_to_try(the_plan: Plan) -> str:
    if the_plan.category in NOT_RETRIED:
        return NOT_RETRIED[the_plan.category]
    degraded = [c for c in the_plan.skipped if c.degraded and c.fit in ("fits", "tight")]
    if degraded:
        c = degraded[0]
        what = ", ".join(f"{k}={v}" for k, v in c.changes.items())
        return (f"Nothing that keeps the output unchanged is predicted to fit; `{c.strategy}` would ({what}) "
                "but changes the output: rerun with allow_degraded=True to allow it.")
    if the_plan.candidates:
        return "Every candidate was skipped; the plan says why for each."
    return f"No strategy answers `{the_plan.category}`."


def _finish(engine: _Engine, attempts: tuple[Attempt, ...], winner: str | None, the_plan: Plan | None,
            diagnosis: Any, probe: Attempt | None, interrupted: bool, applied: bool, notes: list[str], result: Any,
            budget: Any) -> RecoveryReport:
    first = engine.pipelines[0] if engine.pipelines else None
    obs = engine.observed
    path = (getattr(first, "name_or_path", None) if first is not None else None) or obs.path
    cls = type(first).__name__ if first is not None else obs.pipeline_class
    dtype = pipeline_dtype(first) if first is not None else obs.dtype
    if isinstance(diagnosis, dict):
        diag = diagnosis
    else:
        diag = diagnosis.to_dict() if diagnosis is not None else None
    return RecoveryReport(
        attempts=attempts,
        winner=winner,
        plan=the_plan,
        device=engine.device,
        budget_bytes=the_plan.budget_bytes if the_plan else _budget_bytes(budget),
        available_bytes=the_plan.available_bytes if the_plan else None,
        settings=engine.settings,
        diagnosis=diag,
        probe=probe,
        interrupted=interrupted,
        applied=applied,
        path=str(path) if path else None,
        pipeline_class=cls,
        dtype=dtype,
        notes=tuple(dict.fromkeys(notes)),
        result=result,
        models_dir=engine.models_dir,
    )


def _budget_bytes(budget: Any) -> int | None:
    if budget is None or isinstance(budget, float):
        return None  # a fraction: its bytes depend on the device, and no plan resolved it
    from wan_nb.units import parse_bytes

    return parse_bytes(budget)


def _notify(callback: Callable[..., Any] | None, *args: Any) -> None:
    if callback is None:
        return
    try:
        callback(*args)
    except Exception as exc:  # noqa: BLE001 - a broken display must not stop a recovery
        warnings.warn(f"wan_nb: the recovery callback {callback!r} failed: {exc}", RuntimeWarning, stacklevel=3)


# -- the script entry point -------------------------------------------------------------------
def retry_on_failure(function: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Run ``function``; when it fails in a way a strategy can fix, rerun it under the plan.

    In the spirit of accelerate's ``find_executable_batch_size``, for scripts::

        @retry_on_failure                      # or @retry_on_failure(budget="12GiB", allow_degraded=True)
        def generate(prompt):
            return pipe(prompt, num_frames=81).frames[0]

        video = generate("a cat")              # the winner's result; generate.last_report says how

    ``options`` are :func:`recover`'s keyword arguments. The first call runs as it is (under
    ``budget`` when given). An error no strategy answers (a bug in the function, a broken
    accelerator) is re-raised unchanged; when every strategy fails, :class:`RecoveryError`
    carries the report; Ctrl-C restores the pipelines and re-raises ``KeyboardInterrupt``.
    """
    unknown = set(options) - set(inspect.signature(recover).parameters) - {"run"}
    if unknown:
        raise TypeError(f"retry_on_failure() got unknown option(s) {', '.join(sorted(unknown))}; "
                        "it accepts recover()'s keyword arguments.")
    if "run" in options or "error" in options or "diagnosis" in options:
        raise TypeError("retry_on_failure() supplies `run` and the error itself; do not pass them.")
    if function is None:
        return functools.partial(retry_on_failure, **options)
    if not callable(function):
        raise TypeError(f"retry_on_failure() decorates a function, got {type(function).__name__}.")

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        budget = options.get("budget")
        try:
            if budget is not None:
                from wan_nb.memory.budget import memory_budget

                with memory_budget(budget, device=options.get("device")):
                    return function(*args, **kwargs)
            return function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - decided below: recover or re-raise as it was
            from wan_nb.diagnose import diagnose

            found = diagnose(exc)
            if found.category in NOT_RETRIED or not _answerable(found.category):
                raise
            iso.clear_tracebacks(exc)
            del exc
        report = recover(lambda: function(*args, **kwargs), diagnosis=found,
                         pipeline=options.get("pipeline"), **{k: v for k, v in options.items() if k != "pipeline"})
        wrapper.last_report = report  # type: ignore[attr-defined]
        if report.interrupted:
            raise KeyboardInterrupt("wan_nb recovery interrupted; the pipelines were restored.")
        if not report.succeeded:
            raise RecoveryError(report)
        return report.result

    wrapper.last_report = None  # type: ignore[attr-defined]
    return wrapper


def _answerable(category: str) -> bool:
    from wan_nb.strategies import STRATEGIES

    return any(category in s.answers for s in STRATEGIES.values())
