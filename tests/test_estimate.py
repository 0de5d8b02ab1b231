"""wan_nb.memory.estimate: counted weights, fitted activations, every strategy, honest output."""

from __future__ import annotations

import json

import pytest

from wan_nb.memory import MemoryEstimate, estimate_memory, reduce_frames, reduce_resolution
from wan_nb.memory import _activations as A
from wan_nb.settings import GenerationSettings
from wan_nb.vocabulary import DEGRADED_STRATEGIES, MEMORY_STRATEGIES

P480 = GenerationSettings(height=480, width=832, num_frames=81)
GIB = 2**30


@pytest.fixture(scope="module")
def ti2v(synth_path):
    from wan_nb.model.components import analyze_model_components

    return analyze_model_components(synth_path("wan2.2-ti2v-5b"))


@pytest.fixture(scope="module")
def tiny_report(tiny_path):
    from wan_nb.model.components import analyze_model_components

    return analyze_model_components(tiny_path("wan2.1-t2v", 1))


def test_weights_are_counted_from_the_headers(ti2v):
    # float32 everywhere: the resident bytes are the header's bytes, converted exactly.
    est = estimate_memory(ti2v, P480.replace(dtype="float32"), device="cuda")
    params = {c.name: c.parameters for c in ti2v.components if c.parameters}
    assert est.weights_bytes == 4 * sum(params.values())
    # bfloat16: two bytes a parameter, except the transformer's float32 norms/time embedding.
    bf16 = estimate_memory(ti2v, P480, device="cuda")
    halved = 2 * (params["text_encoder"] + params["transformer"]) + 4 * params["vae"]
    assert halved < bf16.weights_bytes < halved * 1.02


def test_latent_geometry_and_tokens(ti2v):
    est = estimate_memory(ti2v, GenerationSettings(height=704, width=1280, num_frames=121), device="cuda")
    # TI2V: 16x VAE, (121 - 1) / 4 + 1 = 31 latent frames, 2x2 patches: 31 x 22 x 40 tokens.
    assert any("= 27280 per pass" in a and "expand_timesteps" in a for a in est.assumptions)
    assert est.settings.latent_frames == 31


def test_every_strategy_and_combination_is_estimated(ti2v):
    from wan_nb.strategies import COMBINATIONS

    base = estimate_memory(ti2v, P480, device="cuda")
    for name in (*MEMORY_STRATEGIES, *DEGRADED_STRATEGIES, *COMBINATIONS):
        est = estimate_memory(ti2v, P480, name, device="cuda")
        assert est.strategy == name and est.source == "estimate"
        assert est.peak_bytes > 0 and est.peak_stage in est.by_stage
        if name in ("model_cpu_offload", "group_offload", "sequential_cpu_offload", "layerwise_fp8",
                    "quantize_int8", "quantize_nf4", "fewer_frames", "lower_resolution", "vae_tiling"):  # fmt: skip
            assert est.peak_bytes < base.peak_bytes, name
    # the offloads, from most to least memory
    peaks = [estimate_memory(ti2v, P480, s).peak_bytes for s in ("none", "model_cpu_offload", "group_offload")]
    assert peaks == sorted(peaks, reverse=True)
    seq = estimate_memory(ti2v, P480, "sequential_cpu_offload")
    assert seq.by_stage["denoise"] < estimate_memory(ti2v, P480, "group_offload").by_stage["denoise"]


def test_on_the_cpu_offloading_saves_nothing(ti2v):
    plain = estimate_memory(ti2v, P480, device="cpu")
    for name in ("model_cpu_offload", "group_offload", "text_encoder_cpu"):
        assert estimate_memory(ti2v, P480, name, device="cpu").peak_bytes == plain.peak_bytes
    assert any("same memory" in a for a in estimate_memory(ti2v, P480, "group_offload", device="cpu").assumptions)


def test_strategy_effects_follow_the_arithmetic(ti2v):
    none = estimate_memory(ti2v, P480)
    te = ti2v.component("text_encoder").parameters
    assert none.weights_bytes - estimate_memory(ti2v, P480, "text_encoder_cpu").weights_bytes == 2 * te
    fp8 = estimate_memory(ti2v, P480, "layerwise_fp8")
    tf = ti2v.component("transformer").parameters
    # most transformer weights go from two bytes to one
    assert 0.8 * tf < none.weights_bytes - fp8.weights_bytes < tf
    f32 = estimate_memory(ti2v, P480.replace(dtype="float32"))
    half = estimate_memory(ti2v, P480.replace(dtype="float32"), "half_precision")
    assert half.weights_bytes < 0.55 * f32.weights_bytes
    tiled = estimate_memory(ti2v, GenerationSettings(height=704, width=1280, num_frames=121), "vae_tiling")
    whole = estimate_memory(ti2v, GenerationSettings(height=704, width=1280, num_frames=121))
    assert tiled.by_stage["vae_decode"] < whole.by_stage["vae_decode"]


def test_cfg_runs_two_passes_not_a_doubled_batch(ti2v):
    cfg = estimate_memory(ti2v, P480.replace(guidance_scale=5.0))
    no_cfg = estimate_memory(ti2v, P480.replace(guidance_scale=1.0))
    assert cfg.parts["denoise"]["activations"] == no_cfg.parts["denoise"]["activations"]
    assert cfg.parts["denoise"]["held"] > no_cfg.parts["denoise"]["held"]  # both prompt embeddings
    two = estimate_memory(ti2v, P480.replace(batch_size=2))
    assert two.parts["denoise"]["activations"] == 2 * cfg.parts["denoise"]["activations"]


def test_degraded_strategies_estimate_the_reduced_call(ti2v):
    fewer = estimate_memory(ti2v, P480, "fewer_frames")
    assert fewer.settings.num_frames == 41 and fewer.requested_settings == P480
    lower = estimate_memory(ti2v, P480, "lower_resolution")
    assert (lower.settings.height, lower.settings.width) == (352, 608)  # 3/4, multiples of 32
    assert reduce_frames(GenerationSettings(num_frames=5)) is None
    smaller = reduce_resolution(P480, vae_factor=16, patch=2)
    assert smaller.height % 32 == 0 and smaller.width % 32 == 0 and smaller.height < 480


def test_bad_input_says_what_to_do(ti2v):
    with pytest.raises(ValueError, match="Unknown memory strategy `vae_tilling`.*vae_tiling"):
        estimate_memory(ti2v, P480, "vae_tilling")
    with pytest.raises(ValueError, match="model_cpu_offload"):
        estimate_memory(ti2v, P480, "model_cpu_offload+group_offload")
    with pytest.raises(ValueError, match="generic_pipeline"):
        estimate_memory(ti2v, P480, "generic_pipeline")
    with pytest.raises(TypeError, match="ComponentReport"):
        estimate_memory(42, P480)


def test_round_trip_and_displays(ti2v, synth_path):
    est = estimate_memory(synth_path("wan2.2-ti2v-5b"), P480, "model_cpu_offload+vae_tiling")  # a path works too
    data = json.loads(json.dumps(est.to_dict()))
    back = MemoryEstimate.from_dict(data)
    assert back == est
    text = est.to_text()
    for word in ("text_encode", "denoise", "vae_decode", "model_cpu_offload+vae_tiling", "Assumptions", "fitted"):
        assert word in text
    frame = est.to_frame()
    assert list(frame["stage"]) == list(est.parts) and frame["peak_bytes"].max() == est.peak_bytes
    with pytest.raises(ValueError, match="predictions"):
        MemoryEstimate.from_dict({**data, "source": "measured"})


def test_the_published_order_of_magnitude(synth_path):
    # Wan2.2 TI2V 5B at 720P with offload: published 22.9 GB (Wan's code, RTX 4090).
    from wan_nb.model.components import analyze_model_components

    report = analyze_model_components(synth_path("wan2.2-ti2v-5b"))
    est = estimate_memory(report, GenerationSettings(height=704, width=1280, num_frames=121), "model_cpu_offload")
    worst = max(v for k, v in est.by_stage.items() if k not in ("weights", "text_encode"))
    assert 0.7 * 22.9e9 < worst < 1.3 * 22.9e9


def test_calibration_is_shipped_with_its_measurements():
    data = A.calibration()
    for name in ("transformer", "text_encoder", "vae21_decode", "vae22_decode", "vae21_encode"):
        model = data["models"][name]
        assert set(model["coefficients"]) == set(model["features"])
        assert len(model["measurements"]) >= len(model["features"])
        assert model["fit"]["median_rel_error"] < 0.1


def test_estimate_matches_a_measurement_on_the_cpu(tiny_report, tiny_path):
    torch = pytest.importorskip("torch")
    from diffusers import DiffusionPipeline

    from wan_nb.fixtures import tiny_call_kwargs
    from wan_nb.memory import measure

    pipe = DiffusionPipeline.from_pretrained(tiny_path("wan2.1-t2v", 1))
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad(), measure("cpu", pipeline=pipe) as m:
        pipe(**tiny_call_kwargs("wan2.1-t2v", height=96, width=96, num_frames=9))
    settings = GenerationSettings(height=96, width=96, num_frames=9, num_inference_steps=2, dtype="float32",
                                  max_sequence_length=32)  # fmt: skip
    est = estimate_memory(tiny_report, settings, device="cpu")
    # The baseline also holds whatever other code in this process keeps alive: compare what
    # the call adds above the weights (the benchmark compares whole peaks in a clean process).
    measured = m.peak_bytes - m.baseline_bytes
    estimated = est.peak_bytes - est.weights_bytes
    assert abs(estimated - measured) / measured < 0.1
    assert m.baseline_bytes >= est.weights_bytes * 0.99
    assert est.peak_stage == max((s for s in m.by_stage if s != "unknown"), key=m.by_stage.get) == "vae_decode"
