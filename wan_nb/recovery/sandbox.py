"""One attempt's sandbox: patch the loads and calls, apply the strategy, then put everything back.

A :class:`Sandbox` is opened around one run of the user's code under one strategy. It
captures the state of every known pipeline, routes the run's ``from_pretrained`` and
pipeline calls through the strategy (:mod:`wan_nb.recovery.patches`), and on
:meth:`Sandbox.close` restores the pipelines (unless the winner is kept), releases what a
failed attempt loaded, and puts back the names the run bound. :func:`clear_tracebacks` runs
after it: a held traceback keeps its frames, and so their (device) tensors, alive.

How a strategy reaches the pipeline the run uses:

- **the run loads it**: the load gets the strategy's arguments, then its setup; a structural
  strategy builds the pipeline instead (``Strategy.assemble``);
- **an existing pipeline**: set up in place at its first call and restored afterwards, or,
  for a strategy that cannot be undone in place (``fresh_load``), replaced for the attempt by
  a fresh load of its folder that shares the user's light components;
- **call arguments** are changed on the way into ``__call__`` (``Strategy.rewrite_call``).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wan_nb.recovery.observe import (
    Observed,
    load_path,
    observe_call,
    observe_load,
    observe_user_call,
    pipeline_dtype,
    restore_names,
    snapshot,
)
from wan_nb.recovery.patches import CallInterceptor, Loader, guard_to, original_call, patch_from_pretrained
from wan_nb.recovery.records import model_index_components
from wan_nb.recovery.replay import KeptRun, replay_decode, with_kept_embeddings
from wan_nb.settings import GenerationSettings
from wan_nb.strategies import Strategy, StrategyContext, dtype_kwarg_name
from wan_nb.strategies.state import PipelineState, release_caches


@dataclass
class Scope:
    """What every attempt of one recovery shares: the user's pipelines and names, the device."""

    pipelines: list[Any]
    namespaces: list[dict[str, Any]]
    device: str
    settings: GenerationSettings | None = None
    models_dir: str | None = None
    allow_remote_code: bool = False
    observed: Observed = field(default_factory=Observed)
    available: int | None = None  # the plan's memory available, its margin kept free (vae_tiling sizes its tile by it)
    source: str | None = None  # the run's code when it is a notebook cell (its names are the notebook's)

    def remember(self, pipe: Any) -> None:
        if not any(p is pipe for p in self.pipelines):
            self.pipelines.append(pipe)


class Sandbox:
    """The patches and records of one attempt; :meth:`close` undoes them."""

    def __init__(self, scope: Scope, strategy: Strategy | None, changes: dict[str, Any],
                 kept: KeptRun | None = None) -> None:
        self.scope = scope
        self.strategy = strategy
        self.changes = changes
        self.kept = kept
        self.replayed: tuple[str, ...] = ()
        self.saved_seconds: float | None = None
        self.replay_note: str | None = None
        # What the strategy's setup chose by prediction (vae_tiling's tile), shared by every
        # context of this attempt, so that the attempt (and its snippet) says what it ran.
        self.choices: dict[str, Any] = {}
        self.states: dict[int, PipelineState] = {}
        self.targets: dict[int, Any] = {}
        self.loaded: list[Any] = []
        self.fresh: list[Any] = []
        self.meter: Any = None
        self.watched: set[int] = set()
        self.interceptor = CallInterceptor(self._handle)
        self._stack = contextlib.ExitStack()
        self._bindings = snapshot(scope.namespaces)
        self._original_load: Loader | None = None

    # -- setup ---------------------------------------------------------------------------
    def open(self) -> None:
        self._original_load = self._stack.enter_context(patch_from_pretrained(self._load))
        self._stack.enter_context(self.interceptor)
        for pipe in self.scope.pipelines:
            self.states[id(pipe)] = PipelineState.capture(pipe)
            self._guard(pipe)

    def watch(self, meter: Any) -> None:
        """Let ``meter`` see the stages of the known pipelines (and of those the run loads)."""
        self.meter = meter
        for pipe in self.scope.pipelines:
            self._watch(pipe)

    def _watch(self, pipe: Any) -> None:
        if self.meter is not None and id(pipe) not in self.watched:
            self.watched.add(id(pipe))
            self.meter.watch(pipe)

    def context(self, pipe: Any = None, path: str | None = None) -> StrategyContext:
        obs = self.scope.observed
        components = tuple(getattr(pipe, "components", {}) or ()) if pipe is not None else ()
        return StrategyContext(
            device=self.scope.device,
            settings=self.scope.settings,
            dtype=pipeline_dtype(pipe) if pipe is not None else (obs.dtype or "float32"),
            components=components or model_index_components(path or obs.path),
            changes=dict(self.changes),
            models_dir=self.scope.models_dir,
            allow_remote_code=self.scope.allow_remote_code,
            memory_available=self.scope.available,
            choices=self.choices,
        )

    def _guard(self, pipe: Any) -> None:
        """The user's own ``pipe.to(device)`` must not undo the strategy during the attempt."""
        policy = self.strategy.to_policy if self.strategy is not None else None
        if policy:
            guard_to(pipe, policy, lambda p: self.strategy.after_move(p, self.context(p)))

    # -- loads made by the run ---------------------------------------------------------------
    def _load(self, original: Loader, cls: type, args: tuple, kwargs: dict) -> Any:
        observe_load(self.scope.observed, cls, args, kwargs, self.scope.namespaces)
        strategy = self.strategy
        if strategy is not None and strategy.builds_pipeline:
            # A structural attempt: the run's from_pretrained(path) returns what it builds.
            path = load_path(args, kwargs)
            pipe = strategy.assemble(path, kwargs.get("torch_dtype", kwargs.get("dtype")), self.context(path=path))
            return self._adopt(pipe, set_up=False)
        if strategy is not None:
            path = load_path(args, kwargs)
            kwargs = _with_load_kwargs(kwargs, strategy.load_kwargs(self.context(path=path)))
        return self._adopt(original(cls, *args, **kwargs), set_up=True)

    def _adopt(self, pipe: Any, set_up: bool) -> Any:
        self.loaded.append(pipe)
        self.interceptor.cover(type(pipe))
        self.targets[id(pipe)] = pipe
        if self.strategy is not None:
            if set_up:
                self.strategy.setup(pipe, self.context(pipe))
            self._guard(pipe)
        return pipe

    # -- calls ---------------------------------------------------------------------------
    def _prepare(self, pipe: Any) -> Any:
        target = self.targets.get(id(pipe))
        if target is not None:
            return target
        if id(pipe) not in self.states:
            # A pipeline the engine had not found: it is the user's all the same.
            self.states[id(pipe)] = PipelineState.capture(pipe)
            self.scope.remember(pipe)
        target = pipe
        if self.strategy is not None:
            if self.strategy.fresh_load:
                target = self._fresh_copy(pipe)
            else:
                self.strategy.setup(pipe, self.context(pipe))
        self.targets[id(pipe)] = target
        return target

    def _fresh_copy(self, pipe: Any) -> Any:
        import torch

        from wan_nb.memory import _accel

        path = getattr(pipe, "name_or_path", None)
        if not path:
            raise RuntimeError(
                f"`{self.strategy.name}` needs a fresh load of the model folder, and this pipeline was not "
                "loaded from one (its `name_or_path` is empty)."
            )
        ctx = self.context(pipe)
        kwargs: dict[str, Any] = {dtype_kwarg_name(): getattr(torch, ctx.dtype)}
        for name, component in pipe.components.items():
            # Schedulers, tokenizers and processors weigh nothing and may be the user's own
            # (a replaced scheduler): the fresh pipeline shares them.
            if component is not None and not isinstance(component, torch.nn.Module):
                kwargs[name] = component
        kwargs = _with_load_kwargs(kwargs, self.strategy.load_kwargs(ctx))
        # On an accelerator the user's pipeline waits on the CPU, so the fresh load has the
        # device to itself; its state was captured before and is restored after.
        if self.scope.device.split(":", 1)[0] != "cpu":
            for component in pipe.components.values():
                if isinstance(component, torch.nn.Module) and not hasattr(component, "_hf_hook"):
                    component.to("cpu")
            _accel.free_memory(self.scope.device)
        fresh = self._original_load(type(pipe), path, **kwargs)
        self.fresh.append(fresh)
        progress = getattr(pipe, "_progress_bar_config", None)
        if isinstance(progress, dict):
            # The user's set_progress_bar_config (disable=True in a quiet notebook) holds.
            fresh._progress_bar_config = dict(progress)
        self.strategy.setup(fresh, ctx)
        if self.strategy.to_policy != "ignore" and self.scope.device != "cpu":
            fresh.to(self.scope.device)
            self.strategy.after_move(fresh, ctx)
        self.targets[id(fresh)] = fresh
        return fresh

    def _handle(self, pipe: Any, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        observe_user_call(self.scope.observed, pipe, kwargs, self.scope.namespaces)
        target = self._prepare(pipe)
        kept = self._matching_kept(pipe, kwargs)
        if kept is not None:
            self.kept = None  # one call per attempt reuses it
            self.replayed, self.saved_seconds = kept.replayed_stages, kept.saved_seconds()
            if kept.stage == "vae_decode":
                observe_call(self.scope.observed, type(target), kwargs, pipeline_dtype(target))
                self._watch(target)
                return replay_decode(target, kept)
            kwargs = with_kept_embeddings(target, kept, kwargs)
        if self.strategy is not None and self.strategy.rewrites_call:
            kwargs = self.strategy.rewrite_call(target, kwargs, self.context(target))
        observe_call(self.scope.observed, type(target), kwargs, pipeline_dtype(target))
        self._watch(target)
        return self.interceptor.run_direct(target, original_call(type(target)), kwargs)

    def _matching_kept(self, pipe: Any, kwargs: dict[str, Any]) -> KeptRun | None:
        """The kept run this call may reuse, or None (and why not, in :attr:`replay_note`)."""
        kept = self.kept
        if kept is None:
            return None
        if kept.stage == "vae_decode" and (self.strategy is None or not self.strategy.keeps_latents):
            name = self.strategy.name if self.strategy is not None else "the run as it is"
            self.replay_note = (f"`{name}` changes what the denoising computes, so the failed run's latents are not "
                                "what it would decode")
            return None
        if self.strategy is not None and self.strategy.builds_pipeline:
            self.replay_note = f"`{self.strategy.name}` builds another pipeline"
            return None
        why = kept.mismatch(pipe, kwargs)
        if why is not None:
            self.replay_note = f"this call is not the failed one: {why}"
            return None
        self.replay_note = None
        return kept

    # -- teardown ----------------------------------------------------------------------------
    def close(self, keep: bool = False, succeeded: bool = False) -> list[str]:
        """Undo the patches; restore the user's pipelines unless ``keep``; release failed loads."""
        problems: list[str] = []
        self._stack.close()
        made = [*self.loaded, *self.fresh]
        for pipe in made:
            pipe.__dict__.pop("to", None)  # the attempt's guard on a pipeline it made
        if not succeeded:
            # A decode that failed half way leaves the Wan VAE's feature caches full.
            for pipe in [*made, *self.scope.pipelines]:
                release_caches(pipe, after_failure=True)
        for state in self.states.values():
            if keep:
                state.pipe.__dict__.pop("to", None)  # the winner stays; only the guard goes
            else:
                problems += self.strategy.restore(state) if self.strategy is not None else state.restore()
        if not succeeded:
            # Names the run bound to pipelines it loaded go back to what they were, so the
            # failed load is freed even when the run stored it in the notebook's globals.
            loaded = {id(p) for p in self.loaded}
            restore_names(self._bindings, only=lambda value: id(value) in loaded)
        self.fresh.clear()
        self.loaded.clear()
        self.targets.clear()
        return problems


def _with_load_kwargs(kwargs: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` plus a strategy's load arguments; its dtype replaces the user's, under either name."""
    kwargs = dict(kwargs)
    if {"dtype", "torch_dtype"} & set(extra):
        kwargs.pop("dtype", None)
        kwargs.pop("torch_dtype", None)
    kwargs.update(extra)
    return kwargs


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


