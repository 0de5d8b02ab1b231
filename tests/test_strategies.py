"""The strategy catalogue: its data, its combinations, its snippets, and its effect on real tiny pipelines."""

from __future__ import annotations

import ast
import re

import pytest

from wan_nb import geometry as sizes
from wan_nb.settings import GenerationSettings
from wan_nb.strategies import COMBINATIONS, STRATEGIES, StrategyContext, get_strategy, parse_strategy
from wan_nb.vocabulary import (
    CATEGORIES,
    DEGRADED_STRATEGIES,
    MEMORY_STRATEGIES,
    STAGES,
    STRATEGY_KINDS,
    STRUCTURAL_STRATEGIES,
)

SMALL = GenerationSettings(height=32, width=32, num_frames=5, num_inference_steps=1, guidance_scale=5.0,
                           max_sequence_length=32)


# --------------------------------------------------------------------------- the data


def test_catalogue_covers_the_vocabulary_and_uses_its_words():
    assert set(STRATEGIES) == set(MEMORY_STRATEGIES) | set(DEGRADED_STRATEGIES) | set(STRUCTURAL_STRATEGIES)
    for name, s in STRATEGIES.items():
        assert s.name == name and s.kind in STRATEGY_KINDS
        assert s.answers and set(s.answers) <= set(CATEGORIES)
        assert s.stages and set(s.stages) <= set(STAGES)
        assert s.quality in ("unchanged", "changed")
        assert s.limitations and s.summary
        # Costs are words unless measured: no invented "1.3x".
        assert not re.search(r"\d", s.slowdown), (name, s.slowdown)
    for name in DEGRADED_STRATEGIES:
        s = STRATEGIES[name]
        assert s.degraded and s.kind == "reduced_functionality" and s.quality == "changed"
    assert not any(STRATEGIES[n].degraded for n in MEMORY_STRATEGIES)
    # Accelerator-bound ones say so; the ones that run on a CPU do not.
    assert {n for n, s in STRATEGIES.items() if s.needs_accelerator} == {
        "model_cpu_offload", "group_offload", "sequential_cpu_offload", "text_encoder_cpu",
        "quantize_int8", "quantize_nf4", "balanced_device_map", "vae_on_cpu"}
    assert STRATEGIES["quantize_nf4"].needs_packages == ("bitsandbytes",)
    assert STRATEGIES["balanced_device_map"].min_accelerators == 2
    assert {n for n, s in STRATEGIES.items() if s.fresh_load} == {
        "layerwise_fp8", "half_precision", "quantize_int8", "quantize_nf4", "balanced_device_map"}


def test_combination_merges_what_its_parts_need_and_cost():
    s = get_strategy("model_cpu_offload+vae_tiling")
    assert s.name == "model_cpu_offload+vae_tiling" and s.parts == ("model_cpu_offload", "vae_tiling")
    assert [m.name for m in s.members] == ["model_cpu_offload", "vae_tiling"] and s.is_combination
    assert s.needs_accelerator and s.to_policy == "ignore" and not s.fresh_load
    assert set(s.stages) >= {"vae_decode", "denoise"}
    assert s.cost_rank > STRATEGIES["vae_tiling"].cost_rank
    d = get_strategy("fewer_frames+half_precision")
    assert d.degraded and d.kind == "reduced_functionality" and d.fresh_load and d.quality == "changed"
    assert get_strategy(" vae_tiling ") is STRATEGIES["vae_tiling"]
    assert get_strategy(s) is s
    for name in COMBINATIONS:
        assert get_strategy(name).name == name


def test_unknown_and_conflicting_names_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"Unknown strategy `vae_tilling`.*Valid strategies: vae_tiling"):
        get_strategy("vae_tilling+model_cpu_offload")
    with pytest.raises(ValueError, match="both decide where the models live"):
        get_strategy("model_cpu_offload+sequential_cpu_offload")
    with pytest.raises(ValueError, match="pick one"):
        parse_strategy("quantize_int8+quantize_nf4")
    with pytest.raises(ValueError, match="same strategy twice"):
        parse_strategy("vae_tiling+vae_tiling")
    with pytest.raises(ValueError, match="non-empty"):
        get_strategy("")


# --------------------------------------------------------------------------- sizes


def test_smaller_sizes_stay_valid_for_wan():
    s = GenerationSettings(height=480, width=832, num_frames=81)
    frames = list(sizes.frame_options(s))
    assert frames[0] == 77 and frames[-1] == 5 and all((f - 1) % 4 == 0 for f in frames)
    assert sizes.reduce_frames(s).num_frames == 41
    assert sizes.reduce_frames(s.replace(num_frames=5)) is None
    assert sizes.valid_frames(80) == 77
    res = list(sizes.resolution_options(s, 16))
    assert res[0] == (352, 624) and all(h % 16 == 0 and w % 16 == 0 for h, w in res)
    # Wan 2.2 TI2V: 16x VAE x 2 patch = 32.
    assert sizes.side_multiple(16, 2) == 32 and sizes.side_multiple(8, 2) == 16
    assert all(h % 32 == 0 and w % 32 == 0 for h, w in sizes.resolution_options(s, 32))
    assert sizes.reduce_resolution(GenerationSettings(height=16, width=16), 16) is None
    ctx = StrategyContext(settings=s, changes={"num_frames": 9})
    assert STRATEGIES["fewer_frames"].call_kwargs(s, ctx) == {"num_frames": 9}
    assert STRATEGIES["fewer_frames"].call_kwargs(s) == {"num_frames": 41}
    assert STRATEGIES["lower_resolution"].call_kwargs(s) == {"height": 352, "width": 624}


def test_tile_sizes_follow_diffusers_defaults_except_for_small_videos():
    assert STRATEGIES["vae_tiling"].code(StrategyContext(settings=GenerationSettings())).setup == [
        "{pipe}.vae.enable_tiling()"]
    from wan_nb.strategies import tiling_kwargs

    small = tiling_kwargs(StrategyContext(settings=GenerationSettings(height=64, width=96)))
    assert small == {"tile_sample_min_height": 32, "tile_sample_min_width": 32,
                     "tile_sample_stride_height": 24, "tile_sample_stride_width": 24}


# --------------------------------------------------------------------------- snippets


@pytest.mark.parametrize("name", [*(n for n in STRATEGIES if n not in STRUCTURAL_STRATEGIES), *COMBINATIONS])
def test_every_snippet_is_python_that_uses_diffusers_api(name):
    s = get_strategy(name)
    text = s.snippet(path="/models/Wan2.1-T2V-1.3B-Diffusers", pipeline_class="WanPipeline", device="cuda",
                     settings=GenerationSettings(), dtype="bfloat16", components=("transformer", "text_encoder"))
    ast.parse(text)
    assert text.startswith(f"# wan_nb strategy `{name}`")
    assert 'WanPipeline.from_pretrained("/models/Wan2.1-T2V-1.3B-Diffusers"' in text
    expected = {
        "vae_tiling": "pipe.vae.enable_tiling()",
        "vae_slicing": "pipe.vae.enable_slicing()",
        "vae_on_cpu": "pipe.vae.to(\"cpu\")",
        "model_cpu_offload": "pipe.enable_model_cpu_offload()",
        "group_offload": 'offload_type="block_level", num_blocks_per_group=1, use_stream=True',
        "sequential_cpu_offload": "pipe.enable_sequential_cpu_offload()",
        "layerwise_fp8": "enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)",
        "half_precision": "=torch.bfloat16",
        "text_encoder_cpu": "pipe.encode_prompt(",
        "quantize_int8": '"bitsandbytes_8bit"',
        "quantize_nf4": '"bnb_4bit_quant_type": "nf4"',
        "balanced_device_map": 'device_map="balanced"',
        "fewer_frames": "num_frames=41",
        "lower_resolution": "height=352, width=624",
    }
    for part in s.parts or (name,):
        assert expected[part] in text, (part, text)
    if s.to_policy == "ignore":
        assert "pipe.to('cuda')" not in text
    else:
        assert "pipe.to('cuda')" in text


@pytest.mark.parametrize("name", STRUCTURAL_STRATEGIES)
def test_structural_snippets_are_the_code_or_command_a_user_pastes(name):
    s = get_strategy(name)
    assert s.structural and s.kind in ("pipeline_substitution", "component_isolation", "alternative_model")
    text = s.snippet(path="/models/wan", device="cuda", dtype="bfloat16", models_dir="/models")
    ast.parse(text)
    assert text.startswith(f"# wan_nb strategy `{name}`")
    expected = {
        "generic_pipeline": 'DiffusionPipeline.from_pretrained("/models/wan", ',
        "assemble_components": 'assemble_components("/models/wan", torch_dtype=torch.bfloat16)',
        "remote_code": "trust_remote_code=True",
        "component_donor": 'assemble_with_donors("/models/wan", ["/models"], torch_dtype=torch.bfloat16)',
        "upgrade_library": 'pip install -U "diffusers',
        "redownload": "hf download",
        "alternative_model": "load_registry()",
    }
    assert expected[name] in text, text
    assert s.guidance == (name in ("upgrade_library", "redownload", "alternative_model"))
    with pytest.raises(ValueError, match="does not combine"):
        get_strategy(f"vae_tiling+{name}")


def test_snippet_without_a_folder_changes_the_existing_pipe():
    assert STRATEGIES["vae_tiling"].snippet() == (
        "# wan_nb strategy `vae_tiling`: decode (and encode) the video in overlapping spatial tiles\n\n"
        "pipe.vae.enable_tiling()\n")
    text = STRATEGIES["group_offload"].snippet("p", device="cuda:1")
    assert "apply_group_offloading(component, onload_device=torch.device('cuda:1')" in text and "import torch" in text
    assert 'block_modules=["encoder"] if name.startswith("text_encoder")' in text and "p.components.items()" in text
    # A strategy that changes the load has to show it, with a stand-in for the folder.
    assert 'DiffusionPipeline.from_pretrained("path/to/model", ' in STRATEGIES["half_precision"].snippet()
    mps = STRATEGIES["half_precision"].snippet(device="mps")
    assert "=torch.float16" in mps


def test_load_kwargs_are_real_objects():
    import torch

    from wan_nb.strategies import dtype_kwarg_name

    key = dtype_kwarg_name()
    assert key in ("dtype", "torch_dtype")
    assert STRATEGIES["half_precision"].load_kwargs(StrategyContext(device="cpu")) == {key: torch.bfloat16}
    assert STRATEGIES["balanced_device_map"].load_kwargs() == {"device_map": "balanced"}
    config = STRATEGIES["quantize_int8"].load_kwargs(
        StrategyContext(device="cuda", components=("transformer", "transformer_2", "text_encoder", "vae")))
    assert type(config["quantization_config"]).__name__ == "PipelineQuantizationConfig"
    assert config["quantization_config"].components_to_quantize == ["transformer", "transformer_2", "text_encoder"]
    assert get_strategy("half_precision+vae_tiling").load_kwargs() == {key: torch.bfloat16}


# --------------------------------------------------------------------------- on real tiny pipelines


def _fast_kwargs(**overrides):
    from wan_nb.fixtures import tiny_call_kwargs

    return tiny_call_kwargs("wan2.1-t2v", **{"num_inference_steps": 1, "output_type": "latent", **overrides})


def fingerprint(pipe) -> dict:
    """Everything a strategy may touch, as comparable plain data."""
    import torch

    out: dict = {"pipe": sorted(pipe.__dict__), "offload": pipe.__dict__.get("_offload_device")}
    for name, module in pipe.components.items():
        if not isinstance(module, torch.nn.Module):
            continue
        out[name] = {
            "tensors": {n: (str(t.device), str(t.dtype), type(t).__name__)
                        for n, t in [*module.named_parameters(), *module.named_buffers()]},
            "hooked": sorted(n for n, m in module.named_modules()
                             if {"_hf_hook", "_diffusers_hook", "forward", "_old_forward"} & set(m.__dict__)),
            "flags": {k: v for k, v in module.__dict__.items() if isinstance(v, (bool, int, float, str))},
        }
    return out


def _weights(pipe) -> dict:
    import torch

    return {f"{c}.{n}": t.detach().clone() for c, m in pipe.components.items() if isinstance(m, torch.nn.Module)
            for n, t in m.state_dict().items()}


@pytest.fixture(scope="module")
def pipe(tiny_path):
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(tiny_path("wan2.1-t2v", 1))


def _changed(name, pipe):
    """The visible sign that `name` is active on `pipe`."""
    if name == "vae_tiling":
        return pipe.vae.use_tiling
    if name == "vae_slicing":
        return pipe.vae.use_slicing
    if name == "model_cpu_offload":
        return len(pipe._all_hooks) == 3 and hasattr(pipe.transformer, "_hf_hook")
    if name == "group_offload":
        return pipe.transformer._diffusers_hook.get_hook("group_offloading") is not None
    if name == "text_encoder_cpu":
        return pipe.text_encoder.device.type == "cpu"
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["vae_tiling", "vae_slicing", "model_cpu_offload", "group_offload",
                                  "model_cpu_offload+vae_tiling"])
def test_apply_runs_and_restore_undoes_it(pipe, name):
    import torch

    before, weights = fingerprint(pipe), _weights(pipe)
    strategy = get_strategy(name)
    # On this CPU-only machine "cpu" stands in for the accelerator: diffusers' hooks run for
    # real, they just have nowhere else to move the weights to.
    state = strategy.apply(pipe, "cpu", StrategyContext(device="cpu", settings=SMALL))
    assert fingerprint(pipe) != before
    assert all(_changed(m.name, pipe) for m in strategy.members)
    latents = pipe(**_fast_kwargs()).frames
    assert torch.isfinite(latents).all()
    assert state.restore() == []
    assert fingerprint(pipe) == before
    assert all(torch.equal(weights[k], v) for k, v in _weights(pipe).items())


def test_text_encoder_on_cpu_gives_the_same_video_through_embeddings(pipe):
    import torch

    strategy = STRATEGIES["text_encoder_cpu"]
    reference = pipe(**_fast_kwargs()).frames
    ctx = StrategyContext(device="cpu", settings=SMALL)
    state = strategy.apply(pipe, "cpu", ctx)
    kwargs = strategy.rewrite_call(pipe, _fast_kwargs(num_videos_per_prompt=1), ctx)
    assert "prompt" not in kwargs and "negative_prompt" not in kwargs
    assert kwargs["prompt_embeds"].shape[0] == 1 and kwargs["negative_prompt_embeds"] is not None
    assert torch.equal(pipe(**kwargs).frames, reference)
    state.restore()


def test_layerwise_casting_in_place_is_reported_as_lossy(tiny_path):
    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_path("wan2.1-t2v", 1))
    before = fingerprint(pipe)
    state = STRATEGIES["layerwise_fp8"].apply(pipe, "cpu")
    assert pipe.transformer.blocks[0].ffn.net[2].weight.dtype == torch.float8_e4m3fn
    assert torch.isfinite(pipe(**_fast_kwargs()).frames).all()
    problems = state.restore()
    # Hooks and dtypes are back; the precision lost to float8 is not, and restore says so.
    assert fingerprint(pipe) == before
    assert len(problems) == 1 and "lost precision is not" in problems[0]
