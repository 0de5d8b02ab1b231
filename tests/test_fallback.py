"""The seed's API over real tiny pipelines, and the attempt history behind its probabilities."""

import json
import math

import pytest

from wan_nb import history
from wan_nb.fallback import (
    AlternativeModelSuggester,
    ComponentAnalyzer,
    FallbackHandler,
    FallbackResult,
    FallbackStrategy,
    UsableComponent,
    analyze_model_components,
    find_alternative_models,
    handle_pipeline_failure,
)
from wan_nb.fixtures import copy_model, faults
from wan_nb.repair.assemble import CONSENT_REASON


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """History, Hugging Face caches and diffusers' module cache all live in tmp_path."""
    import diffusers.utils.dynamic_modules_utils as dynamic

    monkeypatch.setenv("WAN_NB_HISTORY", str(tmp_path / "history.jsonl"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))


def _fast_call():
    from wan_nb.fixtures import tiny_call_kwargs

    return tiny_call_kwargs("wan2.1-t2v", num_inference_steps=1, num_frames=1, guidance_scale=1.0)


def _load_error(path):
    from diffusers import DiffusionPipeline

    try:
        DiffusionPipeline.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - the failure under test
        return exc
    raise AssertionError(f"{path} loaded")


def _round_trips(result: FallbackResult) -> None:
    text = json.dumps(result.to_dict())
    again = FallbackResult.from_dict(json.loads(text))
    assert again == result and again.to_dict() == result.to_dict()


# --------------------------------------------------------------------------- scenarios


def test_handle_wan3_pipeline(tiny_path, tmp_path):
    path = copy_model(tiny_path("wan2.1-t2v"), tmp_path / "alone" / "wan3")
    faults.set_pipeline_class(path, "Wan3Pipeline")
    result = handle_pipeline_failure(path, _load_error(path), {"call_kwargs": _fast_call()})
    assert result.success and result.strategy.name == "assemble_components"
    assert result.strategy.kind == "pipeline_substitution" and result.category == "pipeline_unavailable"
    assert type(result.pipeline).__name__ == "WanPipeline" and result.output.frames.shape == (1, 1, 32, 32, 3)
    assert result.tried == ("assemble_components",)
    skipped = {a.strategy: a.outcome for a in result.attempts}
    assert skipped["generic_pipeline"] == "skipped"
    assert all(c.is_functional for c in result.components if c.status != "optional")
    _round_trips(result)
    (record,) = history.load_history()
    assert record.strategy == "assemble_components" and record.success and record.model_class == "Wan3Pipeline"


def test_handle_missing_vae_with_and_without_donor(tiny_path, tmp_path):
    models = tmp_path / "models"
    path = copy_model(tiny_path("wan2.1-t2v"), models / "broken")
    faults.remove_component(path, "vae")
    error = _load_error(path)

    alone = handle_pipeline_failure(path, error)
    assert not alone.success and alone.pipeline is None and alone.category == "component_missing"
    assert alone.strategy.name == "redownload"
    assert any(c.component_type == "vae" and not c.is_functional for c in alone.components)
    assert alone.guidance == (f"hf download <repo-id> --include 'vae/*' --local-dir {path} --force-download",)
    outcomes = {a.strategy: a.outcome for a in alone.attempts}
    assert outcomes["component_donor"] == "skipped" and outcomes["redownload"] == "guidance"
    _round_trips(alone)

    copy_model(tiny_path("wan2.2-t2v-a14b"), models / "other")
    found = handle_pipeline_failure(path, error, {"call_kwargs": _fast_call()})
    assert found.success and found.strategy.name == "component_donor"
    assert found.strategy.details["donors"]["vae"]["model"] == str(models / "other")
    assert found.output.frames.shape == (1, 1, 32, 32, 3)
    _round_trips(found)


def test_handle_truncated_transformer(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.truncate_weights(path, "transformer")
    result = handle_pipeline_failure(path, _load_error(path))
    assert not result.success and result.category == "weights_corrupt"
    parts = {c.component_type: c for c in result.components}
    assert not parts["transformer"].is_functional and parts["transformer"].status == "corrupt"
    assert all(parts[n].is_functional for n in ("vae", "text_encoder", "tokenizer", "scheduler"))
    assert "transformer/diffusion_pytorch_model.safetensors" in result.guidance[0]
    _round_trips(result)


def test_handle_remote_code_needs_consent(tiny_path, model_copy, tmp_path):
    path = model_copy(tiny_path("wan2.1-t2v"))
    marker = tmp_path / "ran"
    (path / "pipeline.py").write_text(
        f"import pathlib\nfrom diffusers import WanPipeline\npathlib.Path({str(marker)!r}).touch()\n\n"
        "class CustomWanPipeline(WanPipeline):\n    pass\n"
    )
    index = json.loads((path / "model_index.json").read_text())
    index["_class_name"] = ["pipeline", "CustomWanPipeline"]
    (path / "model_index.json").write_text(json.dumps(index))
    error = _load_error(path)
    assert not marker.exists()

    refused = FallbackHandler().plan_fallbacks(path, error)
    remote = next(s for s in refused if s.name == "remote_code")
    assert not remote.applicable and remote.skip_reason == CONSENT_REASON and remote.needs_consent

    consented = handle_pipeline_failure(path, error, {"allow_remote_code": True})
    assert consented.success and consented.strategy.name == "remote_code" and marker.exists()
    assert type(consented.pipeline).__name__ == "CustomWanPipeline"
    _round_trips(consented)


def test_handle_out_of_memory_lists_the_plan(tiny_path):
    import torch

    error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB.")
    result = handle_pipeline_failure(tiny_path("wan2.1-t2v"), error, {"available_memory": "16GB"})
    assert not result.success and result.category == "out_of_memory"
    memory = [s for s in result.strategies if s.kind == "optimization_fallback"]
    assert memory and all(not s.runs for s in memory)
    assert {a.outcome for a in result.attempts if a.strategy != "alternative_model"} <= {"not_run", "skipped"}
    _round_trips(result)


# --------------------------------------------------------------------------- the API


def test_seed_api_calling_forms(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.truncate_weights(path, "transformer")
    handler = FallbackHandler(include_hf_cache=False)
    strategy = handler.create_fallback_strategy(path, "safetensors_rust.SafetensorError: Error while "
                                                     "deserializing header: MetadataIncompleteBuffer")
    assert isinstance(strategy, FallbackStrategy) and 0 < strategy.success_probability < 1
    assert "never tried" in strategy.probability_basis
    assert FallbackStrategy.from_dict(json.loads(json.dumps(strategy.to_dict()))) == strategy

    parts = handler.attempt_component_isolation(path)
    assert all(isinstance(p, UsableComponent) for p in parts)
    assert [p.component_type for p in analyze_model_components(path)] == [p.component_type for p in parts]
    vae = ComponentAnalyzer().analyze_component(path / "vae")
    assert vae.component_type == "vae" and vae.is_functional
    assert not ComponentAnalyzer().analyze_component(path, "transformer").is_functional
    with pytest.raises(ValueError, match="`component` is needed"):
        ComponentAnalyzer().analyze_component(path)

    result = handler.execute_fallback_strategy("redownload", path)
    assert not result.success and result.attempts[0].outcome == "guidance" and result.guidance
    with pytest.raises(ValueError, match="`strategy='generic_pipeline'` does not apply"):
        handler.execute_fallback_strategy("generic_pipeline", path)

    alternatives = handler.suggest_alternative_models("wan_t2v")
    assert alternatives == find_alternative_models("wan_t2v")
    assert AlternativeModelSuggester(available_memory="16GB").suggest("wan_t2v")[0].fits
    error = "AttributeError: module diffusers has no attribute Wan3Pipeline"
    missing = handle_pipeline_failure(path.parent / "nowhere", error)
    assert not missing.success and "does not exist" in missing.attempts[0].message
    with pytest.raises(TypeError, match="unknown keys \\['allow_remote'\\]"):
        handle_pipeline_failure(path, "error", {"allow_remote": True})


def test_probabilities_come_from_this_machine(tiny_path, tmp_path):
    path = copy_model(tiny_path("wan2.1-t2v"), tmp_path / "m" / "wan3")
    faults.set_pipeline_class(path, "Wan3Pipeline")
    handler = FallbackHandler(include_hf_cache=False)
    error = {"category": "pipeline_unavailable", "stage": "load"}
    before = handler.create_fallback_strategy(path, error)
    assert before.name == "assemble_components" and before.success_probability == 0.5
    for _ in range(3):
        history.record_attempt(history.HistoryRecord("assemble_components", "pipeline_unavailable", False))
    after = handler.create_fallback_strategy(path, error)
    assert after.success_probability == pytest.approx(1 / 5)
    assert "0 of 3 earlier attempts" in after.probability_basis


# --------------------------------------------------------------------------- history


def test_history_file_round_trip_and_damage(tmp_path):
    target = history.history_path()
    assert target == tmp_path / "history.jsonl"
    attempt = history.HistoryRecord("vae_tiling", "out_of_memory", True, estimated_peak=10, measured_peak=11, time=1.0)
    history.record_attempt(attempt)
    with target.open("a") as fh:
        fh.write('{"strategy": "half-written\n[1, 2]\n')
    history.record_attempt(history.HistoryRecord("vae_tiling", "out_of_memory", False))
    loaded = history.load_history()
    assert loaded[0] == attempt and len(loaded) == 2 and loaded[1].time > 0
    with pytest.warns(UserWarning, match="WAN_NB_HISTORY"):
        assert history.record_attempt(attempt, tmp_path / "history.jsonl" / "not-a-dir") is None


def test_probability_formula():
    assert history.laplace_rate(0, 0) == 0.5 and history.laplace_rate(3, 3) == 0.8
    # No records: the prior error model, ln(ratio) ~ N(0, 0.15^2).
    assert history.fit_probability(10, 10) == pytest.approx(0.5)
    # Room for 1.96 and -1 prior standard deviations: the standard normal table's 0.975 and 0.1587.
    sigma = history.PRIOR_SIGMA
    assert history.fit_probability(10, 10 * math.exp(1.96 * sigma)) == pytest.approx(0.9750, abs=1e-4)
    assert history.fit_probability(10, 10 * math.exp(-sigma)) == pytest.approx(0.1587, abs=1e-4)
    assert history.fit_probability(None, 16) == 1.0 and history.fit_probability(5, 0) == 0.0
    records = [history.HistoryRecord("group_offload", "out_of_memory", False, failure="out_of_memory")] * 5
    records += [history.HistoryRecord("group_offload", "out_of_memory", True)]
    with_fit = history.success_probability("group_offload", "out_of_memory", estimated_peak=8, available=16,
                                           history=records)
    # OOM failures are the margin's business once a margin is known: only the success counts.
    assert with_fit.history == pytest.approx(2 / 3) and with_fit.fit > 0.99
    without = history.success_probability("group_offload", "out_of_memory", history=records)
    assert without.history == pytest.approx(2 / 8) and without.fit == 1.0
    other = history.success_probability("group_offload", "weights_corrupt", history=records)
    assert "for any failure" in other.basis
    ranked = history.rank_strategies(["group_offload", "vae_tiling"], "out_of_memory", history=records)
    assert [name for name, _ in ranked] == ["vae_tiling", "group_offload"]
