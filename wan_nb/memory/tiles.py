"""The VAE tile size chosen by prediction: the largest whose decode peak fits the memory there is.

``AutoencoderKLWan.enable_tiling`` takes a tile size and a stride; smaller tiles mean a
smaller working set but more tiles (slower, more seams) and, because diffusers keeps every
decoded tile until it blends them, never less than the tiles' pixels plus three copies of
the video. :func:`choose_tiling` walks the candidate sizes from "no tiling" down and keeps
the first whose predicted decode peak (the estimator's own formulas in
``wan_nb.memory._activations``) plus the bytes already taken at decode time (weights, held
latents) fits ``available_bytes``. When none fits it returns the smallest, marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wan_nb.memory import _activations as A

__all__ = ["TileChoice", "choose_tiling", "tile_kwargs"]


@dataclass(frozen=True)
class TileChoice:
    """A tile (``tile`` px, None: decode whole) with its predicted decode peak and tile count."""

    tile: int | None
    kwargs: dict[str, int]
    predicted_bytes: int
    count: int
    fits: bool


def tile_kwargs(tile: int, spatial: int = 8) -> dict[str, int]:
    """``enable_tiling`` arguments for square tiles of ``tile`` px with diffusers' 3/4 stride."""
    stride = max(spatial, (tile * 3 // 4) // spatial * spatial)
    return {
        "tile_sample_min_height": tile,
        "tile_sample_min_width": tile,
        "tile_sample_stride_height": stride,
        "tile_sample_stride_width": stride,
    }


def _candidates(height: int, width: int, spatial: int) -> list[int]:
    # Multiples of two latent pixels, from just under the longer side down to the smallest
    # tile the Wan VAE accepts (two latent pixels a side, as tiling_kwargs' floor).
    step = 2 * spatial
    top = (max(height, width) - 1) // step * step
    return list(range(top, step - 1, -step))


def choose_tiling(
    vae_config: dict[str, Any],
    height: int,
    width: int,
    frames: int,
    available_bytes: float,
    *,
    reserved_bytes: float = 0,
    vae_dtype_bytes: int = 4,
    batch: int = 1,
    allow_whole: bool = True,
) -> TileChoice:
    """The largest tile (or none) whose predicted decode peak + ``reserved_bytes`` fits ``available_bytes``.

    ``frames`` are the decoded video's frames; ``reserved_bytes`` what is on the device
    besides the decode's own tensors (the weights there, the held latents and embeddings).
    ``allow_whole=False`` always tiles (the vae_tiling strategy: it runs because a decode
    failed, so a prediction that the whole decode fits is not trusted over that failure).
    """
    _, spatial, _ = A.vae_factors(vae_config)
    whole = A.vae_decode_bytes(vae_config, frames, height, width, vae_dtype_bytes) * batch
    if allow_whole and whole + reserved_bytes <= available_bytes:
        return TileChoice(None, {}, int(whole), 1, True)
    best: TileChoice | None = None
    for tile in _candidates(height, width, spatial):
        kwargs = tile_kwargs(tile, spatial)
        layout = A.tile_layout(vae_config, height, width, kwargs)
        if not layout["tiled"]:
            continue
        need = A.vae_tiled_decode_bytes(vae_config, frames, height, width, vae_dtype_bytes, kwargs) * batch
        choice = TileChoice(tile, kwargs, int(need), int(layout["count"]), need + reserved_bytes <= available_bytes)
        if choice.fits:
            return choice
        if best is None or need < best.predicted_bytes:
            best = choice  # none fits: the one predicted lowest
    return best or TileChoice(None, {}, int(whole), 1, whole + reserved_bytes <= available_bytes)
