"""Activation memory of each Wan model, as linear models over features of config and shape.

Each term is a sum ``coefficient x feature`` where the feature is a product of sizes that the
code of the model makes live at its peak (tokens x FFN width x bytes, pixels x channels x
bytes...). The *features* are first principles, read off diffusers' and transformers' code;
the *coefficients* ("how many such tensors are alive at once") are fitted by least squares
to measurements of real (tiny, randomly initialised) models on the CPU with wan_nb's own
meter: ``benchmarks/calibrate.py`` made ``wan_nb/data/calibration.json``, which holds both
the measurements and the fit. The same feature functions serve the fit and the prediction,
so they cannot drift apart.

The models, per forward pass (batch 1; diffusers runs the conditional and unconditional
passes one after the other, so classifier-free guidance does not double them):

- ``transformer``: N tokens, width D, FFN width F, head dim h, compute bytes b:
  ``N*F*b`` (FFN intermediate and its GELU), ``N*D*b`` and ``N*D*4`` (residual stream,
  q/k/v, the float32 norms), ``N*h*4`` (rotary tables). Wan 2.2 TI2V's per-token timestep
  (``expand_timesteps``) adds ``N*D*b`` / ``N*D*4`` terms (six modulation vectors per token).
- ``text_encoder`` (UMT5): L tokens, width d, FFN width f, heads H: ``L*d*b``, ``L*f*b``,
  ``H*L^2*b`` (scores and position bias), ``H*L^2*4`` (the float32 softmax), ``L^2*8``
  (the int64 relative-position buckets).
- ``vae_decode`` (per VAE family: 2.1, and 2.2's residual/patchified one) has two phases.
  While it decodes chunk by chunk (one latent frame at a time, with a causal cache): the
  video decoded so far (``out``) plus the working set of one chunk at full resolution,
  ``phi = H/p * W/p * C0 * b`` (``C0`` the decoder's top-level channels, ``p`` the VAE's
  patch size), with a term per residual block (``phi * num_res_blocks``: each block's causal
  convolutions cache two frames) and a correction while the cache is not yet full (two
  latent frames only) — fitted. At the end, ``torch.cat`` and ``clamp`` hold two
  copies of the video: ``2 * out`` — counted, not fitted. The peak is the larger.
- tiled decoding keeps every decoded tile (``tiles``: overlaps counted twice) while it works
  on one tile (the decode working set above at the tile's size, same coefficients), then
  holds the tiles, the blended rows, the joined video and its clamped copy:
  ``tiles + 3 * out``. Nothing is fitted for tiling: ``benchmarks/calibrate.py`` checks it
  against measurements.
- ``vae_encode`` (image-to-video: the conditioning video is encoded): the input video plus
  ``phi`` at the encoder's top level.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from wan_nb.settings import DTYPE_BYTES  # one table of compute dtypes for settings and estimates


# -- calibration ----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def calibration() -> dict[str, Any]:
    """The fitted coefficients and the measurements they came from (wan_nb/data/calibration.json)."""
    text = resources.files("wan_nb").joinpath("data/calibration.json").read_text(encoding="utf-8")
    return json.loads(text)


def coefficients(model: str) -> dict[str, float]:
    return dict(calibration()["models"][model]["coefficients"])


def predict(model: str, features: dict[str, float]) -> int:
    """Bytes: the fitted linear model ``model`` at ``features`` (never below zero)."""
    coef = coefficients(model)
    missing = set(coef) - set(features)
    if missing:
        raise KeyError(f"features {sorted(missing)} missing for activation model {model!r}")
    return max(0, int(round(sum(coef[k] * features[k] for k in coef))))


# -- transformer ----------------------------------------------------------------------------
def tokens(config: dict[str, Any], latent_frames: int, latent_height: int, latent_width: int) -> int:
    """Tokens the transformer sees: latent frames x latent pixels / patch (1 x 2 x 2 for Wan)."""
    pt, ph, pw = _patch(config)
    return (latent_frames // pt) * (latent_height // ph) * (latent_width // pw)


def _patch(config: dict[str, Any]) -> tuple[int, int, int]:
    patch = config.get("patch_size") or (1, 2, 2)
    if isinstance(patch, int):
        return 1, patch, patch
    return int(patch[0]), int(patch[1]), int(patch[2])


def transformer_width(config: dict[str, Any]) -> tuple[int, int, int]:
    """(inner width D, FFN width F, head dim h) from a WanTransformer3DModel config."""
    heads = int(config.get("num_attention_heads", 40))
    head_dim = int(config.get("attention_head_dim", 128))
    inner = heads * head_dim
    return inner, int(config.get("ffn_dim", 4 * inner)), head_dim


def transformer_features(config: dict[str, Any], n_tokens: int, dtype_bytes: int, per_token_timestep: bool) -> dict[str, float]:
    D, F, h = transformer_width(config)
    ts = 1.0 if per_token_timestep else 0.0
    N = float(n_tokens)
    return {
        "nf_b": N * F * dtype_bytes,
        "nd_b": N * D * dtype_bytes,
        "nd_4": N * D * 4,
        "nh_4": N * h * 4,
        "ts_nd_b": ts * N * D * dtype_bytes,
        "ts_nd_4": ts * N * D * 4,
    }


# -- text encoder ---------------------------------------------------------------------------
def text_encoder_features(config: dict[str, Any], seq_len: int, dtype_bytes: int) -> dict[str, float]:
    d = int(config.get("d_model", 4096))
    f = int(config.get("d_ff", 10240))
    heads = int(config.get("num_heads", 64))
    L = float(seq_len)
    return {
        "ld_b": L * d * dtype_bytes,
        "lf_b": L * f * dtype_bytes,
        "hll_b": heads * L * L * dtype_bytes,
        "hll_4": heads * L * L * 4,
        # int64 relative-position buckets, computed once per call for all heads
        "ll_8": L * L * 8,
    }


# -- VAE --------------------------------------------------------------------------------------
def vae_family(config: dict[str, Any]) -> str:
    """``"vae22"`` for Wan 2.2's residual, patchified VAE; ``"vae21"`` otherwise."""
    return "vae22" if config.get("is_residual") or config.get("patch_size") else "vae21"


def vae_factors(config: dict[str, Any]) -> tuple[int, int, int]:
    """(temporal factor, spatial factor, patch size) of an AutoencoderKLWan config."""
    temporal = int(config.get("scale_factor_temporal") or 4)
    spatial = int(config.get("scale_factor_spatial") or 8)
    patch = int(config.get("patch_size") or 1)
    return temporal, spatial, patch


def _decoder_channels(config: dict[str, Any]) -> int:
    base = int(config.get("decoder_base_dim") or config.get("base_dim") or 96)
    mult = config.get("dim_mult") or [1, 2, 4, 4]
    return base * int(mult[0])


def _encoder_channels(config: dict[str, Any]) -> int:
    base = int(config.get("base_dim") or 96)
    mult = config.get("dim_mult") or [1, 2, 4, 4]
    return base * int(mult[0])


def video_bytes(frames: int, height: int, width: int, dtype_bytes: int, channels: int = 3) -> float:
    return float(frames) * channels * height * width * dtype_bytes


def vae_decode_features(config: dict[str, Any], frames: int, height: int, width: int, dtype_bytes: int) -> dict[str, float]:
    temporal, _, patch = vae_factors(config)
    nrb = int(config.get("num_res_blocks", 2))
    phi = (height // patch) * (width // patch) * _decoder_channels(config) * float(dtype_bytes)
    # With two latent frames the causal cache never fills (it keeps the last two frames of
    # the previous chunk, and the first chunk has one): a smaller working set.
    two_chunks = 1.0 if (frames - 1) // temporal + 1 == 2 else 0.0
    return {"out": video_bytes(frames, height, width, dtype_bytes), "phi": phi, "phi_nrb": phi * nrb,
            "phi_2": phi * two_chunks}  # fmt: skip


def tile_layout(config: dict[str, Any], height: int, width: int, tiling: dict[str, int] | None = None) -> dict[str, Any]:
    """Tiles ``AutoencoderKLWan.tiled_decode`` makes, with diffusers' defaults (256 px, stride 192).

    Returns whether it tiles at all (only when a latent side exceeds the tile), the number of
    tiles, the pixels they cover together (overlaps counted twice) and one tile's size.
    """
    tiling = tiling or {}
    _, spatial, _ = vae_factors(config)
    tile_h = int(tiling.get("tile_sample_min_height", 256))
    tile_w = int(tiling.get("tile_sample_min_width", 256))
    stride_h = int(tiling.get("tile_sample_stride_height", 192))
    stride_w = int(tiling.get("tile_sample_stride_width", 192))
    lat_h, lat_w = height // spatial, width // spatial
    t_lh, t_lw = tile_h // spatial, tile_w // spatial
    s_lh, s_lw = max(1, stride_h // spatial), max(1, stride_w // spatial)
    if not (lat_w > t_lw or lat_h > t_lh):
        return {"tiled": False, "count": 1, "pixels": height * width, "tile_h": height, "tile_w": width}
    rows = [min(t_lh, lat_h - i) * spatial for i in range(0, lat_h, s_lh)]
    cols = [min(t_lw, lat_w - j) * spatial for j in range(0, lat_w, s_lw)]
    return {
        "tiled": True,
        "count": len(rows) * len(cols),
        "pixels": sum(rows) * sum(cols),
        "tile_h": max(rows),
        "tile_w": max(cols),
    }


def vae_tiled_decode_features(
    config: dict[str, Any], frames: int, height: int, width: int, dtype_bytes: int, tiling: dict[str, int] | None = None
) -> dict[str, float]:
    layout = tile_layout(config, height, width, tiling)
    _, _, patch = vae_factors(config)
    nrb = int(config.get("num_res_blocks", 2))
    phi = (layout["tile_h"] // patch) * (layout["tile_w"] // patch) * _decoder_channels(config) * float(dtype_bytes)
    temporal = vae_factors(config)[0]
    two_chunks = 1.0 if (frames - 1) // temporal + 1 == 2 else 0.0
    # Tiles are kept at the decoder's output (3 x p^2 channels at 1/p of the side): same bytes.
    tiles = float(frames) * 3 * layout["pixels"] * dtype_bytes
    return {"tiles": tiles, "out": video_bytes(frames, height, width, dtype_bytes), "phi": phi, "phi_nrb": phi * nrb,
            "phi_2": phi * two_chunks}  # fmt: skip


def vae_decode_bytes(config: dict[str, Any], frames: int, height: int, width: int, dtype_bytes: int) -> int:
    """Peak activation bytes of ``AutoencoderKLWan.decode`` (untiled): the larger phase."""
    feats = vae_decode_features(config, frames, height, width, dtype_bytes)
    chunked = predict(f"{vae_family(config)}_decode", feats)
    return max(chunked, int(2 * feats["out"]))


def vae_tiled_decode_bytes(
    config: dict[str, Any], frames: int, height: int, width: int, dtype_bytes: int, tiling: dict[str, int] | None = None
) -> int:
    """Peak activation bytes of ``AutoencoderKLWan.tiled_decode`` (falls back to untiled when it would)."""
    if not tile_layout(config, height, width, tiling)["tiled"]:
        return vae_decode_bytes(config, frames, height, width, dtype_bytes)
    feats = vae_tiled_decode_features(config, frames, height, width, dtype_bytes, tiling)
    coef = coefficients(f"{vae_family(config)}_decode")
    working = coef["phi"] * feats["phi"] + coef["phi_nrb"] * feats["phi_nrb"] + coef["phi_2"] * feats["phi_2"]
    return int(max(feats["tiles"] + working, feats["tiles"] + 3 * feats["out"]))


def vae_encode_features(config: dict[str, Any], frames: int, height: int, width: int, dtype_bytes: int) -> dict[str, float]:
    temporal, _, patch = vae_factors(config)
    nrb = int(config.get("num_res_blocks", 2))
    phi = (height // patch) * (width // patch) * _encoder_channels(config) * float(dtype_bytes)
    two_chunks = 1.0 if (frames - 1) // temporal + 1 == 2 else 0.0  # as for decoding
    return {"video": video_bytes(frames, height, width, dtype_bytes), "phi": phi, "phi_nrb": phi * nrb,
            "phi_2": phi * two_chunks}  # fmt: skip


def vae_tiled_encode_bytes(
    config: dict[str, Any], frames: int, height: int, width: int, dtype_bytes: int, tiling: dict[str, int] | None = None
) -> int:
    """Peak activation bytes of ``AutoencoderKLWan.tiled_encode`` (untiled when the video fits one tile).

    The tiles are views of the input video and their latents are small, so the input term
    stays whole and the working set (the ``phi`` terms) shrinks to one tile's: the encode
    coefficients, nothing fitted for tiling.
    """
    layout = tile_layout(config, height, width, tiling)
    feats = vae_encode_features(config, frames, height, width, dtype_bytes)
    coef = coefficients(f"{vae_family(config)}_encode")
    if not layout["tiled"]:
        return predict(f"{vae_family(config)}_encode", feats)
    tile = vae_encode_features(config, frames, layout["tile_h"], layout["tile_w"], dtype_bytes)
    working = sum(coef[k] * tile[k] for k in ("phi", "phi_nrb", "phi_2"))
    return max(0, int(coef["video"] * feats["video"] + working))


def latent_shape(vae_config: dict[str, Any], frames: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(channels, latent frames, latent height, latent width) for a video of that size."""
    temporal, spatial, _ = vae_factors(vae_config)
    z = int(vae_config.get("z_dim", 16))
    return z, (frames - 1) // temporal + 1, height // spatial, width // spatial


def fit(rows: list[dict[str, Any]], names: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Least squares of ``measured`` on ``features[names]``, no intercept.

    Fitted on relative error (each row divided by its measurement) so that small and large
    runs count alike. Returns the coefficients and the fit's relative errors (median, worst).
    """
    import numpy as np

    X = np.array([[r["features"][n] for n in names] for r in rows], dtype=float)
    y = np.array([r["measured"] for r in rows], dtype=float)
    w = 1.0 / np.maximum(y, 1.0)
    coef, *_ = np.linalg.lstsq(X * w[:, None], y * w, rcond=None)
    pred = X @ coef
    rel = np.abs(pred - y) / np.maximum(y, 1.0)
    return (
        {n: float(c) for n, c in zip(names, coef)},
        {"median_rel_error": float(np.median(rel)), "max_rel_error": float(rel.max()), "runs": len(rows)},
    )


__all__ = [
    "DTYPE_BYTES",
    "calibration",
    "coefficients",
    "fit",
    "latent_shape",
    "predict",
    "text_encoder_features",
    "tile_layout",
    "tokens",
    "transformer_features",
    "transformer_width",
    "vae_decode_bytes",
    "vae_decode_features",
    "vae_tiled_decode_bytes",
    "vae_encode_features",
    "vae_tiled_encode_bytes",
    "vae_factors",
    "vae_family",
    "vae_tiled_decode_features",
    "video_bytes",
]
