"""The :class:`Strategy` record, combinations ("a+b") and the snippet writer."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from wan_nb.libraries import dtype_kwarg_name, version_tuple
from wan_nb.settings import GenerationSettings
from wan_nb.strategies.usercall import UserCall
from wan_nb.vocabulary import STRATEGY_KINDS

QUALITIES = ("unchanged", "changed")


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy needs to know to change a load, a pipeline or a call.

    ``device`` is where the pipeline computes (``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``);
    ``dtype`` the precision it was loaded in (``"float32"`` when unknown: diffusers' default);
    ``components`` the names in ``model_index.json`` (quantization picks among them).
    """

    device: str = "cpu"
    settings: GenerationSettings | None = None
    dtype: str = "float32"
    components: tuple[str, ...] = ()
    changes: dict[str, Any] = field(default_factory=dict)
    # For the structural strategies: where to look for donors, and consent to run the
    # model folder's own code.
    models_dir: str | None = None
    allow_remote_code: bool = False
    # Bytes the call may use on the device, when known (a budget): vae_tiling then picks the
    # largest tile predicted to fit (wan_nb.memory.tiles) instead of a fixed size.
    memory_available: int | None = None
    # What a setup chose by prediction ({"vae_tile": px}), so that a snippet written from the
    # same context carries it. Never call arguments (those are `changes`).
    choices: dict[str, Any] = field(default_factory=dict)
    # The user's own call and load (wan_nb.strategies.usercall), when a snippet repeats them.
    call: UserCall | None = None

    @property
    def device_type(self) -> str:
        return self.device.split(":", 1)[0]


@dataclass
class Code:
    """The source a strategy contributes to a snippet, by place."""

    imports: list[str] = field(default_factory=list)
    load: dict[str, str] = field(default_factory=dict)  # from_pretrained kwarg -> source
    placement: str | None = None  # replaces `pipe.to(device)`; None keeps it
    setup: list[str] = field(default_factory=list)  # lines with {pipe}
    before_call: list[str] = field(default_factory=list)
    call: dict[str, str] = field(default_factory=dict)  # call kwarg -> source
    notes: list[str] = field(default_factory=list)


def _no_load(ctx: StrategyContext) -> dict[str, Any]:
    return {}


def _no_setup(pipe: Any, ctx: StrategyContext) -> None:
    return None


def _no_call(ctx: StrategyContext) -> dict[str, Any]:
    return {}


def _no_code(ctx: StrategyContext) -> Code:
    return Code()


@dataclass(frozen=True)
class Strategy:
    """One fallback (or a combination of them): what it changes, needs and costs.

    The data fields describe it; ``load_kwargs`` / ``apply`` / ``call_kwargs`` /
    ``rewrite_call`` change a load, a loaded pipeline and a call; ``snippet`` writes the
    code a user pastes to do the same by hand.
    """

    name: str
    kind: str
    summary: str
    answers: tuple[str, ...]
    stages: tuple[str, ...]
    limitations: str
    slowdown: str = "none"
    quality: str = "unchanged"
    needs_accelerator: bool = False
    min_accelerators: int = 1
    needs_packages: tuple[str, ...] = ()
    min_diffusers: str | None = None
    degraded: bool = False
    # True when the change cannot be undone in place (weights are cast or re-laid out), so
    # an existing pipeline is left alone and the attempt works on a fresh load of its folder.
    fresh_load: bool = False
    # What a later `pipe.to(device)` in the user's code does during an attempt: "ignore" when
    # the strategy places the models itself (offload hooks, a device map) so the move would
    # undo it, "reapply" when the move is fine but the strategy's pieces go back after it
    # (the text encoder to the CPU), None when it is harmless.
    to_policy: str | None = None
    # True when the strategy leaves the denoising's numbers as they were (it changes where or
    # in what pieces things run, not what is computed): a decode failure's kept latents are
    # then exactly what a full run under it would decode (wan_nb.recovery.replay).
    keeps_latents: bool = False
    cost_rank: int = 0
    parts: tuple[str, ...] = ()
    _load: Callable[[StrategyContext], dict[str, Any]] = field(default=_no_load, compare=False, repr=False)
    _setup: Callable[[Any, StrategyContext], None] = field(default=_no_setup, compare=False, repr=False)
    _call: Callable[[StrategyContext], dict[str, Any]] = field(default=_no_call, compare=False, repr=False)
    _rewrite: Callable[[Any, dict[str, Any], StrategyContext], dict[str, Any]] | None = field(
        default=None, compare=False, repr=False
    )
    _code: Callable[[StrategyContext], Code] = field(default=_no_code, compare=False, repr=False)
    _members: tuple[Strategy, ...] = field(default=(), compare=False, repr=False)
    # Structural strategies: ``_assemble(path, torch_dtype, ctx)`` builds the pipeline a
    # ``from_pretrained(path)`` of the run returns instead; ``_script(ctx, path, pipe_var)``
    # writes their snippet. ``guidance`` ones (upgrade, redownload, another model) never run.
    _assemble: Callable[[str, Any, StrategyContext], Any] | None = field(default=None, compare=False, repr=False)
    _script: Callable[[StrategyContext, str | None, str], str] | None = field(default=None, compare=False,
                                                                              repr=False)
    guidance: bool = False

    def __post_init__(self) -> None:
        if self.kind not in STRATEGY_KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(STRATEGY_KINDS)}, got {self.kind!r}.")
        if self.quality not in QUALITIES:
            raise ValueError(f"`quality` must be one of {', '.join(QUALITIES)}, got {self.quality!r}.")

    # -- structure -----------------------------------------------------------------------
    @property
    def members(self) -> tuple[Strategy, ...]:
        """The single strategies this one is made of (itself when it is not a combination)."""
        return self._members or (self,)

    @property
    def is_combination(self) -> bool:
        return len(self.members) > 1

    @property
    def structural(self) -> bool:
        """True for the strategies that replace the load (or only guide the user)."""
        return self.builds_pipeline or self.guidance

    @property
    def builds_pipeline(self) -> bool:
        """True when the strategy builds the pipeline itself instead of changing a load (:meth:`assemble`)."""
        return self._assemble is not None

    @property
    def changes_output(self) -> bool:
        return self.degraded

    # -- behaviour -----------------------------------------------------------------------
    def load_kwargs(self, ctx: StrategyContext | None = None) -> dict[str, Any]:
        """Keyword arguments to add to ``from_pretrained`` (real objects: dtypes, configs)."""
        ctx = ctx or StrategyContext()
        merged: dict[str, Any] = {}
        for member in self.members:
            merged.update(member._load(ctx))
        return merged

    def setup(self, pipe: Any, ctx: StrategyContext | None = None) -> None:
        """Change a loaded pipeline in place, member by member (no record of the state before)."""
        ctx = ctx or StrategyContext()
        for member in self.members:
            member._setup(pipe, ctx)

    def restore(self, state: Any) -> list[str]:
        """Undo what :meth:`setup` changed, from the state captured before it (what could not be put back)."""
        return state.restore()

    def after_move(self, pipe: Any, ctx: StrategyContext | None = None) -> None:
        """Put this strategy's pieces back after a ``pipe.to(device)`` (``to_policy="reapply"``)."""
        ctx = ctx or StrategyContext()
        for member in self.members:
            if member.to_policy == "reapply":
                member._setup(pipe, ctx)

    def assemble(self, path: str, torch_dtype: Any, ctx: StrategyContext | None = None) -> Any:
        """Build the pipeline for ``path`` (structural strategies; see :attr:`builds_pipeline`)."""
        if self._assemble is None:
            raise TypeError(f"`{self.name}` changes a load; it does not build a pipeline itself.")
        return self._assemble(path, torch_dtype, ctx or StrategyContext())

    def apply(self, pipe: Any, device: str = "cpu", ctx: StrategyContext | None = None) -> Any:
        """Change a loaded pipeline in place; returns the state to restore (``.restore()``).

        The returned :class:`wan_nb.strategies.state.PipelineState` was taken before any
        change, so ``strategy.apply(pipe, "cuda").restore()`` leaves ``pipe`` as it was. Only
        the setup calls run here: a strategy's load arguments (``load_kwargs``) and call
        arguments (``call_kwargs``/``rewrite_call``) belong to the load and the call. For a
        ``fresh_load`` strategy (layerwise casting casts the weights in place) the restore
        puts hooks and dtypes back but cannot bring back the lost precision, and says so;
        ``recover`` therefore applies those to a fresh load of the folder instead.
        """
        from wan_nb.strategies.state import PipelineState

        ctx = ctx or StrategyContext(device=str(device))
        if str(device) != ctx.device:
            ctx = replace(ctx, device=str(device))
        state = PipelineState.capture(pipe)
        self.setup(pipe, ctx)
        return state

    def call_kwargs(self, settings: GenerationSettings | None = None, ctx: StrategyContext | None = None) -> dict[str, Any]:
        """Call arguments this strategy sets (sizes for the reduced-functionality ones)."""
        ctx = ctx or StrategyContext(settings=settings)
        if settings is not None and ctx.settings is None:
            ctx = replace(ctx, settings=settings)
        merged: dict[str, Any] = {}
        for member in self.members:
            merged.update(member._call(ctx))
        return merged

    @property
    def rewrites_call(self) -> bool:
        return any(m._rewrite is not None or m._call is not _no_call for m in self.members)

    def rewrite_call(self, pipe: Any, kwargs: dict[str, Any], ctx: StrategyContext | None = None) -> dict[str, Any]:
        """The keyword arguments of one pipeline call, changed as this strategy needs."""
        ctx = ctx or StrategyContext()
        kwargs = dict(kwargs)
        kwargs.update(ctx.changes or self.call_kwargs(ctx.settings, ctx))
        for member in self.members:
            if member._rewrite is not None:
                kwargs = member._rewrite(pipe, kwargs, ctx)
        return kwargs

    # -- code for the user ---------------------------------------------------------------
    def code(self, ctx: StrategyContext | None = None) -> Code:
        ctx = ctx or StrategyContext(device="cuda")
        total = Code()
        for member in self.members:
            part = member._code(ctx)
            total.imports += [i for i in part.imports if i not in total.imports]
            total.load.update(part.load)
            total.placement = part.placement or total.placement
            total.setup += part.setup
            total.before_call += part.before_call
            total.call.update(part.call)
            total.notes += part.notes
        return total

    def snippet(
        self,
        pipe_var: str = "pipe",
        *,
        path: str | None = None,
        pipeline_class: str | None = None,
        device: str | None = None,
        settings: GenerationSettings | None = None,
        dtype: str | None = None,
        changes: dict[str, Any] | None = None,
        components: tuple[str, ...] = (),
        models_dir: str | None = None,
        choices: dict[str, Any] | None = None,
        call: UserCall | None = None,
    ) -> str:
        """The code a user pastes into their notebook to apply this strategy by hand.

        With ``call`` (the user's own call, :class:`~wan_nb.strategies.usercall.UserCall`) it is
        that call, every argument under the user's names, with the strategy's lines and
        changes; it loads the pipeline again only when the run loaded it or the strategy
        changes the load. Without it: with ``path`` a whole program (load, placement, setup,
        call); without ``path`` lines that change an existing ``pipe`` (loading only when the
        strategy changes the load, ``"path/to/model"`` standing for your folder or hub id).
        With ``settings`` the call line repeats the call's sizes, changed where the strategy
        changes them.
        """
        device = device or "cuda"
        if call is not None:
            pipe_var = call.pipe
        ctx = StrategyContext(device=device, settings=settings, dtype=dtype or "float32",
                              components=tuple(components), changes=dict(changes or {}),
                              models_dir=str(models_dir) if models_dir else None, choices=dict(choices or {}),
                              call=call)
        if self._script is not None:
            return self._script(ctx, path, pipe_var)
        code = self.code(ctx)
        if call is not None:
            return self._user_snippet(code, call, ctx, path, pipeline_class or "DiffusionPipeline")
        load_args = dict(code.load)
        loads = bool(path or load_args)
        if loads and dtype and dtype != "float32" and not ({"dtype", "torch_dtype"} & set(load_args)):
            # Keep the precision the user loaded in: the strategy alone does not change it.
            load_args = {dtype_kwarg_name(): f"torch.{dtype}", **load_args}
        call = dict(code.call)
        if settings is not None:
            sizes = {k: getattr(settings, k) for k in ("height", "width", "num_frames", "num_inference_steps",
                                                         "guidance_scale")}
            call = {**{k: repr(v) for k, v in sizes.items()}, **call}
        sources = [*load_args.values(), *code.setup, *call.values(), *code.before_call, code.placement or ""]
        lines = [f"# wan_nb strategy `{self.name}`: {self.summary}"]
        lines += [f"# {note}" for note in code.notes]
        cls = pipeline_class or "DiffusionPipeline"
        imports = ["import torch"] if any("torch." in s for s in sources) else []
        imports += [f"from diffusers import {cls}"] if loads else []
        imports += code.imports
        if imports:
            lines += ["", *imports]
        lines.append("")
        if loads:
            args = [json.dumps(str(path)) if path else '"path/to/model"']
            args += [f"{k}={v}" for k, v in load_args.items()]
            lines.append(f"{pipe_var} = {cls}.from_pretrained({', '.join(args)})")
        if code.placement is not None:
            lines.append(code.placement.format(pipe=pipe_var))
        elif loads and device != "cpu":
            lines.append(f"{pipe_var}.to({device!r})")
        lines += [line.format(pipe=pipe_var) for line in code.setup]
        if code.before_call or call:
            if lines[-1]:
                lines.append("")
            lines += [line.format(pipe=pipe_var, prompt="prompt", negative_prompt="negative_prompt")
                      for line in code.before_call]
            args = [f"{k}={v}" for k, v in call.items()]
            if "prompt_embeds" not in call:
                args.insert(0, "prompt=prompt")
            lines.append(f"video = {pipe_var}({', '.join(args)}).frames[0]")
        return "\n".join(lines).rstrip() + "\n"

    def _user_snippet(self, code: Code, call: UserCall, ctx: StrategyContext, path: str | None, cls: str) -> str:
        """The user's call (and load, when it must be repeated) with this strategy's code."""
        pipe = call.pipe
        reload = call.loads or bool(code.load) or self.fresh_load
        changed = dict(code.call)
        dropped: set[str] = set()
        if "prompt_embeds" in changed:
            dropped |= {"prompt", "negative_prompt"}  # the embeddings replace the text
        frames = changed.get("num_frames")
        for key in ("video", "mask"):
            if frames is not None and call.arguments.get(key):
                # An input video fixes the clip's length: shorten it with the clip.
                changed[key] = f"list({call.arguments[key]})[:{frames}]"
                if "num_frames" not in call.arguments:
                    changed.pop("num_frames", None)
        fill = {"pipe": pipe, "prompt": call.arguments.get("prompt") or "None",
                "negative_prompt": call.arguments.get("negative_prompt") or "None"}
        body: list[str] = []
        if reload:
            # The pipeline in memory (the user's, or the one the recovery left bound) would
            # otherwise stay alive beside the new one until the load returns.
            body += [f"{pipe} = None  # free the pipeline in memory before loading it again", "gc.collect()"]
            if ctx.device_type == "cuda":
                body.append("torch.cuda.empty_cache()")
        if reload:
            body.append(call.load_line(pipe, cls, path, code.load))
        if code.placement is not None:
            body.append(code.placement.format(pipe=pipe))
        elif reload and ctx.device != "cpu" and "device_map" not in call.load_arguments:
            body.append(f"{pipe}.to({ctx.device!r})")
        body += [line.format(pipe=pipe) for line in code.setup]
        body += [line.format(**fill) for line in code.before_call]
        body.append(call.call_line(pipe, changed, dropped))
        text = "\n".join(body)
        lines = [f"# wan_nb strategy `{self.name}`: {self.summary}"]
        lines += [f"# {note}" for note in code.notes]
        if call.unresolved:
            lines.append(f"# {', '.join(call.unresolved)}: no name in the notebook holds the value passed; put yours there.")
        imports = ["import gc"] if reload else []
        imports += ["import torch"] if "torch." in text else []
        load_class = call.load_class or cls
        if reload and load_class.isidentifier():
            imports.append(f"from diffusers import {load_class}")
        imports += code.imports
        if imports:
            lines += ["", *imports]
        return "\n".join([*lines, "", *body]) + "\n"

    # -- plain data ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "summary": self.summary,
            "answers": list(self.answers),
            "stages": list(self.stages),
            "limitations": self.limitations,
            "slowdown": self.slowdown,
            "quality": self.quality,
            "needs_accelerator": self.needs_accelerator,
            "min_accelerators": self.min_accelerators,
            "needs_packages": list(self.needs_packages),
            "min_diffusers": self.min_diffusers,
            "degraded": self.degraded,
            "fresh_load": self.fresh_load,
            "to_policy": self.to_policy,
            "keeps_latents": self.keeps_latents,
            "parts": list(self.parts or (self.name,)),
            "guidance": self.guidance,
        }


def combine(members: list[Strategy]) -> Strategy:
    """One :class:`Strategy` doing all of ``members`` (already validated), in that order."""
    if len(members) == 1:
        return members[0]
    degraded = any(m.degraded for m in members)
    kinds = {m.kind for m in members}
    kind = "reduced_functionality" if degraded else ("optimization_fallback" if "optimization_fallback" in kinds else members[0].kind)

    def union(attr: str) -> tuple[str, ...]:
        out: list[str] = []
        for m in members:
            out += [x for x in getattr(m, attr) if x not in out]
        return tuple(out)

    versions = [m.min_diffusers for m in members if m.min_diffusers]

    return Strategy(
        name="+".join(m.name for m in members),
        kind=kind,
        summary="; ".join(m.summary.rstrip(".") for m in members) + ".",
        answers=union("answers"),
        stages=union("stages"),
        limitations=" ".join(f"{m.name}: {m.limitations}" for m in members if m.limitations),
        slowdown=" + ".join(f"{s} ({m.name})" for m, s in ((m, m.slowdown) for m in members) if s != "none") or "none",
        quality="changed" if any(m.quality == "changed" for m in members) else "unchanged",
        needs_accelerator=any(m.needs_accelerator for m in members),
        min_accelerators=max(m.min_accelerators for m in members),
        needs_packages=union("needs_packages"),
        min_diffusers=max(versions, key=version_tuple) if versions else None,
        degraded=degraded,
        fresh_load=any(m.fresh_load for m in members),
        to_policy=next((p for p in ("ignore", "reapply") if any(m.to_policy == p for m in members)), None),
        keeps_latents=all(m.keeps_latents for m in members),
        cost_rank=sum(m.cost_rank for m in members) + len(members) - 1,
        parts=tuple(m.name for m in members),
        _members=tuple(members),
    )
