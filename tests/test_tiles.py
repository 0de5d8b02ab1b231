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


def test_the_strategy_form_always_tiles():
    choice = choose_tiling(VAE21, 480, 832, 81, 80 * GIB, allow_whole=False)
    assert choice.tile == 816 and choice.count > 1 and choice.fits  # the largest tile under the long side


def test_reserved_bytes_count_against_the_budget_and_nothing_fitting_is_said():
    free = choose_tiling(VAE21, 480, 832, 81, 12 * GIB)
    busy = choose_tiling(VAE21, 480, 832, 81, 12 * GIB, reserved_bytes=6 * GIB)
    assert (busy.tile or 10**6) < (free.tile or 10**6)
    hopeless = choose_tiling(VAE21, 480, 832, 81, 1 * GIB)
    assert not hopeless.fits and hopeless.tile is not None


def test_estimate_under_a_budget_reports_the_tile(synth_path):
    from wan_nb.memory import MemoryEstimate, estimate_memory
    from wan_nb.model import analyze_model_components

    report = analyze_model_components(synth_path("wan2.1-t2v-1.3b"))
    settings = GenerationSettings(480, 832, 81)
    roomy = estimate_memory(report, settings, "model_cpu_offload+vae_tiling", memory_available=80 * GIB)
    tight = estimate_memory(report, settings, "model_cpu_offload+vae_tiling", memory_available=6 * GIB)
    # vae_tiling always tiles (it runs because a decode failed): the largest tile when memory is ample
    assert roomy.choices["vae_tile"] > tight.choices["vae_tile"] > 0
    assert tight.by_stage["vae_decode"] < roomy.by_stage["vae_decode"]
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


def test_recover_under_a_budget_runs_the_tile_it_predicted(tiny_path):
    import torch
    from diffusers import DiffusionPipeline

    import wan_nb
    from wan_nb.fixtures import tiny_call_kwargs
    from wan_nb.memory import measure

    pipe = DiffusionPipeline.from_pretrained(tiny_path("wan2.1-t2v", 2))
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(height=192, width=192, num_frames=9)
    with torch.no_grad(), measure("cpu", pipeline=pipe) as whole:
        pipe(**tiny_call_kwargs(**kwargs))
    weights = sum(p.numel() * p.element_size() for m in pipe.components.values() if hasattr(m, "parameters")
                  for p in m.parameters())  # fmt: skip
    # a budget the untiled call exceeds: the weights and 70 % of what the call adds above them
    budget = int(weights + 0.7 * (whole.peak_bytes - whole.baseline_bytes))
    settings = GenerationSettings(192, 192, 9, num_inference_steps=2, dtype="float32", max_sequence_length=32)
    seen = []

    def look(p, step, timestep, tensors):  # the strategy is set up by the time the steps run
        seen.append(p.vae.tile_sample_min_height if p.vae.use_tiling else None)
        return tensors

    def run():
        with torch.no_grad():
            return pipe(**tiny_call_kwargs(**kwargs), callback_on_step_end=look)

    report = wan_nb.recover(run, pipeline=pipe, budget=budget, settings=settings, strategies=["vae_tiling"],
                            error=torch.OutOfMemoryError("CUDA out of memory"), device="cpu")  # fmt: skip
    attempt = report.attempts[0]
    assert report.winner == "vae_tiling" and attempt.succeeded
    assert attempt.measured_peak_bytes <= budget
    tile = seen[-1]
    # the tile the plan estimated is the one that ran: the largest predicted to fit
    vae = dict(pipe.vae.config)
    assert tile is not None
    assert A.vae_tiled_decode_bytes(vae, 9, 192, 192, 4, tile_kwargs(tile)) + weights <= budget
    assert tile == 176 or A.vae_tiled_decode_bytes(vae, 9, 192, 192, 4, tile_kwargs(tile + 16)) + weights > budget * 0.9
    assert not pipe.vae.use_tiling  # the pipeline is put back afterwards
