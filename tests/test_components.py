import json
import os

import pytest

from wan_nb import ComponentAnalyzer, ComponentReport, analyze_model_components
from wan_nb.fixtures import faults
from wan_nb.model.checkpoint import CheckpointError
from wan_nb.model.report import ModelFolderError

# Parameter counts of the published transformer configs (the model classes' own counts).
PUBLISHED_TRANSFORMER_PARAMS = {
    "wan2.1-t2v-1.3b": 1_418_996_800,
    "wan2.1-t2v-14b": 14_288_491_584,
    "wan2.2-ti2v-5b": 4_999_787_712,
    "wan2.2-t2v-a14b": 14_288_491_584,
}


def _tree_state(folder):
    """Every file's size and mtime: analysis must leave all of them as they were."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_healthy_tiny_pipeline(tiny_path):
    path = tiny_path("wan2.2-t2v-a14b")
    report = analyze_model_components(path)
    assert report.ok, report.all_problems
    assert report.pipeline_class == "WanPipeline" and report.pipeline_importable
    assert {"transformer", "transformer_2", "vae", "text_encoder", "tokenizer", "scheduler"} <= set(report.names)
    assert report.pipeline_config["boundary_ratio"] == 0.875
    transformer = report["transformer"]
    assert transformer.status == "ok" and transformer.introduced_in == "0.33.0"
    assert transformer.parameters > 0 and transformer.bytes >= transformer.parameters
    assert transformer.config["num_layers"] >= 1
    assert report["tokenizer"].parameters is None and report["tokenizer"].status == "ok"


def test_parameter_counts_match_the_loaded_model(tiny_path):
    import torch
    from diffusers import WanPipeline

    path = tiny_path("wan2.1-t2v")
    report = analyze_model_components(path)
    pipe = WanPipeline.from_pretrained(path, torch_dtype=torch.float32)
    for name in ("transformer", "vae", "text_encoder"):
        module = getattr(pipe, name)
        assert report[name].parameters == sum(p.numel() for p in module.parameters()), name


@pytest.mark.parametrize("preset", sorted(PUBLISHED_TRANSFORMER_PARAMS))
def test_synthetic_presets_report_published_counts(synth_path, preset):
    report = analyze_model_components(synth_path(preset))
    assert report.ok, report.all_problems
    assert report["transformer"].parameters == PUBLISHED_TRANSFORMER_PARAMS[preset]
    assert report["text_encoder"].config["d_model"] == 4096


def test_a14b_is_sharded_and_large(synth_path):
    report = analyze_model_components(synth_path("wan2.2-t2v-a14b"))
    for name in ("transformer", "transformer_2", "text_encoder"):
        assert any(f.endswith(".safetensors.index.json") for f in report[name].files), name
    assert report["transformer_2"].parameters == report["transformer"].parameters
    assert report.total_bytes > 50 * 10**9


def test_round_trip_through_json(tiny_path, synth_path):
    for path in (tiny_path("wan2.1-t2v"), synth_path("wan2.2-i2v-a14b")):
        report = analyze_model_components(path)
        again = ComponentReport.from_dict(json.loads(json.dumps(report.to_dict())))
        assert again == report


def test_to_frame_and_text(tiny_path):
    report = analyze_model_components(tiny_path("wan2.1-t2v"))
    frame = report.to_frame()
    assert list(frame.index) == list(report.names)
    assert frame.loc["transformer", "parameters"] == report["transformer"].parameters
    assert frame.loc["transformer", "status"] == "ok"
    text = report.to_text()
    assert "transformer" in text and f"{report['transformer'].parameters:,}" in text


def test_deep_analysis_builds_every_component(tiny_path):
    report = analyze_model_components(tiny_path("wan2.2-ti2v-5b"), deep=True)
    assert report.deep
    assert all(c.functional for c in report.components if c.status != "optional"), report.all_problems


def test_deep_analysis_finds_shape_mismatch(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    config_path = path / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["ffn_dim"] = config["ffn_dim"] * 2  # the weights no longer fit the config
    config_path.write_text(json.dumps(config))
    shallow = analyze_model_components(path)
    assert shallow["transformer"].status == "ok"
    deep = analyze_model_components(path, deep=True)
    assert deep["transformer"].functional is False
    assert any("another shape" in p for p in deep["transformer"].problems)


# ---- bad input: each gives a report (or a clear error) naming the component and the file


def test_path_that_does_not_exist(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist"):
        analyze_model_components(tmp_path / "nope")


def test_folder_without_model_index(tmp_path):
    with pytest.raises(ModelFolderError, match="no model_index.json"):
        analyze_model_components(tmp_path)


def test_malformed_model_index(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    (path / "model_index.json").write_text('{"_class_name": "WanPipeline",')
    with pytest.raises(CheckpointError, match="model_index.json is not valid JSON"):
        analyze_model_components(path)


def test_component_folder_missing(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.remove_component(path, "vae")
    report = analyze_model_components(path)
    assert not report.ok
    assert report["vae"].status == "missing"
    assert "vae/" in report["vae"].problems[0] and "download" in report["vae"].problems[0]
    assert report["transformer"].status == "ok"


def test_config_missing(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.remove_config(path, "transformer")
    info = analyze_model_components(path)["transformer"]
    assert info.status == "missing" and "transformer/config.json is missing" in info.problems[0]


def test_truncated_weight_file(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.truncate_weights(path, "transformer")
    info = analyze_model_components(path)["transformer"]
    assert info.status == "corrupt"
    assert "truncated" in info.problems[0] and ".safetensors" in info.problems[0]


@pytest.mark.parametrize(
    ("kind", "words"),
    [("huge_length", "beyond safetensors"), ("not_json", "not safetensors JSON"), ("empty", "too few")],
)
def test_damaged_header(tiny_path, model_copy, kind, words):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.corrupt_header(path, "vae", kind)
    info = analyze_model_components(path)["vae"]
    assert info.status == "corrupt" and words in info.problems[0]


def test_shard_index_names_missing_shard(synth_path, model_copy):
    path = model_copy(synth_path("wan2.1-t2v-14b"))
    faults.break_shard_index(path, "transformer")
    info = analyze_model_components(path)["transformer"]
    assert info.status == "missing"
    assert "names shard" in info.problems[0] and "transformer" in info.problems[0]


def test_component_name_that_leaves_the_folder(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.add_escaping_component(path)
    report = analyze_model_components(path)
    bad = [c for c in report.components if ".." in c.name]
    assert bad and bad[0].status == "corrupt" and "outside the model folder" in bad[0].problems[0]


def test_symlink_loop(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.add_symlink_loop(path, "vae")
    info = analyze_model_components(path)["vae"]
    assert info.status in ("corrupt", "missing") and "vae" in info.problems[0]


def test_unknown_pipeline_class(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.set_pipeline_class(path, "Wan3Pipeline")
    report = analyze_model_components(path)
    assert not report.pipeline_importable
    assert any("Wan3Pipeline" in p for p in report.problems)
    assert report["transformer"].status == "ok"  # the parts are still fine


def test_unavailable_component_class(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    index = json.loads((path / "model_index.json").read_text())
    index["transformer"] = ["diffusers", "WanTransformer9DModel"]
    (path / "model_index.json").write_text(json.dumps(index))
    info = analyze_model_components(path)["transformer"]
    assert info.status == "unavailable" and "WanTransformer9DModel" in info.problems[0]


def test_analysis_never_writes_into_the_model_folder(tiny_path, synth_path, model_copy):
    for path in (tiny_path("wan2.2-ti2v-5b"), synth_path("wan2.2-t2v-a14b")):
        before = _tree_state(path)
        analyze_model_components(path, deep=path.name.startswith("tiny"))
        assert _tree_state(path) == before
    broken = model_copy(tiny_path("wan2.1-t2v"))
    faults.truncate_weights(broken, "transformer")
    before = _tree_state(broken)
    analyze_model_components(broken)
    assert _tree_state(broken) == before


def test_component_analyzer_seed_api(tiny_path):
    path = tiny_path("wan2.1-t2v")
    analyzer = ComponentAnalyzer()
    assert analyzer.analyze(path) == analyze_model_components(path)
    info = analyzer.analyze_component(path, "vae")
    assert info.component_type == "vae" and info.class_name == "AutoencoderKLWan" and info.is_functional


def test_read_only_folder(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    for p in [path, *path.rglob("*")]:
        os.chmod(p, 0o555 if p.is_dir() else 0o444)
    try:
        assert analyze_model_components(path).ok
    finally:
        for p in [path, *path.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
