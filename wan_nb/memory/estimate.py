"""Predict a Wan pipeline call's peak device memory, per stage and per memory strategy.

Longer than most modules because the estimate is one walk through the call's stages whose sums read top to bottom; the weights (``_weights``) and their placement (``_placement``) are apart.

``estimate_memory(report, settings, strategy=None, device="cuda")`` reads the component
report (exact parameter counts from the safetensors headers, the configs) and the generation
settings, and walks the call stage by stage — text encoding, (image-to-video: VAE encoding),
denoising, VAE decoding, post-processing — adding up what is on the device in each:

- **weights** resident there, in the dtype the pipeline holds them in (``settings.dtype``;
  the VAE in float32, as diffusers' Wan examples load it; the transformer's norms and time
  embedding stay float32 as diffusers keeps them), changed by the strategy: offloading
  decides which models (or blocks, or layers) are on the device in each stage, float8
  storage and quantization shrink the bytes per parameter;
- **activations** of the stage's model for one forward pass (see
  ``wan_nb.memory._activations``: first-principles features, fitted coefficients);
- **held** tensors that outlive their stage: prompt embeddings, latents and the scheduler's
  history, the decoded video.

Only the activation coefficients are fitted (``wan_nb/data/calibration.json``, made by
``benchmarks/calibrate.py``); every other number is counted from the headers, the configs
and diffusers' code. ``device="cpu"`` predicts what ``wan_nb.measure`` sees on a CPU, where
every model lives in the same memory and offloading saves nothing; the default predicts an
accelerator's tensor memory (``torch.cuda.max_memory_allocated``) — a strategy that needs an
accelerator is estimated for one even when the estimate is made on a CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from wan_nb.memory import _activations as A
from wan_nb.memory._placement import placement
from wan_nb.memory._weights import _Weights, _weights
from wan_nb.settings import DTYPE_BYTES, GenerationSettings
from wan_nb.units import format_bytes
from wan_nb.vocabulary import (
    DEGRADED_STRATEGIES,
    MEMORY_STRATEGIES,
    check_device,
    parse_strategy,
)

__all__ = ["MemoryEstimate", "estimate_memory", "reduce_frames", "reduce_resolution"]

STAGE_ORDER = ("text_encode", "vae_encode", "denoise", "vae_decode", "postprocess")
_ESTIMABLE = MEMORY_STRATEGIES + DEGRADED_STRATEGIES


_HEADROOM_NOTE = (
    "Accelerator figures are tensor memory, as torch.cuda.max_memory_allocated counts it; the CUDA "
    "context (0.3-1 GiB) and the caching allocator's reserve come on top."
)


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class MemoryEstimate:
    """A predicted peak (never a measurement): total, per stage, and what each stage holds.

    ``by_stage["weights"]`` is what sits on the device before the call (0 under the
    offloads); every other ``by_stage[s]`` is the predicted highest level during stage ``s``,
    weights included, so it compares with ``Measurement.by_stage``. ``parts[s]`` splits it
    into weights, activations and held tensors. ``settings`` are the settings estimated —
    those ``fewer_frames`` / ``lower_resolution`` choose — and ``requested_settings`` the
    ones asked for when they differ.
    """

    peak_bytes: int
    by_stage: dict[str, int]
    strategy: str
    settings: GenerationSettings
    device: str
    assumptions: tuple[str, ...] = ()
    parts: dict[str, dict[str, int]] = field(default_factory=dict)
    peak_stage: str = ""
    requested_settings: GenerationSettings | None = None
    source: str = "estimate"
    # What the estimate chose for a strategy: {"vae_tile": px or None} under vae_tiling.
    choices: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source != "estimate":
            raise ValueError(f"A `MemoryEstimate` holds predictions only, got source={self.source!r}.")

    @property
    def weights_bytes(self) -> int:
        return self.by_stage.get("weights", 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak_bytes": self.peak_bytes,
            "peak_stage": self.peak_stage,
            "by_stage": dict(self.by_stage),
            "parts": {k: dict(v) for k, v in self.parts.items()},
            "strategy": self.strategy,
            "settings": self.settings.to_dict(),
            "requested_settings": self.requested_settings.to_dict() if self.requested_settings else None,
            "device": self.device,
            "assumptions": list(self.assumptions),
            "source": self.source,
            "choices": dict(self.choices),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryEstimate:
        requested = data.get("requested_settings")
        return cls(
            peak_bytes=int(data["peak_bytes"]),
            by_stage={str(k): int(v) for k, v in data.get("by_stage", {}).items()},
            strategy=str(data.get("strategy", "none")),
            settings=GenerationSettings.from_dict(data.get("settings") or {}),
            device=str(data.get("device", "cuda")),
            assumptions=tuple(data.get("assumptions") or ()),
            parts={str(k): {str(a): int(b) for a, b in v.items()} for k, v in (data.get("parts") or {}).items()},
            peak_stage=str(data.get("peak_stage", "")),
            requested_settings=GenerationSettings.from_dict(requested) if requested else None,
            source=str(data.get("source", "estimate")),
            choices=dict(data.get("choices") or {}),
        )

    def to_frame(self):
        """One row per stage (weights, activations, held, peak), as a pandas DataFrame."""
        import pandas as pd

        rows = [
            {"stage": stage, **{k: part.get(k, 0) for k in ("weights", "activations", "held")}, "peak_bytes": self.by_stage[stage]}
            for stage, part in self.parts.items()
        ]
        return pd.DataFrame(rows, columns=["stage", "weights", "activations", "held", "peak_bytes"])

    def plot(self):
        """The per-stage breakdown as a matplotlib Figure (matplotlib only, no IPython)."""
        from wan_nb.plots import plot_report

        return plot_report(self)

    def to_text(self) -> str:
        s = self.settings
        lines = [
            f"Estimated peak on {self.device}: {format_bytes(self.peak_bytes)} ({self.peak_stage}), "
            f"strategy: {self.strategy}",
            f"  {s.height}x{s.width}, {s.num_frames} frames ({s.latent_frames} latent), {s.num_inference_steps} steps, "
            f"{'CFG ' if s.cfg else ''}{s.dtype}, batch {s.batch_size}",
        ]
        if self.requested_settings is not None and self.requested_settings != s:
            r = self.requested_settings
            lines.append(f"  (asked for {r.height}x{r.width}, {r.num_frames} frames; the strategy reduces them)")
        lines.append(f"  {'stage':<12} {'weights':>11} {'activations':>12} {'held':>11} {'peak':>11}")
        for stage, part in self.parts.items():
            lines.append(
                f"  {stage:<12} {format_bytes(part.get('weights', 0)):>11} {format_bytes(part.get('activations', 0)):>12} "
                f"{format_bytes(part.get('held', 0)):>11} {format_bytes(self.by_stage[stage]):>11}"
            )
        lines.append("Assumptions:")
        lines.extend(f"  - {a}" for a in self.assumptions)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


# ------------------------------------------------------------------------------ strategies
def reduce_frames(settings: GenerationSettings, temporal: int = 4) -> GenerationSettings | None:
    """The next valid smaller clip (about half the latent frames, still ``4k + 1``); None at the minimum."""
    from wan_nb import geometry as sizes

    return sizes.reduce_frames(settings, temporal)


def reduce_resolution(settings: GenerationSettings, vae_factor: int = 8, patch: int = 2) -> GenerationSettings | None:
    """The next valid smaller size (3/4 of each side, sides multiples of VAE factor x patch); None at the minimum."""
    from wan_nb import geometry as sizes

    return sizes.reduce_resolution(settings, sizes.side_multiple(vae_factor, patch))


# ------------------------------------------------------------------------------ the estimate
def _as_report(report: Any) -> Any:
    if isinstance(report, (str, os.PathLike)):
        from wan_nb.model.components import analyze_model_components

        return analyze_model_components(report)
    if isinstance(report, dict):
        from wan_nb.model.report import ComponentReport

        return ComponentReport.from_dict(report)
    if not hasattr(report, "components"):
        raise TypeError(
            f"`report` must be a ComponentReport (wan_nb.analyze_model_components) or a model folder, "
            f"got {type(report).__name__}."
        )
    return report


def _weight_components(report: Any) -> dict[str, Any]:
    found = {}
    for info in report.components:
        if not info.has_weights or info.class_name is None:
            continue
        if info.parameters is None and info.bytes is None:
            continue
        found[info.name] = info
    return found


def _require_wan(report: Any, transformer: Any, vae: Any) -> None:
    """Refuse models the formulas do not describe: a Wan-shaped number for CogVideoX or LTX would be invented.

    The activations are Wan's (``WanTransformer3DModel`` and its VACE/2.2 kin, ``AutoencoderKLWan``);
    a class the report does not name is taken as Wan (a synthetic or hand-built report).
    """
    for info, is_wan in ((transformer, lambda c: c.startswith("Wan")), (vae, lambda c: c == "AutoencoderKLWan")):
        if info.class_name and not is_wan(info.class_name):
            raise ValueError(
                f"Cannot estimate {getattr(report, 'path', 'this model')}: wan_nb's estimate models Wan pipelines "
                f"(WanTransformer3DModel, AutoencoderKLWan), and its {info.name} is {info.class_name}. Measure the "
                "call instead (wan_nb.measure)."
            )


def _half(device: str) -> str:
    # As the half_precision strategy picks it: float16 on MPS, bfloat16 elsewhere (the
    # catalogue also picks float16 on CUDA cards without bfloat16, which it can only see there).
    return "float16" if device.startswith("mps") else "bfloat16"


def estimate_memory(
    report: Any,
    settings: GenerationSettings | None = None,
    strategy: str | None = None,
    *,
    device: str = "cuda",
    vae_dtype: str | None = None,
    output_type: str = "np",
    memory_available: int | None = None,
) -> MemoryEstimate:
    """Predict the peak device memory of one pipeline call.

    Args:
        report: a ``ComponentReport`` (``wan_nb.analyze_model_components``), its ``to_dict()``,
            or a model folder (analysed here).
        settings: the call; default ``GenerationSettings()`` (480x832, 81 frames, bfloat16).
        strategy: ``None``/``"none"``, a memory strategy (``"vae_tiling"``) or a combination
            (``"model_cpu_offload+vae_tiling"``); ``fewer_frames``/``lower_resolution``
            estimate the settings those strategies would choose.
        device: ``"cuda"`` (default; also ``"mps"``, ``"xpu"``) for an accelerator's tensor
            memory, ``"cpu"`` for what ``wan_nb.measure`` sees on a CPU.
        vae_dtype: the VAE's dtype; default float32 (diffusers' Wan examples), the
            half-precision dtype under ``half_precision``.
        output_type: the call's ``output_type``; ``"latent"`` skips the VAE decode and the
            post-processing, as the pipeline does.
        memory_available: bytes the call may use on the device. Under ``vae_tiling`` the tile
            is then the largest whose predicted decode peak fits (``wan_nb.memory.tiles``), as
            the strategy picks it when it knows the budget; ``choices["vae_tile"]`` says which.
    """
    settings = settings or GenerationSettings()
    if not isinstance(settings, GenerationSettings):
        raise TypeError(f"`settings` must be a wan_nb.GenerationSettings, got {type(settings).__name__}.")
    parts = parse_strategy(strategy, known=_ESTIMABLE, allow_none=True, kind="memory strategy")
    device = check_device(device)
    if vae_dtype is not None and vae_dtype not in DTYPE_BYTES:
        raise ValueError(f"`vae_dtype` must be one of {', '.join(DTYPE_BYTES)} or None, got {vae_dtype!r}.")
    if not isinstance(output_type, str):
        raise TypeError(f"`output_type` must be a string such as 'np', 'pil' or 'latent', got {output_type!r}.")
    report = _as_report(report)
    on_cpu = device.split(":", 1)[0] == "cpu"
    assumptions: list[str] = []
    comps = _weight_components(report)
    tf_info = comps.get("transformer") or comps.get("transformer_2")
    vae_info = comps.get("vae")
    if tf_info is None or vae_info is None:
        missing = [n for n, c in (("transformer", tf_info), ("vae", vae_info)) if c is None]
        raise ValueError(
            f"Cannot estimate {getattr(report, 'path', 'this model')}: the report has no weights for "
            f"{', '.join(missing)}. Fix the components first (wan_nb.analyze_model_components shows what is wrong)."
        )
    _require_wan(report, tf_info, vae_info)
    tf_cfg, vae_cfg = dict(tf_info.config or {}), dict(vae_info.config or {})
    temporal, spatial, _ = A.vae_factors(vae_cfg)
    patch = A._patch(tf_cfg)[1]

    # -- the settings the degraded strategies would choose --------------------------------
    requested = settings
    if "fewer_frames" in parts:
        smaller = reduce_frames(settings, temporal)
        if smaller is None:
            assumptions.append("fewer_frames: the clip is already the shortest wan_nb reduces to; frames unchanged.")
        settings = smaller or settings
    if "lower_resolution" in parts:
        smaller = reduce_resolution(settings, spatial, patch)
        if smaller is None:
            assumptions.append("lower_resolution: the size is already the smallest valid one; unchanged.")
        settings = smaller or settings

    # -- dtypes ------------------------------------------------------------------------------
    compute = settings.dtype
    vae_dt = vae_dtype or "float32"
    if "half_precision" in parts or any(p.startswith("quantize") for p in parts):
        if compute == "float32":
            compute = _half(device)
        vae_dt = vae_dtype or compute
    if vae_dt not in A.DTYPE_BYTES:
        raise ValueError(f"`vae_dtype` must be one of {', '.join(A.DTYPE_BYTES)}, got {vae_dtype!r}.")
    b, vb = A.DTYPE_BYTES[compute], A.DTYPE_BYTES[vae_dt]

    # -- weights per component ---------------------------------------------------------------
    quant = "int8" if "quantize_int8" in parts else "nf4" if "quantize_nf4" in parts else None
    weights: dict[str, _Weights] = {}
    for name, info in comps.items():
        mode = None
        if name.startswith("transformer"):
            mode = "fp8" if "layerwise_fp8" in parts else quant
        elif name.startswith("text_encoder"):
            mode = quant
        weights[name] = _weights(report, info, vae_dt if name.startswith("vae") else compute, mode)
    if not all(w.exact for w in weights.values()):
        rough = ", ".join(n for n, w in weights.items() if not w.exact)
        assumptions.append(f"Weights of {rough}: the headers could not be read; totals from the report, blocks split evenly.")

    # -- activations per stage ---------------------------------------------------------------
    batch = settings.batch_size
    z, lat_t, lat_h, lat_w = A.latent_shape(vae_cfg, settings.num_frames, settings.height, settings.width)
    n_tokens = A.tokens(tf_cfg, lat_t, lat_h, lat_w)
    expand = bool((report.pipeline_config or {}).get("expand_timesteps"))
    pipeline_class = report.pipeline_class or ""
    image_to_video = "ImageToVideo" in pipeline_class
    vace = "VACE" in pipeline_class
    video_to_video = "VideoToVideo" in pipeline_class
    # Every kind that runs the VAE encoder before denoising: I2V (the condition frame and its
    # zero padding), V2V (the input video), VACE (the control video, inactive and reactive).
    encodes = image_to_video or vace or video_to_video
    te_info = comps.get("text_encoder")
    te_cfg = dict(te_info.config or {}) if te_info else {}
    L = settings.max_sequence_length
    act: dict[str, int] = {}
    if te_info is not None:
        act["text_encode"] = A.predict("text_encoder", A.text_encoder_features(te_cfg, L, b))
    # The preprocessed input video (float32, as the video processor returns it) of V2V / VACE.
    in_video = int(A.video_bytes(settings.num_frames, settings.height, settings.width, 4)) if (vace or video_to_video) else 0
    if encodes and "vae_tiling" in parts:  # enable_tiling tiles the encode too
        act["vae_encode"] = A.vae_tiled_encode_bytes(vae_cfg, settings.num_frames, settings.height, settings.width,
                                                     vb, _tiling_kwargs(settings, spatial, device))  # fmt: skip
    elif encodes:
        act["vae_encode"] = A.predict(
            f"{A.vae_family(vae_cfg)}_encode",
            A.vae_encode_features(vae_cfg, settings.num_frames, settings.height, settings.width, vb),
        )
        if vace:
            # WanVACEPipeline.prepare_video_latents encodes `video * (1 - mask)` then `video * mask`:
            # while the first encodes, its mask, the binarised mask and the reactive copy are alive
            # beside the video the pipeline holds (four video-sized tensors; counted, not fitted).
            act["vae_encode"] += 4 * in_video
    act["denoise"] = batch * A.predict("transformer", A.transformer_features(tf_cfg, n_tokens, b, expand))
    if "layerwise_fp8" in parts:
        act["denoise"] += max(weights[n].largest_cast for n in weights if n.startswith("transformer"))
    frames_out = (lat_t - 1) * temporal + 1
    if "vae_tiling" in parts:
        tiling = _tiling_kwargs(settings, spatial, device)
        one_video = A.vae_tiled_decode_bytes(vae_cfg, frames_out, settings.height, settings.width, vb, tiling)
        layout = A.tile_layout(vae_cfg, settings.height, settings.width, tiling)
        if layout["tiled"]:
            assumptions.append(
                f"vae_tiling: {layout['count']} tiles of at most {layout['tile_h']}x{layout['tile_w']} px "
                "(diffusers' tiled_decode keeps every decoded tile until it blends them)."
            )
        else:
            assumptions.append("vae_tiling: the video is no larger than one tile, so the VAE decodes it whole.")
    else:
        one_video = A.vae_decode_bytes(vae_cfg, frames_out, settings.height, settings.width, vb)
    # Without slicing the VAE decodes the whole batch at once; with it, one video at a time.
    act["vae_decode"] = one_video * (1 if "vae_slicing" in parts else batch)
    video = A.video_bytes(frames_out, settings.height, settings.width, vb) * batch
    # normalise to [0, 1] and clamp: two more copies; a float32 copy for numpy if the VAE is not.
    act["postprocess"] = int(2 * video + (A.video_bytes(frames_out, settings.height, settings.width, 4) * batch if vb != 4 else 0))

    if output_type == "latent":
        del act["vae_decode"], act["postprocess"]

    # -- held between stages -------------------------------------------------------------------
    d_text = int(te_cfg.get("d_model", tf_cfg.get("text_dim", 4096)))
    embeds = (2 if settings.cfg else 1) * batch * L * d_text * b
    latent = z * lat_t * lat_h * lat_w * 4 * batch
    # latents + the transformer's input copy + both predictions + UniPC's history (order 2)
    # + the step's temporaries: eight latent-sized float32 tensors. Image-to-video also holds
    # the encoded condition (latent channels + 4 mask channels).
    denoise_held = 8 * latent + (latent * (z + 4) // z if image_to_video else 0)
    if vace:
        # VACE: __call__ keeps the control video and its mask through the loop, and the
        # transformer reads the control latents (inactive + reactive + the 8x8 pixel mask,
        # ``vace_in_channels``); its VACE blocks' hints (one N x D per VACE layer) live for the
        # whole forward pass.
        vace_in = int(tf_cfg.get("vace_in_channels", 96))
        hints = len(tf_cfg.get("vace_layers") or ()) + 1
        D = A.transformer_width(tf_cfg)[0]
        denoise_held += 2 * in_video + latent * vace_in // z
        act["denoise"] += batch * hints * n_tokens * D * b
    elif video_to_video:
        denoise_held += in_video  # the preprocessed input video stays referenced by __call__
    held = {
        "text_encode": 0,
        "vae_encode": embeds + (in_video if video_to_video else 0),
        "denoise": embeds + denoise_held,
        "vae_decode": embeds + 3 * latent + (2 if vace else 1 if video_to_video else 0) * in_video,
        "postprocess": embeds + int(video),
    }

    # -- weights on the device in each stage -----------------------------------------------------
    stages = [s for s in STAGE_ORDER if s in act]
    resident, baseline, notes = placement(parts, weights, stages, encodes, on_cpu, device)
    assumptions.extend(notes)
    if "text_encoder_cpu" in parts and not on_cpu:
        act["text_encode"] = 0
    if "vae_on_cpu" in parts and not on_cpu:
        # The decode and the post-processing run on the host: on the device only the
        # embeddings are still held (the latents go to the CPU with the VAE).
        for stage in ("vae_decode", "postprocess"):
            if stage in act:
                act[stage] = 0
                held[stage] = embeds
        assumptions.append("vae_on_cpu: the VAE's weights, the decode and the post-processing are on the host, "
                           "not on the device.")
    choices: dict[str, Any] = {}
    if "vae_tiling" in parts and "vae_decode" in act:
        choices["vae_tile"] = _tiling_kwargs(settings, spatial, device).get("tile_sample_min_height")
        if memory_available is not None:
            from wan_nb.memory.tiles import choose_tiling

            choice = choose_tiling(
                vae_cfg, settings.height, settings.width, frames_out, memory_available,
                reserved_bytes=resident["vae_decode"] + held["vae_decode"], vae_dtype_bytes=vb,
                batch=1 if "vae_slicing" in parts else batch, allow_whole=False,
            )  # fmt: skip
            act["vae_decode"] = choice.predicted_bytes
            choices["vae_tile"] = choice.tile
            assumptions = [a for a in assumptions if not a.startswith("vae_tiling:")]
            assumptions.append(
                f"vae_tiling: tile chosen by prediction for {format_bytes(memory_available)} available: "
                + (f"{choice.tile} px, {choice.count} tiles" if choice.tile else "the video is one tile (decodes whole)")
                + ("" if choice.fits else " (the smallest predicted peak; none fits)") + "."
            )

    by_stage: dict[str, int] = {"weights": int(baseline)}
    detail: dict[str, dict[str, int]] = {}
    for stage in stages:
        detail[stage] = {"weights": int(resident[stage]), "activations": int(act[stage]), "held": int(held[stage])}
        by_stage[stage] = int(resident[stage] + act[stage] + held[stage])
    peak_stage = max(stages, key=lambda s: by_stage[s])
    peak = max(by_stage[peak_stage], by_stage["weights"])

    calib = A.calibration()
    assumptions[:0] = [
        f"Weights: parameter counts from the safetensors headers, held in {compute} (VAE {vae_dt}; the "
        "transformer's norms and time embedding in float32, as diffusers keeps them).",
        "Activations: first-principles sizes (tokens, widths, pixels, channels) times coefficients fitted "
        "to CPU measurements of small Wan models (wan_nb/data/calibration.json, made by benchmarks/calibrate.py "
        f"with torch {calib.get('environment', {}).get('torch', '?')}); one forward pass at a time, batch {batch}.",
        f"Tokens: {lat_t} latent frames x {lat_h // patch} x {lat_w // patch} = {n_tokens} per pass"
        + (" (expand_timesteps: a timestep per token)" if expand else "")
        + ". Classifier-free guidance runs the two passes one after the other in diffusers: it doubles the "
        "time, not the activations.",
    ]
    if not on_cpu:
        assumptions.append(_HEADROOM_NOTE)
    return MemoryEstimate(
        peak_bytes=int(peak),
        by_stage=by_stage,
        strategy="+".join(parts) if parts else "none",
        settings=settings,
        device=device,
        assumptions=tuple(assumptions),
        parts=detail,
        peak_stage=peak_stage,
        requested_settings=requested if requested != settings else None,
        choices=choices,
    )


def _tiling_kwargs(settings: GenerationSettings, spatial: int, device: str) -> dict[str, int]:
    """The tile sizes wan_nb's vae_tiling strategy sets (diffusers' defaults for large videos)."""
    from wan_nb.geometry import tile_sizes

    return tile_sizes(settings, spatial)


