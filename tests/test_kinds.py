"""Every Wan pipeline kind: the tiny I2V / VACE / V2V fixtures, and the estimate against a measurement."""

from __future__ import annotations

import pytest

from wan_nb.fixtures import KIND_VARIANTS, tiny_call_kwargs
from wan_nb.settings import GenerationSettings


def _load(tiny_path, variant, size=1):
    from diffusers import DiffusionPipeline

    from wan_nb.fixtures.tiny import _quiet

    with _quiet():
        pipe = DiffusionPipeline.from_pretrained(tiny_path(variant, size))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_kinds_are_built_as_diffusers_tests_build_them(tiny_path):
    expected = {
        "wan2.1-i2v-t5": ("WanImageToVideoPipeline", "WanTransformer3DModel"),
        "wan2.1-vace": ("WanVACEPipeline", "WanVACETransformer3DModel"),
        "wan2.1-v2v": ("WanVideoToVideoPipeline", "WanTransformer3DModel"),
    }
    assert set(expected) == set(KIND_VARIANTS)
    for variant, (pipeline_class, transformer_class) in expected.items():
        pipe = _load(tiny_path, variant)
        assert type(pipe).__name__ == pipeline_class
        assert type(pipe.transformer).__name__ == transformer_class
        assert type(pipe.text_encoder).__name__ == "T5EncoderModel"
    i2v = _load(tiny_path, "wan2.1-i2v-t5")
    assert type(i2v.image_encoder).__name__ == "CLIPVisionModelWithProjection"
    assert "CLIPImageProcessor" in type(i2v.image_processor).__name__
    vace = _load(tiny_path, "wan2.1-vace")
    assert list(vace.transformer.config.vace_layers) == [0, 2] and len(vace.transformer.vace_blocks) == 2


def test_each_kind_runs_and_v2v_follows_its_input_video(tiny_path):
    import torch

    for variant in KIND_VARIANTS:
        pipe = _load(tiny_path, variant)
        kwargs = tiny_call_kwargs(variant, num_frames=9)
        if variant == "wan2.1-v2v":
            assert "num_frames" not in kwargs and len(kwargs["video"]) == 9
        else:
            assert ("image" in kwargs) == (variant == "wan2.1-i2v-t5")
            assert ("video" in kwargs) == (variant == "wan2.1-vace")
        with torch.no_grad():
            frames = pipe(**kwargs).frames
        assert frames.shape == (1, 9, 32, 32, 3), variant


def test_fewer_frames_shortens_the_input_videos(tiny_path):
    from wan_nb.strategies import StrategyContext, get_strategy

    strategy = get_strategy("fewer_frames")
    for variant in ("wan2.1-v2v", "wan2.1-vace"):
        pipe = _load(tiny_path, variant)
        ctx = StrategyContext(settings=GenerationSettings(32, 32, 17))
        kwargs = strategy.rewrite_call(pipe, tiny_call_kwargs(variant, num_frames=17), ctx)
        assert len(kwargs["video"]) == 9
        assert ("num_frames" in kwargs) == (variant == "wan2.1-vace")


@pytest.mark.parametrize("variant,h,w,frames,extra", [
    ("wan2.1-vace", 64, 64, 13, {"output_type": "latent"}),
    ("wan2.1-v2v", 64, 64, 13, {"output_type": "latent"}),
    ("wan2.1-i2v-t5", 64, 64, 13, {"output_type": "latent"}),
    ("wan2.1-vace", 96, 96, 9, {}),
])  # fmt: skip
def test_estimate_of_each_kind_matches_a_measurement(tiny_path, variant, h, w, frames, extra):
    import torch

    from wan_nb.memory import estimate_memory, measure
    from wan_nb.model import analyze_model_components

    pipe = _load(tiny_path, variant, 2)
    with torch.no_grad(), measure("cpu", pipeline=pipe) as m:
        pipe(**tiny_call_kwargs(variant, height=h, width=w, num_frames=frames, **extra))
    settings = GenerationSettings(h, w, frames, num_inference_steps=2, dtype="float32", max_sequence_length=32)
    est = estimate_memory(analyze_model_components(tiny_path(variant, 2)), settings, device="cpu",
                          output_type=extra.get("output_type", "np"))  # fmt: skip
    # The input video is encoded before denoising, and that stage is modelled.
    assert "vae_encode" in est.by_stage
    # As in test_estimate: the baseline also holds what other tests keep alive; compare the
    # call's own bytes above the weights.
    measured = m.peak_bytes - m.baseline_bytes
    estimated = est.peak_bytes - est.weights_bytes
    assert abs(estimated - measured) / measured < 0.15, (variant, measured, estimated)
    measured_stage = max((s for s in m.by_stage if s != "unknown"), key=m.by_stage.get)
    assert est.peak_stage == measured_stage
