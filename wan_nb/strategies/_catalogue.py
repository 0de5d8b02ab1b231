"""The memory and reduced-functionality strategies, built on diffusers' own APIs.

Longer than most modules because it is data: one entry per strategy with its small setup, load and snippet functions beside it.

Each entry is data (what it answers, needs, costs) plus small functions: the load
arguments, the setup calls on a loaded pipeline, the call arguments and the code to paste.
Costs are words, not numbers: a number appears only where it was measured or follows from
the arithmetic (two bytes instead of four).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from wan_nb import geometry as sizes
from wan_nb.libraries import dtype_kwarg_name
from wan_nb.strategies._base import Code, Strategy, StrategyContext

_OOM = ("out_of_memory",)
_OOM_HOST = ("out_of_memory", "host_out_of_memory")
_MODEL_STAGES = ("load", "to_device", "text_encode", "denoise", "vae_decode", "vae_encode")


# -- helpers ------------------------------------------------------------------------------
def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def half_dtype(device: str) -> str:
    """bfloat16 where the device computes it natively, float16 otherwise (older GPUs, MPS)."""
    kind = device.split(":", 1)[0]
    if kind == "mps":
        return "float16"
    if kind == "cuda":
        import torch

        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            return "float16"
    return "bfloat16"


def _denoisers(pipe: Any) -> list[Any]:
    return [m for m in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if m is not None]


def _device_arg(ctx: StrategyContext) -> str:
    """The `device=` source for diffusers' offload calls; empty where its default is right."""
    return "" if ctx.device in ("cuda", "cuda:0") else f"device={ctx.device!r}"


# -- vae_tiling ---------------------------------------------------------------------------
def tiling_kwargs(ctx: StrategyContext, spatial: int = 8) -> dict[str, int]:
    """Tile sizes for ``vae.enable_tiling``: the tile chosen by prediction, else :func:`wan_nb.geometry.tile_sizes`."""
    if ctx.choices.get("vae_tile"):  # chosen by prediction (tiles.choose_tiling), by the setup or a plan
        from wan_nb.memory.tiles import tile_kwargs

        return tile_kwargs(int(ctx.choices["vae_tile"]), spatial)
    return sizes.tile_sizes(ctx.settings, spatial)


def _vae_spatial(vae: Any) -> int:
    return int(getattr(vae, "spatial_compression_ratio", None) or getattr(vae.config, "scale_factor_spatial", 8))


def _predicted_tile(pipe: Any, ctx: StrategyContext) -> int | None:
    """The largest tile predicted to fit ``ctx.memory_available`` (None: decode whole, or unknown)."""
    from wan_nb.memory.tiles import choose_tiling

    s = ctx.settings
    vae = pipe.vae
    temporal = int(getattr(vae.config, "scale_factor_temporal", 4) or 4)
    frames = (s.num_frames - 1) // temporal * temporal + 1
    # What is on the device at decode time besides the decode: the weights already there
    # (the VAE's alone under an offload, which moves it there for the decode).
    on_device = sum(p.numel() * p.element_size() for m in pipe.components.values()
                    if hasattr(m, "parameters") for p in m.parameters() if p.device.type == ctx.device_type)
    reserved = on_device or sum(p.numel() * p.element_size() for p in vae.parameters())
    vae_bytes = next(vae.parameters()).element_size()
    choice = choose_tiling(dict(vae.config), s.height, s.width, frames, ctx.memory_available,
                           reserved_bytes=reserved, vae_dtype_bytes=vae_bytes, batch=s.batch_size, allow_whole=False)
    return choice.tile


def _tiling_setup(pipe: Any, ctx: StrategyContext) -> None:
    if ctx.memory_available is not None and ctx.settings is not None and not ctx.choices.get("vae_tile"):
        tile = _predicted_tile(pipe, ctx)
        # recorded so that the snippet written from this context carries the same size
        ctx.choices["vae_tile"] = tile  # None only for a video no larger than the smallest tile
    applied = _accepted_tiling(pipe.vae, tiling_kwargs(ctx, _vae_spatial(pipe.vae)))
    # What ran, in this VAE's own names (CogVideoX's overlap factors): the snippet repeats it.
    ctx.choices["vae_tiling_kwargs"] = dict(applied)
    pipe.vae.enable_tiling(**applied)


def _accepted_tiling(vae: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` (Wan's names: a tile's size and stride) in the names this VAE's ``enable_tiling`` takes.

    CogVideoX's VAE takes an overlap factor instead of a stride (its tiled decode steps by
    ``min * (1 - overlap)``); a name a VAE does not take is left out rather than raising.
    """
    import inspect

    try:
        accepted = inspect.signature(vae.enable_tiling).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin-like method: pass Wan's names
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return kwargs
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        axis = key.rsplit("_", 1)[-1]  # height | width
        overlap = f"tile_overlap_factor_{axis}"
        if key in accepted:
            out[key] = value
        elif key.startswith("tile_sample_stride_") and overlap in accepted and kwargs.get(f"tile_sample_min_{axis}"):
            out[overlap] = 1.0 - value / kwargs[f"tile_sample_min_{axis}"]
    return out


def _tiling_code(ctx: StrategyContext) -> Code:
    applied = ctx.choices.get("vae_tiling_kwargs") or tiling_kwargs(ctx)
    args = ", ".join(f"{k}={v!r}" for k, v in applied.items())
    return Code(setup=[f"{{pipe}}.vae.enable_tiling({args})"])


# -- vae_slicing --------------------------------------------------------------------------
def _slicing_setup(pipe: Any, ctx: StrategyContext) -> None:
    pipe.vae.enable_slicing()


# -- vae_on_cpu ------------------------------------------------------------------------------
def _vae_cpu_setup(pipe: Any, ctx: StrategyContext) -> None:
    # diffusers' Wan pipelines move the latents to the VAE's own device before decoding
    # (get_module_execution_device), so a VAE on the CPU decodes on the CPU by itself.
    pipe.vae.to("cpu")


# -- model_cpu_offload / sequential_cpu_offload ----------------------------------------------
def _model_offload_setup(pipe: Any, ctx: StrategyContext) -> None:
    pipe.enable_model_cpu_offload(device=ctx.device)


def _model_offload_code(ctx: StrategyContext) -> Code:
    return Code(placement=f"{{pipe}}.enable_model_cpu_offload({_device_arg(ctx)})  # instead of {{pipe}}.to(...)")


def _sequential_setup(pipe: Any, ctx: StrategyContext) -> None:
    pipe.enable_sequential_cpu_offload(device=ctx.device)


def _sequential_code(ctx: StrategyContext) -> Code:
    return Code(placement=f"{{pipe}}.enable_sequential_cpu_offload({_device_arg(ctx)})  # instead of {{pipe}}.to(...)")


# -- group_offload ------------------------------------------------------------------------
def _group_kwargs(ctx: StrategyContext) -> dict[str, Any]:
    import torch

    # Streams overlap the copy of the next block with the compute of this one; diffusers
    # implements them for CUDA (and raises for a CPU onload device).
    return {
        "onload_device": torch.device(ctx.device),
        "offload_device": torch.device("cpu"),
        "offload_type": "block_level",
        "num_blocks_per_group": 1,
        "use_stream": ctx.device_type == "cuda",
    }


def _encoder_block_modules(component: Any) -> list[str] | None:
    """``["encoder"]`` for a T5/UMT5 encoder, whose block list sits one level down (``encoder.block``).

    Block-level group offloading looks for block lists among the top-level children only;
    a T5 encoder has none there, so without this it moves the whole encoder (UMT5-XXL: 11 GB
    in bfloat16) to the device as one group.
    """
    encoder = getattr(component, "encoder", None)
    blocks = getattr(encoder, "block", None)
    import torch

    return ["encoder"] if isinstance(blocks, torch.nn.ModuleList) and len(blocks) else None


@lru_cache(maxsize=1)
def _has_block_modules() -> bool:
    import inspect

    from diffusers.hooks import apply_group_offloading

    return "block_modules" in inspect.signature(apply_group_offloading).parameters


def _group_setup(pipe: Any, ctx: StrategyContext) -> None:
    # As pipe.enable_group_offload does it, component by component, except that a text
    # encoder is offloaded by its blocks (block_modules; leaf by leaf where diffusers lacks it).
    import torch
    from diffusers.hooks import apply_group_offloading

    kwargs = _group_kwargs(ctx)
    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        inner = _encoder_block_modules(component)
        if inner and _has_block_modules():
            apply_group_offloading(component, **kwargs, block_modules=inner)
        elif inner:
            apply_group_offloading(component, **{**kwargs, "offload_type": "leaf_level", "num_blocks_per_group": None})
        elif hasattr(component, "enable_group_offload"):
            component.enable_group_offload(**kwargs)
        else:
            apply_group_offloading(component, **kwargs)


def _group_code(ctx: StrategyContext) -> Code:
    stream = ctx.device_type == "cuda"
    # Component by component rather than {pipe}.enable_group_offload: the text encoder's
    # blocks sit one level down (encoder.block), and only block_modules reaches them.
    return Code(
        imports=["from diffusers.hooks import apply_group_offloading"],
        placement="# no {pipe}.to(...): group offloading places the weights",
        setup=[
            "for name, component in {pipe}.components.items():",
            "    if isinstance(component, torch.nn.Module):",
            f"        apply_group_offloading(component, onload_device=torch.device({ctx.device!r}), "
            'offload_device=torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1, '
            f'use_stream={stream}, block_modules=["encoder"] if name.startswith("text_encoder") else None)',
        ],
    )


# -- layerwise_fp8 ------------------------------------------------------------------------
def _layerwise_setup(pipe: Any, ctx: StrategyContext) -> None:
    import torch

    for model in _denoisers(pipe):
        model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=model.dtype)


def _layerwise_code(ctx: StrategyContext) -> Code:
    compute = f"torch.{ctx.dtype}"
    lines = ["{pipe}.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, "
             f"compute_dtype={compute})"]
    if "transformer_2" in ctx.components:
        lines.append("{pipe}.transformer_2.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, "
                     f"compute_dtype={compute})")
    return Code(setup=lines)


# -- half_precision -----------------------------------------------------------------------
def _half_load(ctx: StrategyContext) -> dict[str, Any]:
    return {dtype_kwarg_name(): _torch_dtype(half_dtype(ctx.device))}


def _half_code(ctx: StrategyContext) -> Code:
    return Code(load={dtype_kwarg_name(): f"torch.{half_dtype(ctx.device)}"})


# -- text_encoder_cpu ---------------------------------------------------------------------
def _te_setup(pipe: Any, ctx: StrategyContext) -> None:
    pipe.text_encoder.to("cpu")


def _te_rewrite(pipe: Any, kwargs: dict[str, Any], ctx: StrategyContext) -> dict[str, Any]:
    """Encode the prompt on the CPU and hand the pipeline embeddings instead of text."""
    import torch

    if kwargs.get("prompt_embeds") is not None or kwargs.get("prompt") is None:
        return kwargs
    guidance = kwargs.get("guidance_scale", 5.0)
    per_prompt = kwargs.get("num_videos_per_prompt") or 1
    # Where the user's code moved the text encoder back (`pipe.to("cuda")`), move it again.
    pipe.text_encoder.to("cpu")
    with torch.no_grad():
        positive, negative = pipe.encode_prompt(
            prompt=kwargs.pop("prompt"),
            negative_prompt=kwargs.pop("negative_prompt", None),
            do_classifier_free_guidance=guidance is not None and guidance > 1.0,
            num_videos_per_prompt=per_prompt,
            max_sequence_length=kwargs.get("max_sequence_length", 512),
            device=torch.device("cpu"),
        )
    target = pipe._execution_device
    kwargs["prompt_embeds"] = positive.to(target)
    kwargs["negative_prompt_embeds"] = negative.to(target) if negative is not None else None
    # The embeddings already hold one row per video; asking for more would repeat them again.
    kwargs["num_videos_per_prompt"] = 1
    return kwargs


def _te_code(ctx: StrategyContext) -> Code:
    device = ctx.device
    msl = ctx.settings.max_sequence_length if ctx.settings else 512
    cfg = ctx.settings.cfg if ctx.settings else True
    return Code(
        setup=["{pipe}.text_encoder.to(\"cpu\")  # after any {pipe}.to(...): the encoder stays on the CPU"],
        before_call=[
            "with torch.no_grad():",
            "    prompt_embeds, negative_prompt_embeds = {pipe}.encode_prompt(",
            # {prompt} and {negative_prompt}: the user's own sources when the snippet knows the call.
            f"        prompt={{prompt}}, negative_prompt={{negative_prompt}}, do_classifier_free_guidance={cfg},",
            f"        max_sequence_length={msl}, device=torch.device(\"cpu\"))",
        ],
        call={
            "prompt_embeds": f"prompt_embeds.to({device!r})",
            "negative_prompt_embeds": (
                f"negative_prompt_embeds.to({device!r})" if cfg else "None"
            ),
        },
    )


# -- quantize_int8 / quantize_nf4 -----------------------------------------------------------
_QUANTIZABLE = ("transformer", "transformer_2", "text_encoder")


def _quantized(ctx: StrategyContext) -> list[str]:
    present = [c for c in _QUANTIZABLE if c in ctx.components] if ctx.components else ["transformer"]
    return present or ["transformer"]


def _quant_kwargs(bits: int, ctx: StrategyContext) -> tuple[str, dict[str, Any], dict[str, str]]:
    compute = half_dtype(ctx.device)
    if bits == 8:
        return "bitsandbytes_8bit", {"load_in_8bit": True}, {"load_in_8bit": "True"}
    return (
        "bitsandbytes_4bit",
        {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": _torch_dtype(compute)},
        {"load_in_4bit": "True", "bnb_4bit_quant_type": '"nf4"', "bnb_4bit_compute_dtype": f"torch.{compute}"},
    )


def _quant_load(bits: int):
    def load(ctx: StrategyContext) -> dict[str, Any]:
        from diffusers.quantizers import PipelineQuantizationConfig

        backend, kwargs, _ = _quant_kwargs(bits, ctx)
        config = PipelineQuantizationConfig(
            quant_backend=backend, quant_kwargs=kwargs, components_to_quantize=_quantized(ctx)
        )
        return {"quantization_config": config, dtype_kwarg_name(): _torch_dtype(half_dtype(ctx.device))}

    return load


def _quant_code(bits: int):
    def code(ctx: StrategyContext) -> Code:
        backend, _, source = _quant_kwargs(bits, ctx)
        kwargs = ", ".join(f'"{k}": {v}' for k, v in source.items())
        config = (
            f'PipelineQuantizationConfig(quant_backend="{backend}", quant_kwargs={{{kwargs}}}, '
            f"components_to_quantize={_quantized(ctx)!r})"
        )
        return Code(
            imports=["from diffusers.quantizers import PipelineQuantizationConfig"],
            load={"quantization_config": config, dtype_kwarg_name(): f"torch.{half_dtype(ctx.device)}"},
        )

    return code


# -- balanced_device_map ------------------------------------------------------------------
def _balanced_load(ctx: StrategyContext) -> dict[str, Any]:
    return {"device_map": "balanced"}


def _balanced_code(ctx: StrategyContext) -> Code:
    return Code(
        load={"device_map": '"balanced"'},
        placement="# no {pipe}.to(...): device_map places each model on its own GPU",
    )


# -- fewer_frames / lower_resolution ------------------------------------------------------
def _frames_call(ctx: StrategyContext) -> dict[str, Any]:
    if ctx.changes.get("num_frames"):
        return {"num_frames": ctx.changes["num_frames"]}
    if ctx.settings is None:
        return {}
    smaller = sizes.reduce_frames(ctx.settings)
    return {"num_frames": smaller.num_frames} if smaller else {}


def _frames_rewrite(pipe: Any, kwargs: dict[str, Any], ctx: StrategyContext) -> dict[str, Any]:
    """Shorten the input videos with the clip: V2V takes its length from `video` (no `num_frames`),
    VACE's control `video` and `mask` give one frame per output frame."""
    import inspect

    frames = kwargs.get("num_frames")
    if not frames:
        return kwargs
    for key in ("video", "mask"):
        value = kwargs.get(key)
        if isinstance(value, (list, tuple)) and len(value) > frames:
            kwargs[key] = list(value[:frames])
    try:
        accepts = "num_frames" in inspect.signature(type(pipe).__call__).parameters
    except (TypeError, ValueError):  # pragma: no cover - an unusual callable
        accepts = True
    if not accepts:
        kwargs.pop("num_frames")
    return kwargs


def _resolution_call(ctx: StrategyContext) -> dict[str, Any]:
    if ctx.changes.get("height") and ctx.changes.get("width"):
        return {"height": ctx.changes["height"], "width": ctx.changes["width"]}
    if ctx.settings is None:
        return {}
    smaller = sizes.reduce_resolution(ctx.settings)
    return {"height": smaller.height, "width": smaller.width} if smaller else {}


def _call_code(call):
    def code(ctx: StrategyContext) -> Code:
        return Code(call={k: repr(v) for k, v in call(ctx).items()})

    return code


# -- the catalogue ------------------------------------------------------------------------
CATALOGUE: tuple[Strategy, ...] = (
    Strategy(
        name="vae_tiling",
        keeps_latents=True,
        kind="optimization_fallback",
        summary="decode (and encode) the video in overlapping spatial tiles",
        answers=_OOM_HOST,
        stages=("vae_decode", "vae_encode"),
        limitations="Helps only the VAE; the transformer's peak is unchanged. Tiles are blended, "
        "so seams are rare but possible on sharp detail.",
        slowdown="small",
        cost_rank=1,
        min_diffusers="0.34.0",
        _setup=_tiling_setup,
        _code=_tiling_code,
    ),
    Strategy(
        name="vae_on_cpu",
        keeps_latents=True,
        kind="optimization_fallback",
        summary="decode the video on the CPU: the VAE and its activations leave the accelerator",
        answers=_OOM,
        stages=("vae_decode",),
        limitations="Slow: the decode runs at the CPU's speed, and the host must hold the VAE's activations "
        "(host RAM is usually far larger than the card). The denoising is unchanged.",
        slowdown="large (the decode runs on the CPU)",
        needs_accelerator=True,
        to_policy="reapply",
        cost_rank=5,
        _setup=_vae_cpu_setup,
        _code=lambda ctx: Code(setup=['{pipe}.vae.to("cpu")  # the pipeline decodes where the VAE is']),
    ),
    Strategy(
        name="vae_slicing",
        keeps_latents=True,
        kind="optimization_fallback",
        summary="decode the videos of a batch one at a time",
        answers=_OOM_HOST,
        stages=("vae_decode", "vae_encode"),
        limitations="Saves memory only when a call makes more than one video; at batch size 1 it changes nothing.",
        slowdown="none",
        cost_rank=0,
        _setup=_slicing_setup,
        _code=lambda ctx: Code(setup=["{pipe}.vae.enable_slicing()"]),
    ),
    Strategy(
        name="model_cpu_offload",
        keeps_latents=True,
        kind="optimization_fallback",
        summary="keep every model on the CPU and move each to the accelerator only while it runs",
        answers=_OOM,
        stages=_MODEL_STAGES,
        limitations="The largest single model (the transformer) must still fit with its activations. "
        "Needs an accelerator; on a CPU-only kernel there is nothing to offload from.",
        slowdown="small",
        needs_accelerator=True,
        to_policy="ignore",
        cost_rank=3,
        _setup=_model_offload_setup,
        _code=_model_offload_code,
    ),
    Strategy(
        name="group_offload",
        keeps_latents=True,
        kind="optimization_fallback",
        summary="keep the weights on the CPU and stream them to the accelerator block by block",
        answers=_OOM,
        stages=_MODEL_STAGES,
        limitations="Needs an accelerator and enough pinned host memory for the weights; "
        "streams (overlapping copy and compute) exist on CUDA only, elsewhere it is slower.",
        slowdown="moderate (small with CUDA streams)",
        needs_accelerator=True,
        to_policy="ignore",
        cost_rank=4,
        min_diffusers="0.33.0",
        _setup=_group_setup,
        _code=_group_code,
    ),
    Strategy(
        name="sequential_cpu_offload",
        keeps_latents=True,
        kind="optimization_fallback",
        summary="move each layer's weights to the accelerator only for its forward pass",
        answers=_OOM,
        stages=_MODEL_STAGES,
        limitations="The lowest accelerator memory of the offloads, and by far the slowest: "
        "every layer is copied at every step.",
        slowdown="large",
        needs_accelerator=True,
        to_policy="ignore",
        cost_rank=8,
        _setup=_sequential_setup,
        _code=_sequential_code,
    ),
    Strategy(
        name="layerwise_fp8",
        kind="optimization_fallback",
        summary="store the transformer's weights in float8 and upcast each layer as it runs",
        answers=_OOM_HOST,
        stages=("load", "to_device", "denoise"),
        limitations="Weights lose precision (norms and embeddings are kept as they are); "
        "the output changes slightly. Activations are unchanged.",
        slowdown="small",
        quality="changed",
        fresh_load=True,
        cost_rank=5,
        min_diffusers="0.33.0",
        _setup=_layerwise_setup,
        _code=_layerwise_code,
    ),
    Strategy(
        name="half_precision",
        kind="optimization_fallback",
        summary="load every model in 16-bit floats (bfloat16, or float16 where bfloat16 is slow)",
        answers=_OOM_HOST,
        stages=_MODEL_STAGES,
        limitations="Halves weights and activations of a float32 pipeline; does nothing for one "
        "already in 16 bits. The output changes slightly.",
        slowdown="none",
        quality="changed",
        fresh_load=True,
        cost_rank=2,
        _load=_half_load,
        _code=_half_code,
    ),
    Strategy(
        name="text_encoder_cpu",
        kind="component_isolation",
        summary="run the text encoder on the CPU and pass prompt embeddings to the pipeline",
        answers=_OOM,
        stages=("load", "to_device", "text_encode"),
        limitations="Frees the text encoder's accelerator memory (UMT5-XXL: about 11 GB in bfloat16); "
        "encoding on the CPU takes seconds. Nothing to save on a CPU-only kernel.",
        slowdown="small",
        needs_accelerator=True,
        to_policy="reapply",
        cost_rank=3,
        _setup=_te_setup,
        _rewrite=_te_rewrite,
        _code=_te_code,
    ),
    Strategy(
        name="quantize_int8",
        kind="optimization_fallback",
        summary="load the transformer(s) and text encoder quantized to 8 bits (bitsandbytes)",
        answers=_OOM_HOST,
        stages=("load", "to_device", "text_encode", "denoise"),
        limitations="Needs bitsandbytes and a CUDA GPU; the output changes; 8-bit matmuls are slower.",
        slowdown="moderate",
        quality="changed",
        needs_accelerator=True,
        needs_packages=("bitsandbytes",),
        min_diffusers="0.34.0",
        fresh_load=True,
        cost_rank=6,
        _load=_quant_load(8),
        _code=_quant_code(8),
    ),
    Strategy(
        name="quantize_nf4",
        kind="optimization_fallback",
        summary="load the transformer(s) and text encoder quantized to 4-bit NF4 (bitsandbytes)",
        answers=_OOM_HOST,
        stages=("load", "to_device", "text_encode", "denoise"),
        limitations="Needs bitsandbytes and a CUDA GPU; the output changes more than with 8 bits.",
        slowdown="moderate",
        quality="changed",
        needs_accelerator=True,
        needs_packages=("bitsandbytes",),
        min_diffusers="0.34.0",
        fresh_load=True,
        cost_rank=7,
        _load=_quant_load(4),
        _code=_quant_code(4),
    ),
    Strategy(
        name="balanced_device_map",
        keeps_latents=True,
        kind="optimization_fallback",
        summary="spread the pipeline's models over several GPUs (device_map=\"balanced\")",
        answers=_OOM,
        stages=_MODEL_STAGES,
        limitations="Needs two or more GPUs; places whole models, so the largest must fit on one GPU.",
        slowdown="small",
        needs_accelerator=True,
        min_accelerators=2,
        fresh_load=True,
        to_policy="ignore",
        cost_rank=3,
        _load=_balanced_load,
        _code=_balanced_code,
    ),
    Strategy(
        name="fewer_frames",
        kind="reduced_functionality",
        summary="generate fewer frames (a shorter clip; still 4k+1 frames)",
        answers=_OOM_HOST,
        stages=("denoise", "vae_decode", "vae_encode"),
        limitations="Changes the output: a shorter video.",
        slowdown="none (faster)",
        quality="changed",
        degraded=True,
        cost_rank=20,
        _call=_frames_call,
        _rewrite=_frames_rewrite,
        _code=_call_code(_frames_call),
    ),
    Strategy(
        name="lower_resolution",
        kind="reduced_functionality",
        summary="generate at a lower resolution (same aspect ratio, sides multiples of the patch)",
        answers=_OOM_HOST,
        stages=("denoise", "vae_decode", "vae_encode"),
        limitations="Changes the output: fewer pixels per frame.",
        slowdown="none (faster)",
        quality="changed",
        degraded=True,
        cost_rank=21,
        _call=_resolution_call,
        _code=_call_code(_resolution_call),
    ),
)
