"""The fixtures the rest of the suite stands on: real tiny pipelines, sparse checkpoints, faults."""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from wan_nb.fixtures import (
    SYNTH_PRESETS,
    TINY_VARIANTS,
    build_tiny_pipeline,
    copy_model,
    faults,
    tiny_call_kwargs,
    tiny_pipeline_path,
)


def _header(path: Path) -> dict:
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header


def _weights(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def _tensors(folder: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for weight in _weights(folder):
        out.update(_header(weight))
    return out


def _numel(shape) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


def _weight_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.safetensors"))


def _load(path: Path):
    from diffusers import DiffusionPipeline

    from wan_nb.fixtures.tiny import _quiet

    with _quiet():
        pipe = DiffusionPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _ftfy_missing() -> bool:
    try:
        import ftfy  # noqa: F401
    except ImportError:
        return True
    return False


def _embed(pipe, text: str, length: int):
    """Prompt embeddings as WanImageToVideoPipeline makes them (zeroed past the prompt)."""
    import torch

    ids = pipe.tokenizer(
        [text], padding="max_length", max_length=length, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        embeds = pipe.text_encoder(ids.input_ids, ids.attention_mask).last_hidden_state
    embeds[:, int(ids.attention_mask.sum()) :] = 0
    return embeds


def _run(pipe, variant: str, **overrides):
    kwargs = tiny_call_kwargs(variant, **overrides)
    try:
        return pipe(**kwargs).frames
    except NameError as exc:
        # diffusers 0.42's WanImageToVideoPipeline cleans prompts with ftfy without checking
        # that it is installed (WanPipeline checks): a prompt string fails with
        # "name 'ftfy' is not defined". Embeddings made here skip the cleaning.
        if "ftfy" not in str(exc) or not _ftfy_missing():
            raise
    kwargs = tiny_call_kwargs(variant, **overrides)
    length = kwargs["max_sequence_length"]
    kwargs["prompt_embeds"] = _embed(pipe, kwargs.pop("prompt"), length)
    kwargs["negative_prompt_embeds"] = _embed(pipe, kwargs.pop("negative_prompt"), length)
    return pipe(**kwargs).frames


# ----------------------------------------------------------------------------- package


def test_import_is_light_and_all_is_public():
    code = (
        "import sys, wan_nb.fixtures as f\n"
        "assert not {'torch', 'diffusers', 'transformers'} & set(sys.modules), sorted(sys.modules)\n"
        "print(len(f.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) >= 19
    import wan_nb.fixtures as fixtures

    public = {n for n in dir(fixtures) if not n.startswith("_")} - {"annotations", "importlib", "Any"}
    assert set(fixtures.__all__) == public - {"faults", "synth", "tiny", "kinds"}
    for name in fixtures.__all__:
        assert getattr(fixtures, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fixtures.nope  # noqa: B018


# ----------------------------------------------------------------------------- tiny pipelines


@pytest.mark.parametrize("variant", TINY_VARIANTS)
def test_tiny_variant_loads_and_runs(tiny_path, variant):
    import numpy as np

    path = tiny_path(variant)
    index = json.loads((path / "model_index.json").read_text())
    pipe = _load(path)
    expected_class = "WanImageToVideoPipeline" if variant == "wan2.1-i2v" else "WanPipeline"
    assert type(pipe).__name__ == index["_class_name"] == expected_class
    # What the installed save_pretrained writes is kept (transformers 5: T5Tokenizer);
    # published_names=True writes the published repos' T5TokenizerFast.
    assert index["tokenizer"][0] == "transformers" and index["tokenizer"][1].startswith("T5Tokenizer")
    assert type(pipe.scheduler).__name__ == "UniPCMultistepScheduler"
    assert (
        pipe.scheduler.config.prediction_type == "flow_prediction" and pipe.scheduler.config.use_flow_sigmas
    )

    if variant == "wan2.2-t2v-a14b":
        assert pipe.transformer_2 is not None and pipe.config.boundary_ratio == 0.875
    else:
        assert pipe.transformer_2 is None
    if variant == "wan2.2-ti2v-5b":
        vae = pipe.vae.config
        assert pipe.config.expand_timesteps is True and pipe.scheduler.config.flow_shift == 5.0
        assert (vae.z_dim, vae.is_residual, vae.patch_size, vae.in_channels, vae.scale_factor_spatial) == (
            48, True, 2, 12, 16,
        )  # fmt: skip
        assert pipe.transformer.config.in_channels == 48
    else:
        assert pipe.vae.config.z_dim == 16 and pipe.scheduler.config.flow_shift == 3.0
    if variant == "wan2.1-i2v":
        assert index["image_encoder"] == ["transformers", "CLIPVisionModel"]
        assert index["image_processor"][0] == "transformers" and index["image_processor"][1].startswith("CLIPImageProcessor")
        assert pipe.transformer.config.image_dim == pipe.image_encoder.config.hidden_size
        assert pipe.transformer.config.in_channels == 36

    frames = _run(pipe, variant)
    assert frames.shape == (1, 5, 32, 32, 3)
    assert np.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1


def test_same_call_same_frames_and_overrides(tiny_path):
    import numpy as np

    pipe = _load(tiny_path("wan2.2-t2v-a14b"))
    calls = {"transformer": 0, "transformer_2": 0}
    for name in calls:
        getattr(pipe, name).register_forward_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)
        )
    first = _run(pipe, "wan2.2-t2v-a14b")
    # step 1 (t=999) is the high-noise expert's, step 2 (t=750 < 875) the low-noise one's;
    # each runs twice per step (with and without the prompt: classifier-free guidance)
    assert calls == {"transformer": 2, "transformer_2": 2}
    again = _run(pipe, "wan2.2-t2v-a14b")  # a fresh generator each time: same noise
    np.testing.assert_array_equal(first, again)
    latents = _run(pipe, "wan2.2-t2v-a14b", output_type="latent")
    assert tuple(latents.shape) == (1, 16, 2, 4, 4)  # 5 frames -> 2 latent frames, 32 px / 8


def test_call_kwargs():
    kwargs = tiny_call_kwargs()
    assert kwargs["num_inference_steps"] == 2 and kwargs["output_type"] == "np"
    assert (kwargs["num_frames"] - 1) % 4 == 0
    assert kwargs["height"] % 16 == 0 and kwargs["width"] % 16 == 0
    ti2v = tiny_call_kwargs("wan2.2-ti2v-5b")
    assert ti2v["height"] % 32 == 0 and ti2v["width"] % 32 == 0
    assert "image" not in kwargs and tiny_call_kwargs("wan2.1-i2v")["image"].size == (32, 32)
    assert tiny_call_kwargs(height=64, prompt="x")["height"] == 64
    assert tiny_call_kwargs(prompt="x")["prompt"] == "x"
    assert tiny_call_kwargs()["generator"] is not kwargs["generator"]
    with pytest.raises(ValueError, match="`variant` must be one of"):
        tiny_call_kwargs("wan3")


def test_same_seed_same_weights(tmp_path, tiny_path):
    a = build_tiny_pipeline(tmp_path / "a", "wan2.1-t2v", seed=0)
    b = tiny_path("wan2.1-t2v")  # built with seed 0 too, in another folder, earlier
    c = build_tiny_pipeline(tmp_path / "c", "wan2.1-t2v", seed=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*.safetensors"))
    assert len(files) == 3
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert all((a / rel).read_bytes() != (c / rel).read_bytes() for rel in files)


def test_build_leaves_global_rng_alone(tmp_path):
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_pipeline(tmp_path / "m", "wan2.1-t2v")
    assert torch.equal(torch.rand(3), expected)


def test_size_knob_grows_weights(tmp_path, tiny_path):
    sizes = {1: _weight_bytes(tiny_path("wan2.1-t2v", 1))}
    for size in (2, 3):
        sizes[size] = _weight_bytes(build_tiny_pipeline(tmp_path / f"s{size}", "wan2.1-t2v", size=size))
    print("wan2.1-t2v weight bytes by size:", sizes)
    assert sizes[1] < 8_000_000 < 20_000_000 < sizes[2] < sizes[3]  # a few MB, then tens of MB
    big = tmp_path / "s3"
    per_component = {c.name: _weight_bytes(c) for c in big.iterdir() if c.is_dir()}
    # as in the real models: the VAE is the smallest of the three
    assert (
        per_component["vae"] < per_component["transformer"]
        and per_component["vae"] < per_component["text_encoder"]
    )


def test_sharded_tiny_build(tmp_path):
    path = build_tiny_pipeline(tmp_path / "m", "wan2.1-t2v", max_shard_size="200KB")
    index = json.loads((path / "vae" / "diffusion_pytorch_model.safetensors.index.json").read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) > 1 and all((path / "vae" / s).is_file() for s in shards)
    _load(path)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="`variant` must be one of"):
        build_tiny_pipeline(tmp_path, "wan2.5-t2v")
    for size in (0, 1.5, True):
        with pytest.raises(ValueError, match="`size` must be an int >= 1"):
            tiny_pipeline_path("wan2.1-t2v", size)


def test_cache_reuses_and_survives_a_concurrent_build(tmp_path):
    cache = tmp_path / "cache"
    # Another process, with its imports done, builds into the same cache at the same moment.
    script = (
        "import sys, diffusers, transformers; from wan_nb.fixtures import tiny_pipeline_path\n"
        "print('ready', flush=True); sys.stdin.readline()\n"
        "print(tiny_pipeline_path('wan2.1-t2v', cache_dir=sys.argv[1]))\n"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", script, str(cache)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert other.stdout.readline().strip() == "ready"
    other.stdin.write("go\n")
    other.stdin.flush()
    mine = tiny_pipeline_path("wan2.1-t2v", cache_dir=cache)
    theirs, _ = other.communicate(timeout=120)
    assert other.returncode == 0 and Path(theirs.strip()) == mine
    assert [p.name for p in cache.iterdir()] == [mine.name]  # no staging folder left behind
    stamp = (mine / "model_index.json").stat().st_mtime_ns
    assert tiny_pipeline_path("wan2.1-t2v", cache_dir=cache) == mine
    assert (mine / "model_index.json").stat().st_mtime_ns == stamp
    _load(mine)


def test_cache_build_that_loses_the_race(tmp_path, monkeypatch):
    from wan_nb.fixtures import tiny

    cache = tmp_path / "cache"
    real_build = tiny.build_tiny_pipeline

    def build_while_another_process_finishes_first(path, variant, **kwargs):
        real_build(path, variant, **kwargs)
        winner = cache / f"tiny-{variant}-size1-{tiny._versions_tag()}"
        real_build(winner, variant, **kwargs)

    monkeypatch.setattr(tiny, "build_tiny_pipeline", build_while_another_process_finishes_first)
    path = tiny.tiny_pipeline_path("wan2.1-t2v", cache_dir=cache)
    assert (path / "model_index.json").is_file()
    assert [p.name for p in cache.iterdir()] == [path.name]


def test_load_tiny_pipeline_uses_the_cache(fixture_cache, tiny_path, monkeypatch):
    from wan_nb.fixtures import load_tiny_pipeline

    monkeypatch.setenv("WAN_NB_FIXTURE_CACHE", str(fixture_cache))
    path = tiny_path("wan2.1-t2v")
    pipe = load_tiny_pipeline("wan2.1-t2v")
    assert Path(pipe.config._name_or_path) == path


# ----------------------------------------------------------------------------- synthetic checkpoints

_TRANSFORMER_PARAMS = {
    "wan2.1-t2v-1.3b": 1_418_996_800,
    "wan2.1-t2v-14b": 14_288_491_584,
    "wan2.2-ti2v-5b": 4_999_787_712,
    "wan2.2-t2v-a14b": 14_288_491_584,
    "wan2.2-i2v-a14b": 14_288_901_184,  # 14B with 36 input channels
}


def _meta_state(folder: Path, library: str, class_name: str) -> dict[str, tuple[int, ...]]:
    import torch

    if library == "diffusers":
        import diffusers

        cls = getattr(diffusers, class_name)
        with torch.device("meta"):
            model = cls.from_config(cls.load_config(folder))
    else:
        import transformers

        cls = getattr(transformers, class_name)
        with torch.device("meta"):
            model = cls(cls.config_class.from_pretrained(folder))
    names = {n for n, _ in model.named_parameters()}  # tied weights once, as stored
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if k in names}, model


@pytest.mark.parametrize("preset", SYNTH_PRESETS)
def test_synthetic_checkpoint(synth_path, preset):
    path = synth_path(preset)
    index = json.loads((path / "model_index.json").read_text())
    two = preset in ("wan2.2-t2v-a14b", "wan2.2-i2v-a14b")
    wan22 = preset.startswith("wan2.2")

    # every weight file is sparse: full apparent size, (almost) nothing on disk
    disk = apparent = 0
    for weight in path.rglob("*.safetensors"):
        st = weight.stat()
        apparent += st.st_size
        disk += st.st_blocks * 512
        assert st.st_blocks * 512 < st.st_size / 1000, weight
    assert apparent > 20e9 and disk < 5_000_000

    # headers match what the classes define, name for name and shape for shape
    components = ["transformer", "vae", "text_encoder"] + (["transformer_2"] if two else [])
    for name in components:
        library, class_name = index[name]
        folder = path / name
        tensors = _tensors(folder)
        expected, model = _meta_state(folder, library, class_name)
        assert {k: tuple(v["shape"]) for k, v in tensors.items()} == expected, name
        params = sum(_numel(v["shape"]) for v in tensors.values())
        assert params == sum(p.numel() for p in model.parameters()), name
        dtypes = {v["dtype"] for v in tensors.values()}
        if name == "vae":
            assert dtypes == {"F32"}
        else:
            assert dtypes == {"BF16" if wan22 else "F32"}, name
        # the file sizes are exactly what the headers promise
        for weight in _weights(folder):
            header = _header(weight)
            (length,) = struct.unpack("<Q", weight.open("rb").read(8))
            assert weight.stat().st_size == 8 + length + max(v["data_offsets"][1] for v in header.values())
        if name.startswith("transformer"):
            assert params == _TRANSFORMER_PARAMS[preset]

    # sharding where the published repos shard
    te_index = json.loads((path / "text_encoder" / "model.safetensors.index.json").read_text())
    assert len(set(te_index["weight_map"].values())) == (5 if not wan22 else 3)
    assert te_index["weight_map"].keys() == _tensors(path / "text_encoder").keys()
    assert te_index["metadata"]["total_size"] == sum(
        v["data_offsets"][1] - v["data_offsets"][0] for v in _tensors(path / "text_encoder").values()
    )
    tf_files = [p.name for p in _weights(path / "transformer")]
    if preset == "wan2.1-t2v-1.3b":
        assert tf_files == ["diffusion_pytorch_model.safetensors"]
    else:
        assert len(tf_files) > 1 and tf_files[0].startswith("diffusion_pytorch_model-00001-of-")
        assert (path / "transformer" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    for weight in path.rglob("*.safetensors"):
        assert weight.stat().st_size < 5.5e9 or weight.parent.name == "transformer" and not tf_files[1:]

    # pipeline-level entries
    assert index["_class_name"] == (
        "WanImageToVideoPipeline" if preset == "wan2.2-i2v-a14b" else "WanPipeline"
    )
    assert index["tokenizer"] == ["transformers", "T5TokenizerFast"]
    if preset == "wan2.2-t2v-a14b":
        assert index["boundary_ratio"] == 0.875 and index["transformer_2"][1] == "WanTransformer3DModel"
    if preset == "wan2.2-i2v-a14b":
        assert index["boundary_ratio"] == 0.9 and index["image_encoder"] == [None, None]
    if preset == "wan2.2-ti2v-5b":
        assert index["expand_timesteps"] is True and index["transformer_2"] == [None, None]
        vae = json.loads((path / "vae" / "config.json").read_text())
        assert (vae["base_dim"], vae["decoder_base_dim"], vae["z_dim"], vae["patch_size"]) == (
            160,
            256,
            48,
            2,
        )
    if not wan22:
        assert "boundary_ratio" not in index and index["_diffusers_version"].startswith("0.33")


def test_synthetic_configs_load_with_the_installed_libraries(synth_path):
    from diffusers import UniPCMultistepScheduler
    from transformers import AutoTokenizer

    path = synth_path("wan2.2-ti2v-5b")
    scheduler = UniPCMultistepScheduler.from_pretrained(path / "scheduler")
    assert scheduler.config.flow_shift == 5.0 and scheduler.config.prediction_type == "flow_prediction"
    tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
    ids = tokenizer("a cat walking on the beach").input_ids
    assert ids[-1] == tokenizer.eos_token_id and max(ids) < 256384
    te = json.loads((path / "text_encoder" / "config.json").read_text())
    assert (te["d_model"], te["d_ff"], te["num_layers"], te["num_heads"], te["vocab_size"]) == (
        4096, 10240, 24, 64, 256384,
    )  # fmt: skip


def test_header_bytes_match_safetensors_own(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from wan_nb.fixtures.synth import safetensors_header, write_sparse_safetensors

    tensors = {
        "b.weight": torch.zeros(2, 3),
        "a": torch.zeros(4, dtype=torch.bfloat16),
        "c": torch.zeros(1),
        "z": torch.zeros(3, 5, dtype=torch.float16),
    }
    codes = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}
    spec = [(k, tuple(v.shape), codes[v.dtype]) for k, v in tensors.items()]
    save_file(tensors, tmp_path / "real.safetensors", metadata={"format": "pt"})
    header, data = safetensors_header(spec)
    real = (tmp_path / "real.safetensors").read_bytes()
    assert real[: len(header)] == header and len(real) == len(header) + data
    write_sparse_safetensors(tmp_path / "sparse.safetensors", spec)
    loaded = load_file(tmp_path / "sparse.safetensors")
    assert {k: (v.shape, v.dtype) for k, v in loaded.items()} == {
        k: (v.shape, v.dtype) for k, v in tensors.items()
    }


def test_unknown_preset(tmp_path):
    from wan_nb.fixtures import write_synthetic_checkpoint

    with pytest.raises(ValueError, match="`preset` must be one of"):
        write_synthetic_checkpoint(tmp_path, "wan2.1-t2v-7b")


# ----------------------------------------------------------------------------- faults


def test_copy_model_is_a_real_copy_and_keeps_holes(tmp_path, synth_path, tiny_path):
    src = synth_path("wan2.1-t2v-14b")
    dst = copy_model(src, tmp_path / "copy")
    pairs = [(p, dst / p.relative_to(src)) for p in src.rglob("*") if p.is_file()]
    assert pairs
    for a, b in pairs:
        sa, sb = a.stat(), b.stat()
        assert sb.st_size == sa.st_size and sb.st_ino != sa.st_ino and sb.st_nlink == 1
        if a.suffix == ".safetensors":
            assert sb.st_blocks * 512 < sb.st_size / 1000  # still sparse
            assert _header(a) == _header(b)
    tiny = copy_model(tiny_path("wan2.1-t2v"), tmp_path / "tiny")
    for p in tiny_path("wan2.1-t2v").rglob("*.safetensors"):
        assert (tiny / p.relative_to(tiny_path("wan2.1-t2v"))).read_bytes() == p.read_bytes()
    with pytest.raises(FileExistsError):
        copy_model(src, dst)


def test_model_copy_fixture(tiny_path, model_copy):
    a, b = model_copy(tiny_path()), model_copy(tiny_path())
    assert a != b and (a / "model_index.json").is_file() and (b / "model_index.json").is_file()


def test_remove_component_and_config(tiny_path, model_copy):
    path = model_copy(tiny_path())
    assert faults.remove_component(path, "vae") == path / "vae"
    assert not (path / "vae").exists() and "vae" in json.loads((path / "model_index.json").read_text())
    # diffusers names the model folder, not the component: "no file named config.json found in
    # directory <model folder>" (diagnosis has to find the component from model_index.json).
    with pytest.raises(OSError, match="config.json"):
        _load(path)
    assert faults.remove_config(path, "scheduler") == path / "scheduler" / "scheduler_config.json"
    assert faults.remove_config(path, "transformer") == path / "transformer" / "config.json"
    assert faults.remove_config(path, "tokenizer") == path / "tokenizer" / "tokenizer_config.json"
    assert faults.remove_config(path, "model_index") == path / "model_index.json"
    assert not (path / "model_index.json").exists()
    with pytest.raises(FileNotFoundError, match="`nope`"):
        faults.remove_component(path, "nope")


def test_truncate_weights(tiny_path, model_copy, synth_path):
    path = model_copy(tiny_path())
    before = (path / "vae" / "diffusion_pytorch_model.safetensors").stat().st_size
    weight = faults.truncate_weights(path, "vae")
    header = _header(weight)
    promised = (
        8
        + struct.unpack("<Q", weight.read_bytes()[:8])[0]
        + max(v["data_offsets"][1] for v in header.values())
    )
    assert promised == before > weight.stat().st_size
    with pytest.raises(Exception, match="(?i)incomplete|truncat|invalid|deserializ|metadata"):
        _load(path)
    assert faults.truncate_weights(path, "transformer", keep_bytes=100).stat().st_size == 100
    with pytest.raises(ValueError, match="`keep_bytes`"):
        faults.truncate_weights(path, "text_encoder", keep_bytes=10**12)
    big = model_copy(synth_path("wan2.1-t2v-1.3b"))
    weight = faults.truncate_weights(big, "transformer")
    assert 2e9 < weight.stat().st_size < 3e9 and weight.stat().st_blocks * 512 < 1e6


@pytest.mark.parametrize("kind", ["huge_length", "not_json", "empty"])
def test_corrupt_header(tiny_path, model_copy, kind):
    path = model_copy(tiny_path())
    weight = faults.corrupt_header(path, "vae", kind)
    raw = weight.read_bytes()
    if kind == "huge_length":
        assert struct.unpack("<Q", raw[:8])[0] == 2**60
    elif kind == "not_json":
        (length,) = struct.unpack("<Q", raw[:8])
        with pytest.raises(ValueError):
            json.loads(raw[8 : 8 + length])
    else:
        assert raw == b""
    with pytest.raises(Exception):  # noqa: B017 - each kind fails differently inside safetensors
        _load(path)
    with pytest.raises(ValueError, match="`kind`"):
        faults.corrupt_header(path, "vae", "bitrot")


def test_set_pipeline_class(tiny_path, model_copy):
    path = model_copy(tiny_path())
    changed = faults.set_pipeline_class(path, "Wan3Pipeline")
    assert json.loads(changed.read_text())["_class_name"] == "Wan3Pipeline"
    with pytest.raises(Exception, match="Wan3Pipeline"):
        _load(path)


def test_break_shard_index(tmp_path, synth_path, model_copy):
    path = model_copy(synth_path("wan2.1-t2v-14b"))
    shard = faults.break_shard_index(path, "transformer")
    index = json.loads((path / "transformer" / "diffusion_pytorch_model.safetensors.index.json").read_text())
    assert shard.name in index["weight_map"].values() and not shard.exists()
    tiny = build_tiny_pipeline(tmp_path / "sharded", "wan2.1-t2v", max_shard_size="200KB")
    faults.break_shard_index(tiny, "vae")
    with pytest.raises(Exception, match="(?i)no such file|not found|missing|does not appear"):
        _load(tiny)
    with pytest.raises(ValueError, match="not sharded"):
        faults.break_shard_index(tiny, "scheduler")


def test_add_escaping_component(tiny_path, model_copy):
    path = model_copy(tiny_path())
    changed = faults.add_escaping_component(path)
    assert json.loads(changed.read_text())["../../etc"] == ["diffusers", "AutoencoderKLWan"]


def test_add_symlink_loop(tiny_path, model_copy):
    path = model_copy(tiny_path())
    link = faults.add_symlink_loop(path, "vae")
    assert link.is_symlink() and link.name in os.listdir(path / "vae")
    with pytest.raises(OSError) as info:
        link.stat()
    assert info.value.errno == errno.ELOOP
    again = copy_model(path, path.parent / "again")  # the loop survives a copy as a link
    assert (again / "vae" / link.name).is_symlink()


def test_published_names_option_writes_the_published_class_names(tiny_path):
    saved = json.loads((tiny_path("wan2.1-i2v") / "model_index.json").read_text())
    published = json.loads((tiny_path("wan2.1-i2v", published_names=True) / "model_index.json").read_text())
    assert published["tokenizer"] == ["transformers", "T5TokenizerFast"]
    assert published["image_processor"] == ["transformers", "CLIPImageProcessor"]
    # Only the names differ: everything else is what save_pretrained wrote.
    assert {k: v for k, v in saved.items() if k not in ("tokenizer", "image_processor")} == \
        {k: v for k, v in published.items() if k not in ("tokenizer", "image_processor")}
