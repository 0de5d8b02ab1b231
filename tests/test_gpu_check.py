"""benchmarks/gpu_check.py on the CPU: the real-size model on the meta device, materialising, the table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_size_model_is_built_on_meta_with_the_published_count(gpu_check):
    models = gpu_check.build_on_meta()
    transformer = models["transformer"]
    assert sum(p.numel() for p in transformer.parameters()) == 1_418_996_800
    for model in models.values():
        assert all(p.is_meta for p in model.parameters())
    assert models["text_encoder"].config.d_model == 4096 and len(models["text_encoder"].encoder.block) == 24
    assert models["vae"].config.z_dim == 16
    # the rotary tables are buffers made for real, not meta
    assert not any(b.is_meta for b in transformer.buffers())


def test_materialize_gives_random_weights_and_keeps_fp32_modules(gpu_check):
    import torch
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel

    from wan_nb.fixtures.tiny import _transformer_config

    config = _transformer_config("wan2.1-t2v", 1, 128, None)
    with init_empty_weights(include_buffers=False):
        meta = WanTransformer3DModel(**config)
    real = WanTransformer3DModel(**config)
    model = gpu_check.materialize(meta, "cpu", torch.bfloat16)
    params = dict(model.named_parameters())
    assert not any(p.is_meta for p in params.values())
    assert params["blocks.0.ffn.net.0.proj.weight"].dtype == torch.bfloat16
    assert params["scale_shift_table"].dtype == torch.float32  # kept float32, as diffusers loads it
    weight = params["blocks.0.ffn.net.0.proj.weight"].float()
    assert 0.015 < weight.std().item() < 0.025
    for (name, b), (_, ref) in zip(model.named_buffers(), real.named_buffers()):
        assert torch.equal(b, ref), name
    hidden = torch.randn(1, 16, 2, 8, 8, dtype=torch.bfloat16)
    with torch.no_grad():
        out = model(hidden, torch.tensor([500]), torch.randn(1, 4, 128, dtype=torch.bfloat16), return_dict=False)[0]
    assert out.shape == hidden.shape and torch.isfinite(out.float()).all()


def test_table_round_trips_and_rejects_other_text(gpu_check):
    rows = [
        {"frames": 33, "strategy": "none", "measured_bytes": 21_000_000_123, "estimated_bytes": 20_500_000_000,
         "error": -0.0238, "measured_stage": "text_encode", "estimated_stage": "text_encode", "seconds": 12.34},
        {"frames": 81, "strategy": "group_offload", "measured_bytes": 7_000_000_000,
         "estimated_bytes": 7_700_000_000, "error": 0.1, "measured_stage": "vae_decode",
         "estimated_stage": "vae_decode", "seconds": 80.0},
    ]
    back = gpu_check.read_table(gpu_check.format_table(rows))
    assert [r["measured_bytes"] for r in back] == [21_000_000_123, 7_000_000_000]
    assert [r["strategy"] for r in back] == ["none", "group_offload"]
    assert back[0]["error"] == pytest.approx(-0.0238) and back[1]["seconds"] == pytest.approx(80.0)
    with pytest.raises(ValueError, match="not a gpu_check table"):
        gpu_check.read_table("frames strategy\n33 none\n")
    with pytest.raises(ValueError, match="line 2"):
        gpu_check.read_table("\t".join(gpu_check.COLUMNS) + "\n33\tnone\n")


def test_script_refuses_without_cuda(gpu_check, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: benchmarks/gpu_check.sh runs the check")
    with pytest.raises(SystemExit, match="no CUDA device"):
        gpu_check.run(tmp_path / "t.tsv")
