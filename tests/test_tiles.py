"""wan_nb.memory.tiles and vae_tiling: the largest tile predicted to fit, applied and written in the snippet."""

from __future__ import annotations

from wan_nb.memory import _activations as A
from wan_nb.memory.tiles import choose_tiling, tile_kwargs
from wan_nb.settings import GenerationSettings

VAE21 = {"base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_scales": [],
         "temperal_downsample": [False, True, True]}  # fmt: skip
GIB = 2**30


def test_no_tiling_when_the_whole_decode_fits():
    choice = choose_tiling(VAE21, 480, 832, 81, 80 * GIB)
    assert choice.tile is None and choice.kwargs == {} and choice.fits and choice.count == 1


def test_the_largest_tile_that_fits_is_chosen():
    whole = A.vae_decode_bytes(VAE21, 81, 480, 832, 4)
    available = whole * 0.7
    choice = choose_tiling(VAE21, 480, 832, 81, available)
    assert choice.tile is not None and choice.fits and choice.predicted_bytes <= available
    assert choice.count > 1
    # the next larger candidate would not have fitted
    bigger = choice.tile + 16
    assert A.vae_tiled_decode_bytes(VAE21, 81, 480, 832, 4, tile_kwargs(bigger)) > available
    # less memory: a tile no larger
    tighter = choose_tiling(VAE21, 480, 832, 81, available * 0.8)
    assert tighter.tile is None or tighter.tile <= choice.tile


def test_reserved_bytes_count_against_the_budget_and_nothing_fitting_is_said():
    free = choose_tiling(VAE21, 480, 832, 81, 12 * GIB)
    busy = choose_tiling(VAE21, 480, 832, 81, 12 * GIB, reserved_bytes=6 * GIB)
    assert (busy.tile or 10**6) < (free.tile or 10**6)
    hopeless = choose_tiling(VAE21, 480, 832, 81, 1 * GIB)
    assert not hopeless.fits and hopeless.tile is not None


def test_estimate_under_a_budget_reports_the_tile(synth_path):
    from wan_nb.components import analyze_model_components
    from wan_nb.memory import MemoryEstimate, estimate_memory

    report = analyze_model_components(synth_path("wan2.1-t2v-1.3b"))
    settings = GenerationSettings(480, 832, 81)
    roomy = estimate_memory(report, settings, "model_cpu_offload+vae_tiling", memory_available=80 * GIB)
    tight = estimate_memory(report, settings, "model_cpu_offload+vae_tiling", memory_available=6 * GIB)
    assert roomy.choices["vae_tile"] is None
    assert tight.choices["vae_tile"] and tight.by_stage["vae_decode"] < roomy.by_stage["vae_decode"]
    assert tight.by_stage["vae_decode"] <= 6 * GIB
    assert any("chosen by prediction" in a for a in tight.assumptions)
    assert MemoryEstimate.from_dict(tight.to_dict()).choices == tight.choices


def test_vae_tiling_applies_the_predicted_tile_and_the_decode_fits(tiny_path):
    import torch
    from diffusers import DiffusionPipeline

    from wan_nb.memory import measure
    from wan_nb.strategies import StrategyContext, get_strategy

    pipe = DiffusionPipeline.from_pretrained(tiny_path("wan2.1-t2v", 2))
    h = w = 192
    latents = torch.randn(1, 16, 3, h // 8, w // 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), measure("cpu") as whole:
        pipe.vae.decode(latents, return_dict=False)
    weights = sum(p.numel() * p.element_size() for m in pipe.components.values() if hasattr(m, "parameters")
                  for p in m.parameters())  # fmt: skip
    # memory for the weights and 60 % of what the whole decode adds above what was there
    available = int(weights + 0.6 * (whole.peak_bytes - whole.baseline_bytes))
    ctx = StrategyContext(device="cpu", settings=GenerationSettings(h, w, 9), memory_available=available)
    get_strategy("vae_tiling").apply(pipe, "cpu", ctx)
    tile = ctx.choices["vae_tile"]
    assert "vae_tile" not in ctx.changes  # never a call argument
    assert tile and pipe.vae.use_tiling and pipe.vae.tile_sample_min_height == tile
    with torch.no_grad(), measure("cpu") as tiled:
        pipe.vae.decode(latents, return_dict=False)
    assert weights + tiled.peak_bytes - tiled.baseline_bytes <= available
    assert f"tile_sample_min_height={tile}" in get_strategy("vae_tiling").snippet(choices={"vae_tile": tile})
