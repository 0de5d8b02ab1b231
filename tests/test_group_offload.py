"""group_offload reaches the text encoder's blocks (block_modules), and the estimate follows."""

from __future__ import annotations


def test_text_encoder_blocks_get_their_own_groups_and_the_output_is_unchanged(tiny_path):
    import torch
    from diffusers import DiffusionPipeline

    from wan_nb.fixtures import tiny_call_kwargs
    from wan_nb.strategies import StrategyContext, get_strategy

    pipe = DiffusionPipeline.from_pretrained(tiny_path("wan2.1-t2v", 1))
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        before = pipe(**tiny_call_kwargs(output_type="latent")).frames
    get_strategy("group_offload").apply(pipe, "cpu", StrategyContext(device="cpu"))
    for block in pipe.text_encoder.encoder.block:
        registry = getattr(block, "_diffusers_hook", None)
        assert registry is not None and registry.get_hook("group_offloading") is not None
    with torch.no_grad():
        after = pipe(**tiny_call_kwargs(output_type="latent")).frames
    assert torch.equal(before, after)


def test_estimate_puts_the_embedding_and_a_block_of_umt5_on_the_device(synth_path):
    from wan_nb.memory import estimate_memory
    from wan_nb.model import analyze_model_components
    from wan_nb.settings import GenerationSettings

    report = analyze_model_components(synth_path("wan2.1-t2v-1.3b"))
    est = estimate_memory(report, GenerationSettings(480, 832, 81), "group_offload", device="cuda")
    te = next(c for c in report.components if c.name == "text_encoder")
    resident = est.parts["text_encode"]["weights"]
    embedding = 256384 * 4096 * 2
    assert resident < te.parameters * 2 / 3  # far from the whole 11 GB encoder
    assert embedding < resident < embedding + 3 * (te.parameters * 2 - embedding) // 24
