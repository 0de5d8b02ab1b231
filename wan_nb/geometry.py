"""Video geometry: valid frame counts and sides, smaller sizes for the degraded strategies, VAE tiles.

Wan's VAE compresses time 4x with a causal first frame, so a clip has ``4k + 1`` frames;
the transformer patchifies the latent 2x2, so each side is a multiple of the VAE's spatial
factor times the patch (8 x 2 = 16 for Wan 2.1, 16 x 2 = 32 for the Wan 2.2 TI2V VAE).
``WanPipeline.check_inputs`` also insists on multiples of 16, whatever the VAE.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from wan_nb.settings import GenerationSettings

TEMPORAL_FACTOR = 4
# The smallest clip worth calling a video: 5 frames are 2 latent frames.
MIN_FRAMES = 5
# Scales tried for lower_resolution, largest first: each keeps the aspect ratio.
RESOLUTION_SCALES: tuple[float, ...] = (0.75, 0.625, 0.5, 0.375, 0.25)


def side_multiple(vae_spatial: int = 8, patch: int = 2) -> int:
    """The number every side must be a multiple of: VAE factor x patch, and 16 (check_inputs)."""
    return math.lcm(int(vae_spatial) * int(patch), 16)


def geometry_from_report(report: Any | None) -> tuple[int, int, int]:
    """``(temporal factor, spatial factor, patch)`` read from a component report's configs."""
    temporal, spatial, patch = TEMPORAL_FACTOR, 8, 2
    if report is None:
        return temporal, spatial, patch
    try:
        vae = report.component("vae")
        config = dict(getattr(vae, "config", None) or {})
        temporal = int(config.get("scale_factor_temporal") or temporal)
        spatial = int(config.get("scale_factor_spatial") or spatial)
    except (AttributeError, KeyError, TypeError, ValueError):  # a report without a readable VAE keeps Wan 2.1's factors
        pass
    for name in ("transformer", "transformer_2"):
        try:
            config = dict(getattr(report.component(name), "config", None) or {})
        except (AttributeError, KeyError, TypeError, ValueError):  # no readable transformer: Wan's patch
            continue
        size = config.get("patch_size")
        if isinstance(size, (list, tuple)) and len(size) == 3:
            patch = int(size[1])
            break
    return temporal, spatial, patch


def valid_frames(n: int, temporal: int = TEMPORAL_FACTOR) -> int:
    """The largest ``temporal * k + 1`` that is at most ``n`` (the pipeline rounds the same way)."""
    return max(1, (int(n) - 1) // temporal * temporal + 1)


def frame_options(settings: GenerationSettings, temporal: int = TEMPORAL_FACTOR) -> Iterator[int]:
    """Smaller valid frame counts, largest first, down to :data:`MIN_FRAMES`."""
    latent = (valid_frames(settings.num_frames, temporal) - 1) // temporal
    for k in range(latent - 1, 0, -1):
        frames = temporal * k + 1
        if frames < MIN_FRAMES:
            break
        yield frames


def reduce_frames(settings: GenerationSettings, temporal: int = TEMPORAL_FACTOR) -> GenerationSettings | None:
    """About half the frames (half the latent frames), still ``4k + 1``; None when already minimal."""
    latent = (valid_frames(settings.num_frames, temporal) - 1) // temporal
    k = max(1, latent // 2)
    frames = temporal * k + 1
    if frames >= settings.num_frames or frames < MIN_FRAMES:
        return None
    return settings.replace(num_frames=frames)


def scaled_size(height: int, width: int, scale: float, multiple: int = 16) -> tuple[int, int]:
    """``(height, width)`` scaled and rounded down to ``multiple``, at least one multiple each."""
    return (
        max(multiple, int(height * scale) // multiple * multiple),
        max(multiple, int(width * scale) // multiple * multiple),
    )


def resolution_options(settings: GenerationSettings, multiple: int = 16) -> Iterator[tuple[int, int]]:
    """Smaller valid ``(height, width)`` with the same aspect ratio, largest first."""
    seen = {(settings.height, settings.width)}
    for scale in RESOLUTION_SCALES:
        size = scaled_size(settings.height, settings.width, scale, multiple)
        if size not in seen and size[0] <= settings.height and size[1] <= settings.width:
            seen.add(size)
            yield size


def reduce_resolution(settings: GenerationSettings, multiple: int = 16) -> GenerationSettings | None:
    """Three quarters of each side, rounded to ``multiple``; None when it cannot shrink."""
    for height, width in resolution_options(settings, multiple):
        return settings.replace(height=height, width=width)
    return None


def tile_sizes(settings: GenerationSettings | None, spatial: int = 8) -> dict[str, int]:
    """Tile sizes for ``vae.enable_tiling``: diffusers' defaults unless the video is small.

    The Wan VAE tiles only sides above ``tile_sample_min`` (256 px by default), so for a
    small video (tests, previews) half the short side is used, with diffusers' 3/4 stride.
    """
    s = settings
    if s is None or max(s.height, s.width) > 256:
        return {}
    tile = max(2 * spatial, (min(s.height, s.width) // 2) // spatial * spatial)
    stride = max(spatial, (tile * 3 // 4) // spatial * spatial)
    return {
        "tile_sample_min_height": tile,
        "tile_sample_min_width": tile,
        "tile_sample_stride_height": stride,
        "tile_sample_stride_width": stride,
    }
