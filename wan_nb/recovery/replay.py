"""Replay: what a failed run leaves to reuse, so a retry redoes only the stage that failed.

A run that ran out of memory inside the VAE decode has already denoised: the argument of
``vae.decode`` is exactly what a retry needs (a few MB even for 81 frames at 720P, see
DESIGN.md "Where a Wan pipeline decodes"). A run that failed while denoising has already
encoded its prompt. :func:`keep_from_error` takes those tensors from the exception's frames,
*before* the frames are cleared, copies them to host memory and keeps them in a
:class:`KeptRun` together with a fingerprint of the call.

During a retry the cell still runs as written, so its later lines run and its variables are
set; only the pipeline call that matches the failed one (:meth:`KeptRun.mismatch`) is
changed: after a decode failure it does not denoise, the kept latents are decoded under the
strategy and post-processed as the pipeline does (:func:`replay_decode`); after a denoising
failure it gets the kept prompt embeddings instead of the prompt (:func:`with_kept_embeddings`),
so the text encoder never runs again.

Only pipelines whose ``__call__`` ends the way diffusers' Wan pipelines do (``video =
self.vae.decode(latents, return_dict=False)[0]`` then ``postprocess_video``) are replayed;
any other call runs in full, and the attempt says why.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
import weakref
from dataclasses import dataclass, field
from functools import cache
from typing import Any

__all__ = ["KeptRun", "keep_from_error", "replay_decode", "with_kept_embeddings"]

# What the pipelines of DESIGN.md do after the denoising loop; a __call__ without both is not replayed.
_DECODE_LINE = "self.vae.decode(latents, return_dict=False)[0]"
_POSTPROCESS_LINE = "self.video_processor.postprocess_video(video, output_type=output_type)"
# Call arguments that decide the prompt embeddings.
_PROMPT_ARGS = ("prompt", "negative_prompt", "max_sequence_length")
_EMBEDDING_ARGS = ("prompt_embeds", "negative_prompt_embeds", "image_embeds")
# Stages a decode replay skips / an embeddings replay skips.
_BEFORE_DECODE = ("unknown", "text_encode", "preprocess", "vae_encode", "denoise")


@dataclass
class KeptRun:
    """What one failed pipeline call left: its stage, its call's fingerprint, tensors on the host."""

    stage: str  # "vae_decode" (latents kept) or "denoise" (prompt embeddings kept)
    pipeline_class: str
    path: str | None
    dtype: str | None
    fingerprint: dict[str, Any]  # argument -> comparable value (see _fingerprint)
    unknown_args: tuple[str, ...]  # arguments the pipeline reassigns, so their call value is unknown
    latents: Any = None  # the argument of vae.decode, on the CPU
    embeddings: dict[str, Any] = field(default_factory=dict)  # prompt_embeds & co., on the CPU
    output_type: str = "np"
    return_dict: bool = True
    seconds: float | None = None  # the failed run's time up to the failure, when known
    stage_seconds: dict[str, float] = field(default_factory=dict)  # measured per stage, when it ran under the meter
    _pipe: Any = field(default=None, repr=False)  # weakref to the failed run's pipeline

    @property
    def replayed_stages(self) -> tuple[str, ...]:
        """The stages a replay does not run again."""
        return ("text_encode", "denoise") if self.stage == "vae_decode" else ("text_encode",)

    def saved_seconds(self) -> float | None:
        """Measured time of the skipped stages; else, for a decode replay, the time up to the failure."""
        skipped = _BEFORE_DECODE if self.stage == "vae_decode" else ("text_encode",)
        if self.stage_seconds:
            return round(sum(v for k, v in self.stage_seconds.items() if k in skipped), 4)
        if self.stage == "vae_decode" and self.seconds is not None:
            return round(self.seconds, 4)
        return None

    def mismatch(self, pipe: Any, kwargs: dict[str, Any]) -> str | None:
        """Why the call ``pipe(**kwargs)`` is not the failed one (None when it is)."""
        same_object = self._pipe is not None and self._pipe() is pipe
        if not same_object:
            path = getattr(pipe, "name_or_path", None)
            if type(pipe).__name__ != self.pipeline_class or not path or path != self.path:
                return f"the call is on another pipeline than the failed one ({self.pipeline_class} from {self.path})"
            from wan_nb.recovery.observe import pipeline_dtype

            if self.stage == "vae_decode" and pipeline_dtype(pipe) != self.dtype:
                return f"the pipeline computes in {pipeline_dtype(pipe)}, the failed run in {self.dtype}"
        kwargs = _with_defaults(type(pipe), kwargs)
        names = _PROMPT_ARGS if self.stage == "denoise" else tuple(self.fingerprint)
        for name in names:
            if name in self.fingerprint and _fingerprint(kwargs.get(name)) != self.fingerprint[name]:
                return f"`{name}` differs from the failed call"
        if self.stage == "vae_decode":
            given = [n for n in self.unknown_args if kwargs.get(n) is not None]
            if given:
                return (f"the call passes `{given[0]}`, which the pipeline replaces while it runs, so wan_nb cannot "
                        "tell whether it is the failed call's")
        return None


def keep_from_error(error: BaseException, *, seconds: float | None = None,
                    stage_seconds: dict[str, float] | None = None) -> KeptRun | None:
    """What the failed call in ``error``'s frames left to reuse; None when there is nothing.

    Call it before the traceback is cleared. The tensors are copied to the CPU, so the kept
    run pins no accelerator memory.
    """
    frames = _frames(error)
    call = next((f for f in reversed(frames) if _is_pipeline_call(f)), None)
    if call is None:
        return None
    pipe = call.f_locals.get("self")
    local = call.f_locals
    vae = getattr(pipe, "vae", None)
    decode = next((f for f in frames if f.f_code.co_name == "decode" and vae is not None
                   and f.f_locals.get("self") is vae), None)
    shape = _call_shape(type(pipe))
    if shape is None:
        return None
    params, reassigned, decodes_like_wan, replaced_inputs = shape
    if decode is not None and decodes_like_wan and _is_tensor(decode.f_locals.get("z")):
        stage, latents, embeddings = "vae_decode", decode.f_locals["z"].detach().to("cpu", copy=True), {}
    elif decode is None and "timesteps" in local and _is_tensor(local.get("prompt_embeds")):
        if (local.get("num_videos_per_prompt") or 1) != 1 or _batch(local) != 1:
            return None  # kept embeddings already hold the repeated rows: passing them back would repeat again
        stage, latents = "denoise", None
        embeddings = {n: local[n].detach().to("cpu", copy=True) for n in _EMBEDDING_ARGS if _is_tensor(local.get(n))}
    else:
        return None
    from wan_nb.recovery.observe import pipeline_dtype

    fingerprint = {n: _fingerprint(local.get(n)) for n in params if n not in reassigned and n in local}
    return KeptRun(
        stage=stage,
        pipeline_class=type(pipe).__name__,
        path=getattr(pipe, "name_or_path", None) or None,
        dtype=pipeline_dtype(pipe),
        fingerprint=fingerprint,
        unknown_args=tuple(n for n in params if n in replaced_inputs),
        latents=latents,
        embeddings=embeddings,
        output_type=local.get("output_type") or "np",
        return_dict=bool(local.get("return_dict", True)),
        seconds=seconds,
        stage_seconds=dict(stage_seconds or {}),
        _pipe=weakref.ref(pipe),
    )


def replay_decode(pipe: Any, kept: KeptRun) -> Any:
    """The call's result from the kept latents: decode, post-process, free hooks, as the pipeline does."""
    import torch

    vae = pipe.vae
    with torch.no_grad():
        latents = kept.latents.to(_vae_device(pipe), dtype=vae.dtype)
        video = vae.decode(latents, return_dict=False)[0]
        video = pipe.video_processor.postprocess_video(video, output_type=kept.output_type)
    pipe.maybe_free_model_hooks()
    if not kept.return_dict:
        return (video,)
    return _output_class(type(pipe))(frames=video)


def with_kept_embeddings(pipe: Any, kept: KeptRun, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments with the kept prompt embeddings in place of the prompt (cast to the pipeline)."""
    import torch

    denoiser = getattr(pipe, "transformer", None) or getattr(pipe, "transformer_2", None)
    dtype = getattr(denoiser, "dtype", None) or torch.float32
    device = pipe._execution_device
    kwargs = dict(kwargs)
    kwargs["prompt"] = None
    kwargs["negative_prompt"] = None
    for name, tensor in kept.embeddings.items():
        if name == "image_embeds" and kwargs.get("image") is not None:
            # Wan I2V refuses `image` beside `image_embeds` ("Cannot forward both") and needs the
            # image itself for its condition frame: its image encoder runs again instead.
            continue
        kwargs[name] = tensor.to(device, dtype=dtype)
    return kwargs


# -- reading the frames -----------------------------------------------------------------------
def _frames(error: BaseException) -> list[Any]:
    """Every frame of the error's traceback (and of the errors it chains), outermost first."""
    out: list[Any] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        tb = error.__traceback__
        while tb is not None:
            out.append(tb.tb_frame)
            tb = tb.tb_next
        error = error.__cause__ or error.__context__
    return out


def _is_pipeline_call(frame: Any) -> bool:
    if frame.f_code.co_name != "__call__":
        return False
    from wan_nb.recovery.patches import is_pipeline_class

    return is_pipeline_class(type(frame.f_locals.get("self")))


def _is_tensor(value: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _batch(local: dict[str, Any]) -> int:
    prompt = local.get("prompt")
    return len(prompt) if isinstance(prompt, (list, tuple)) else 1


@cache
def _call_shape(cls: type) -> tuple[tuple[str, ...], frozenset[str], bool, frozenset[str]] | None:
    """(parameters, those the body reassigns, whether it decodes as Wan does, optional inputs it replaces)."""
    from wan_nb.recovery.patches import original_call

    call = original_call(cls)
    try:
        source = textwrap.dedent(inspect.getsource(call))
    except (OSError, TypeError):
        return None  # no source to read: such a call is never replayed
    tree = ast.parse(source)
    function = tree.body[0]
    signature = inspect.signature(call).parameters
    params = tuple(p for p in signature if p != "self")
    assigned: set[str] = set()
    for node in ast.walk(function):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For)):
            targets = [node.target]
        for target in targets:
            assigned |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    decodes = _DECODE_LINE in source and _POSTPROCESS_LINE in source
    # An optional tensor input the body replaces (latents, prompt_embeds) is unknown from the
    # frame; a value the body only corrects (num_frames to 4k + 1, guidance_scale_2 from
    # guidance_scale) is left out of the comparison.
    reassigned = frozenset(p for p in params if p in assigned)
    replaced = frozenset(p for p in reassigned if signature[p].default is None and "Tensor" in str(signature[p].annotation))
    return params, reassigned, decodes, replaced


def _with_defaults(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments with the signature's defaults for those not passed (as the frame holds them)."""
    from wan_nb.recovery.patches import original_call

    signature = inspect.signature(original_call(cls)).parameters
    filled = {n: p.default for n, p in signature.items() if p.default is not inspect.Parameter.empty}
    filled.update(kwargs)
    return filled


def _fingerprint(value: Any) -> Any:
    """A comparable stand-in for a call argument: equal for equal inputs, cheap, holding no tensor."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(_fingerprint(v) for v in value))
    if isinstance(value, dict):
        return ("map", tuple(sorted((str(k), _fingerprint(v)) for k, v in value.items())))
    kind = type(value).__name__
    if kind == "Generator" and hasattr(value, "initial_seed"):
        # A fresh generator with the same seed draws the same noise as the failed run's did.
        return ("generator", str(value.device), int(value.initial_seed()))
    if _is_tensor(value):
        import torch

        data = value.detach().to("cpu").contiguous().reshape(-1)
        digest = hashlib.sha1(data.view(torch.uint8).numpy().tobytes()).hexdigest() if data.numel() else ""
        return ("tensor", tuple(value.shape), str(value.dtype), digest)
    if hasattr(value, "tobytes") and hasattr(value, "size") and hasattr(value, "mode"):  # a PIL image
        return ("image", value.size, value.mode, hashlib.sha1(value.tobytes()).hexdigest())
    if hasattr(value, "tobytes") and hasattr(value, "shape"):  # a numpy array
        return ("array", tuple(value.shape), str(getattr(value, "dtype", "")), hashlib.sha1(value.tobytes()).hexdigest())
    return ("object", kind, id(value))  # callbacks and the like: the same object, or not the same call


def _vae_device(pipe: Any) -> Any:
    """Where the pipeline itself would put the latents before decoding."""
    vae = pipe.vae
    if hasattr(vae, "_hf_hook") or pipe.__dict__.get("_all_hooks"):
        return pipe._execution_device  # an offloaded VAE comes to the execution device when called
    try:
        from diffusers.utils.torch_utils import get_module_execution_device  # diffusers >= 0.36
    except ImportError:
        return next(vae.parameters()).device
    return get_module_execution_device(vae)


@cache
def _output_class(cls: type) -> type:
    import sys

    module = sys.modules[cls.__module__]
    for name, value in vars(module).items():
        if name.endswith("PipelineOutput") and isinstance(value, type):
            return value
    raise TypeError(f"{cls.__name__}'s module has no *PipelineOutput class to return the frames in.")
