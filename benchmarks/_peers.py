"""What the tools users would otherwise rely on predict for the same run (benchmark side only).

The formulas are facts read from each project's source or docs (see ``../shared/DESIGN.md``,
"Peers' memory formulas"); this module re-derives them, it copies no code. Each function
takes the run's wan_nb component report and wan_nb's estimate of the run (for the settings
the strategy chose and for *which weights the strategy leaves on the device in each stage*,
counted from the safetensors headers), so every predictor is fed the same facts and differs
only in its own model of the rest.

- :func:`comfyui_peak`: ComfyUI's ``memory_required`` for denoising (latent elements per
  channel, batch doubled for cond/uncond, x dtype size x 0.01 x ``memory_usage_factor`` MiB,
  the factor = model width / 2222 for Wan, x 1.2 for VACE), its frame-independent Wan VAE
  formulas for decoding and encoding, plus the stage's resident weights, plus its 400 MiB
  reserve on an accelerator (Linux). The text encoder stage counts its weights only.
- :func:`accelerate_peak`: ``accelerate estimate-memory``: the weights at the run's dtype,
  plus the docs' "up to an additional 20 %" for inference (the upper bound is used). It
  sizes one model: the whole pipeline's weights without offloading, the largest model with.
- :func:`diffusers_auto_offload_peak`: diffusers' automatic offload keeps a model on the
  device while its size is below free memory minus 3e9 bytes, else evicts the fewest resident
  models that free enough; it models no activations, so its peak is the weights resident.
  Only for strategies that offload.
- :func:`wan2gp_tile` and :data:`COMFYUI_FALLBACK_TILE`: the fixed tile choices.
"""

from __future__ import annotations

from typing import Any

MIB = 2**20
COMFYUI_RESERVE = 400 * MIB  # EXTRA_RESERVED_VRAM on Linux (600 MiB on Windows)
DIFFUSERS_AUTO_MARGIN = 3_000_000_000
COMFYUI_FALLBACK_TILE = 256  # decode_tiled_3d after an OOM: 256-pixel tiles
OFFLOADING = ("model_cpu_offload", "group_offload", "sequential_cpu_offload")
_DTYPE = {"float32": 4, "float16": 2, "bfloat16": 2}


def _components(report: Any) -> dict[str, Any]:
    return {c.name: c for c in report.components if c.has_weights and c.parameters}


def _width(config: dict[str, Any]) -> int:
    return int(config.get("num_attention_heads", 40)) * int(config.get("attention_head_dim", 128))


def _latent(est: Any, vae_cfg: dict[str, Any]) -> tuple[int, int, int]:
    s = est.settings
    temporal = int(vae_cfg.get("scale_factor_temporal") or 4)
    spatial = int(vae_cfg.get("scale_factor_spatial") or 8)
    return (s.num_frames - 1) // temporal + 1, s.height // spatial, s.width // spatial


def comfyui_stages(report: Any, est: Any, *, accelerator: bool, vae_dtype: str = "float32",
                   tile_px: int | None = None) -> dict[str, float]:  # fmt: skip
    """ComfyUI's need per stage (bytes, weights of the stage included, reserve not)."""
    comps = _components(report)
    tf = comps.get("transformer") or comps.get("transformer_2")
    vae = comps["vae"]
    tf_cfg, vae_cfg = dict(tf.config or {}), dict(vae.config or {})
    s = est.settings
    b, vb = _DTYPE[s.dtype], _DTYPE[vae_dtype]
    lat_t, lat_h, lat_w = _latent(est, vae_cfg)
    factor = _width(tf_cfg) / 2222 * (1.2 if "VACE" in (report.pipeline_class or "") else 1.0)
    # memory_required: the batch is always counted twice (cond + uncond), whatever the CFG.
    elements = 2 * s.batch_size * lat_t * lat_h * lat_w
    need = {"denoise": elements * b * 0.01 * factor * MIB}
    wan22 = bool(vae_cfg.get("is_residual") or vae_cfg.get("patch_size"))
    spatial = int(vae_cfg.get("scale_factor_spatial") or 8)
    dec_h, dec_w = lat_h, lat_w
    if tile_px:  # tiled decoding sizes one tile (overlap ignored, as ComfyUI's own estimate does)
        dec_h, dec_w = min(lat_h, tile_px // spatial), min(lat_w, tile_px // spatial)
    if wan22:
        need["vae_decode"] = 8000 * dec_h * dec_w * 256 * vb
        need["vae_encode"] = 3300 * s.height * s.width * vb
    else:
        need["vae_decode"] = 7000 * dec_h * dec_w * 64 * vb
        need["vae_encode"] = 6000 * s.height * s.width * vb
    need["text_encode"] = 0.0  # ComfyUI sizes the text encoder by its weights
    return {stage: part["weights"] + need[stage] for stage, part in est.parts.items() if stage in need}


def comfyui_peak(report: Any, est: Any, *, accelerator: bool, vae_dtype: str = "float32",
                 tile_px: int | None = None) -> float:  # fmt: skip
    stages = comfyui_stages(report, est, accelerator=accelerator, vae_dtype=vae_dtype, tile_px=tile_px)
    return max(stages.values()) + (COMFYUI_RESERVE if accelerator else 0)


def accelerate_peak(report: Any, est: Any, strategy: str, left_out: tuple[str, ...] = (), *,
                    accelerator: bool = True) -> float:  # fmt: skip
    """accelerate's rule: parameters x the run's dtype, + 20 %.

    On an accelerator it sizes what the strategy puts there: the largest model under an
    offload, the pipeline without its text encoder under ``text_encoder_cpu``. On the CPU
    every model stays in the one memory, so the whole pipeline.
    """
    b = _DTYPE[est.settings.dtype]
    skip = "text_encode" in left_out or (accelerator and "text_encoder_cpu" in strategy)
    sizes = {n: c.parameters * b for n, c in _components(report).items() if not (skip and n.startswith("text_encoder"))}
    offloads = accelerator and any(p in strategy for p in OFFLOADING)
    return 1.2 * (max(sizes.values()) if offloads else sum(sizes.values()))


def diffusers_auto_offload_peak(report: Any, est: Any, device_bytes: float, left_out: tuple[str, ...] = ()) -> float:
    """The weights diffusers' automatic offload keeps resident at most, calling the models in order."""
    b = _DTYPE[est.settings.dtype]
    comps = _components(report)
    order = [n for n in ("text_encoder", "image_encoder", "vae", "transformer", "transformer_2", "vae") if n in comps]
    if "text_encode" in left_out:
        order = [n for n in order if n != "text_encoder"]
    encodes = "vae_encode" in est.parts
    if not encodes:  # the VAE runs first only where the pipeline encodes an input
        order.remove("vae")
    size = {n: comps[n].parameters * (4 if n == "vae" else b) for n in comps}
    resident: list[str] = []
    peak = 0.0
    for name in order:
        if name in resident:
            continue
        free = device_bytes - sum(size[n] for n in resident)
        if size[name] >= free - DIFFUSERS_AUTO_MARGIN:
            # evict the fewest resident models (largest first) that free enough
            for victim in sorted(resident, key=lambda n: -size[n]):
                resident.remove(victim)
                free += size[victim]
                if size[name] < free - DIFFUSERS_AUTO_MARGIN:
                    break
        resident.append(name)
        peak = max(peak, sum(size[n] for n in resident))
    return peak


def wan2gp_tile(total_vram_mib: float, vae_fp32: bool) -> int | None:
    """Wan2GP's tile (px) from the card's total VRAM; None: no tiling. The VRAM counts half for a float32 VAE."""
    if vae_fp32:
        total_vram_mib /= 2
    if total_vram_mib >= 24000:
        tile = None
    elif total_vram_mib >= 16000:
        tile = 512
    elif total_vram_mib >= 8000:
        tile = 256
    else:
        tile = 128
    return tile
