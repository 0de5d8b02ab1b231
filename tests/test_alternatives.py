"""The registry of alternative models, its ranking, and local discovery."""

import json

import pytest

from wan_nb.alternatives import (
    AlternativeModel,
    alternatives_frame,
    get_local_alternatives,
    suggest_alternatives,
)
from wan_nb.fixtures import copy_model
from wan_nb.history import HistoryRecord
from wan_nb.model.components import analyze_model_components
from wan_nb.model.registry import identify_model, load_registry, min_diffusers_for

WAN_IDS = {
    "wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "wan2.1-i2v-14b-480p", "wan2.1-i2v-14b-720p", "wan2.1-vace-1.3b",
    "wan2.1-vace-14b", "wan2.2-ti2v-5b", "wan2.2-t2v-a14b", "wan2.2-i2v-a14b",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("WAN_NB_HISTORY", str(tmp_path / "history.jsonl"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def test_registry_is_complete_and_every_figure_is_sourced():
    registry = load_registry()
    ids = {m.id for m in registry}
    assert WAN_IDS <= ids
    assert {"ltx-video", "cogvideox-2b", "cogvideox-5b", "hunyuanvideo", "mochi-1-preview"} <= ids
    from wan_nb.libraries import class_available

    for model in registry:
        assert model.repo_id.count("/") == 1 and model.tasks and model.min_diffusers, model.id
        assert class_available("diffusers", model.pipeline_class), model.pipeline_class
        for figure in model.peak_memory:
            assert figure.source in ("estimated", "published") and figure.bytes > 0 and figure.reference, model.id
            if figure.source == "published":
                assert figure.as_published  # the figure as its authors wrote it
        for component, count in model.parameters.items():
            assert count["source"] in ("config", "published") and count["count"] > 0, (model.id, component)
        if model.synthetic_preset:  # computed from the real configs by `--refresh`
            assert model.fingerprint and all(p["source"] == "config" for p in model.parameters.values())


def test_min_diffusers_versions():
    assert min_diffusers_for("WanPipeline") == "0.33.0"
    assert min_diffusers_for("WanVACEPipeline") == "0.34.0"
    assert min_diffusers_for("CogVideoXPipeline") == "0.30.0"  # the 2B came first; the 5B needed 0.30.1
    assert min_diffusers_for("NoSuchPipeline") is None


def test_wan_t2v_in_16gb_puts_models_that_fit_first():
    ranked = suggest_alternatives("wan_t2v", "16GB")
    assert [a.task_match for a in ranked] == sorted((a.task_match for a in ranked), reverse=True)
    fits = [a.fits for a in ranked if a.task_match]
    order = {True: 0, None: 1, False: 2}
    assert fits == sorted(fits, key=order.__getitem__), [(a.name, a.fits) for a in ranked]
    fitting = [a for a in ranked if a.fits]
    assert fitting and {"wan2.1-t2v-1.3b", "wan2.1-t2v-14b"} <= {a.id for a in fitting}
    for alt in fitting:
        assert alt.predicted_peak_bytes and alt.fit_probability >= 0.5 and alt.peak_source != "unknown"
        assert alt.predicted_peak_bytes <= 16e9 * 1.05
    assert fitting[0].task_match and fitting[0].id.startswith("wan")
    assert {a.fits for a in ranked} == {True, False, None}  # every branch below is exercised
    for alt in ranked:
        if alt.fits is False:
            assert alt.predicted_peak_bytes > 16e9 * 0.95
        if alt.fits is None:
            assert alt.predicted_peak_bytes is None and alt.peak_source == "unknown"
    assert AlternativeModel.from_dict(json.loads(json.dumps(fitting[0].to_dict()))) == fitting[0]
    frame = alternatives_frame(ranked)
    assert list(frame["model"]) == [a.name for a in ranked]


def test_ranking_by_task_and_target_forms():
    i2v = suggest_alternatives("wan_i2v", "80GB")
    assert all(a.task_match for a in i2v[: sum(a.task_match for a in i2v)])  # task matches lead
    by_repo = suggest_alternatives("Wan-AI/Wan2.1-T2V-14B-Diffusers", "16GB")
    assert "wan2.1-t2v-14b" not in {a.id for a in by_repo}  # the target itself is not its alternative
    by_class = suggest_alternatives("WanImageToVideoPipeline", 24 * 10**9)
    assert by_class[0].task_match
    with pytest.raises(ValueError, match="`target='___'`.*wan_t2v"):
        suggest_alternatives("___")
    with pytest.raises(ValueError, match="16 parsecs"):
        suggest_alternatives("wan_t2v", "16 parsecs")


def test_fit_probability_learns_from_this_machine():
    base = {a.id: a for a in suggest_alternatives("wan_t2v", "16GB", history=[])}
    # Runs here peaked 30 % above their estimates: a figure near the limit no longer fits.
    history = [HistoryRecord("group_offload", "out_of_memory", True, estimated_peak=10**9, measured_peak=13 * 10**8)] * 8
    learned = {a.id: a for a in suggest_alternatives("wan_t2v", "16GB", history=history)}
    assert learned["wan2.1-t2v-14b"].fit_probability < base["wan2.1-t2v-14b"].fit_probability


def test_identify_and_local_alternatives(synth_path, tiny_path, tmp_path):
    small = synth_path("wan2.1-t2v-1.3b")
    experts = synth_path("wan2.2-t2v-a14b")
    entry = identify_model(analyze_model_components(small))
    assert entry.id == "wan2.1-t2v-1.3b"
    report = analyze_model_components(experts)
    # Same transformer config as Wan 2.1 14B: boundary_ratio tells the two apart.
    assert identify_model(report).id == "wan2.2-t2v-a14b"
    assert identify_model(report).parameters["transformer"]["count"] == report["transformer"].parameters
    assert identify_model(analyze_model_components(tiny_path("wan2.1-t2v"))) is None

    models = tmp_path / "models"
    copy_model(small, models / "Wan2.1-T2V-1.3B-Diffusers")
    copy_model(tiny_path("wan2.1-t2v"), models / "tiny")
    local = {a.name: a for a in get_local_alternatives(models, include_hf_cache=False)}
    assert local["Wan 2.1 T2V 1.3B"].local_path == str(models / "Wan2.1-T2V-1.3B-Diffusers")
    tiny = local["tiny"]
    assert tiny.id is None and tiny.parameters > 0 and tiny.pipeline_class == "WanPipeline"
    assert tiny.peak_source in ("estimated", "unknown")
    ranked = suggest_alternatives("wan2.1-t2v-14b", "16GB", models_dir=models)
    on_disk = [a for a in ranked if a.local_path]
    assert [a.id for a in on_disk] == ["wan2.1-t2v-1.3b"]
    with pytest.raises(NotADirectoryError, match="`models_dir`"):
        get_local_alternatives(tmp_path / "nowhere")
