"""The plan: which strategies, in which order, and why the others are left out."""

from __future__ import annotations

import json

import pytest

from wan_nb.diagnosis import Diagnosis, diagnose
from wan_nb.planning import NOT_RETRIED, Plan, plan
from wan_nb.settings import GenerationSettings

NO_ACCEL = "needs an accelerator (CUDA/XPU/MPS); this kernel has none"


def oom(stage: str, category: str = "out_of_memory") -> Diagnosis:
    suggested = {"vae_decode": ("vae_tiling", "vae_slicing", "model_cpu_offload"),
                 "denoise": ("group_offload", "model_cpu_offload", "layerwise_fp8")}.get(stage, ())
    return Diagnosis(category=category, stage=stage, summary=f"OOM in {stage}", recoverable=True,
                     suggested=suggested)


@pytest.fixture(scope="module")
def synth_report(synth_path):
    from wan_nb.model.components import analyze_model_components

    return analyze_model_components(synth_path("wan2.1-t2v-14b"))


@pytest.fixture(scope="module")
def tiny_report(tiny_path):
    from wan_nb.model.components import analyze_model_components

    return analyze_model_components(tiny_path("wan2.1-t2v", 1))


def test_oom_in_vae_decode_tries_tiling_first_and_skips_what_this_kernel_cannot_run(tiny_report):
    settings = GenerationSettings(height=64, width=64, num_frames=5, num_inference_steps=2, max_sequence_length=32)
    p = plan(oom("vae_decode"), tiny_report, settings, "cpu", budget="1GiB")
    assert p.planned[0].strategy == "vae_tiling"
    assert "aimed at the failing stage (vae_decode)" in p.planned[0].reason
    assert p.budget_bytes == 2**30 and p.available_bytes == 2**30
    skipped = {c.strategy: c.skip_reason for c in p.skipped}
    for name in ("model_cpu_offload", "group_offload", "sequential_cpu_offload", "text_encoder_cpu",
                 "model_cpu_offload+vae_tiling"):
        assert skipped[name] == NO_ACCEL
    assert skipped["vae_slicing"].startswith("no effect here")
    assert "pass allow_degraded=True" in skipped["lower_resolution"]
    assert "height 64 -> 48" in skipped["lower_resolution"]
    # Every planned candidate comes before every skipped one, and says why it is there.
    statuses = [c.status for c in p.candidates]
    assert statuses == sorted(statuses)
    assert all(c.reason for c in p.candidates)


def test_degraded_strategies_run_only_when_allowed_and_after_the_others(tiny_report):
    settings = GenerationSettings(height=64, width=64, num_frames=17, num_inference_steps=2, max_sequence_length=32)
    strict = plan(oom("vae_decode"), tiny_report, settings, "cpu", budget="1GiB")
    assert not any(c.degraded for c in strict.planned)
    loose = plan(oom("vae_decode"), tiny_report, settings, "cpu", budget="1GiB", allow_degraded=True)
    degraded = [i for i, c in enumerate(loose.planned) if c.degraded]
    assert degraded and min(degraded) > max(i for i, c in enumerate(loose.planned) if not c.degraded)
    frames = loose.candidate("fewer_frames")
    assert frames.changes == {"num_frames": 13} and frames.quality == "changed"


def test_on_an_accelerator_the_reasons_are_about_packages_and_gpus(synth_report):
    settings = GenerationSettings()
    p = plan(oom("denoise"), synth_report, settings, "cuda", budget="24GiB")
    skipped = {c.strategy: c.skip_reason for c in p.skipped}
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        assert skipped["quantize_nf4"] == "needs the package bitsandbytes (pip install bitsandbytes)"
    assert skipped["balanced_device_map"].startswith("needs 2 or more GPUs")
    # The offloads are candidates now; in a denoise OOM, tiling alone is not aimed at the stage.
    names = [c.strategy for c in p.candidates]
    assert "group_offload" in names and "model_cpu_offload" in names
    assert names.index("group_offload") < names.index("vae_tiling")


def test_estimates_decide_fit_with_the_safety_margin(synth_report):
    settings = GenerationSettings()
    roomy = plan(oom("denoise"), synth_report, settings, "cuda", budget="80GiB")
    tiny = plan(oom("denoise"), synth_report, settings, "cuda", budget="1GiB")
    estimated = [c for c in roomy.candidates if c.estimated_peak_bytes is not None]
    assert estimated, roomy.notes
    assert all(c.fit in ("fits", "tight", "no") for c in estimated)
    # 80 GiB less the documented 10 % margin is 72 GiB: "fits" below it, "tight" up to 80 GiB.
    assert roomy.available_bytes == 80 * 2**30
    fits = [c for c in estimated if c.fit == "fits"]
    assert fits and all(c.estimated_peak_bytes <= 72 * 2**30 for c in fits)
    assert all(72 * 2**30 < c.estimated_peak_bytes <= 80 * 2**30 for c in estimated if c.fit == "tight")
    assert all(c.estimated_peak_bytes > 80 * 2**30 for c in estimated if c.fit == "no")
    # A 14B transformer does not fit in 1 GiB whatever is done to it.
    assert not tiny.planned
    assert all(c.skip_reason.startswith(("predicted not to fit", "needs", "no effect", "the pipeline already",
                                         "the video"))
               for c in tiny.candidates)
    assert any("predicted not to fit: needs about" in c.skip_reason for c in tiny.candidates)


def test_errors_a_retry_cannot_fix_give_an_empty_plan_that_says_why():
    user = diagnose(NameError("name 'pipe' is not defined"))
    fault = diagnose("RuntimeError: CUDA error: an illegal memory access was encountered")
    assert user.category == "user_code" and fault.category == "accelerator_fault"
    for d in (user, fault):
        p = plan(d, None, GenerationSettings(), "cuda", budget="8GiB")
        assert not p.candidates and p.notes == (NOT_RETRIED[d.category],)
    assert "Restart the kernel" in plan(fault, None, None, "cuda").notes[0]
    missing = plan(Diagnosis("component_missing", "load", "no vae"), None, None, "cpu")
    # Without a folder the structural strategies are listed, skipped, saying why.
    assert missing.candidates and not missing.planned
    assert "no model folder is known" in missing.candidate("component_donor").skip_reason
    assert "guidance only" in missing.candidate("redownload").skip_reason


def test_explicit_strategies_and_what_the_pipeline_already_does(tiny_report):
    settings = GenerationSettings(height=64, width=64, num_frames=5, dtype="bfloat16")
    p = plan(oom("vae_decode"), tiny_report, settings, "cpu", budget="1GiB",
             strategies=["half_precision", "vae_tiling", "layerwise_fp8+vae_tiling"], applied=("vae_tiling",),
             fresh_load_possible=False)
    reasons = {c.strategy: c.skip_reason for c in p.candidates}
    assert reasons == {
        "half_precision": "the pipeline already runs in bfloat16",
        "vae_tiling": "the pipeline already uses vae_tiling",
        "layerwise_fp8+vae_tiling": "the pipeline already uses vae_tiling",
    }
    p = plan(oom("denoise"), tiny_report, settings, "cpu", budget="1GiB", strategies=["layerwise_fp8"],
             fresh_load_possible=False)
    assert p.skipped[0].skip_reason.startswith("needs a fresh load of the model folder")
    with pytest.raises(ValueError, match="Unknown strategy"):
        plan(oom("denoise"), None, settings, "cpu", strategies=["offload_everything"])


def test_without_estimates_the_order_still_follows_the_diagnosis():
    p = plan(oom("vae_decode"), None, None, "cpu")
    assert p.planned[0].strategy == "vae_tiling" and p.planned[0].fit == "unknown"
    assert any("settings are unknown" in n for n in p.notes)
    assert any("nothing is estimated" in n for n in p.notes)
    # CPU free memory stands in for a budget.
    assert p.budget_bytes is None and p.available_bytes > 0


def test_plan_round_trips_through_json_and_reads_as_a_table(tiny_report):
    settings = GenerationSettings(height=64, width=64, num_frames=9)
    p = plan(oom("vae_decode"), tiny_report, settings, "cpu", budget="64MiB", allow_degraded=True)
    again = Plan.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p
    frame = p.to_frame()
    assert list(frame.columns) == ["order", "strategy", "status", "estimated_peak", "available", "fit", "quality",
                                   "slowdown", "changes", "reason"]
    assert len(frame) == len(p.candidates) and frame["order"].iloc[0] == 1
    text = p.to_text()
    assert text.startswith("Plan for out_of_memory in vae_decode on cpu, 64.00 MiB available (budget 64.00 MiB, 0 B taken as in use):")
    assert "  1. vae_tiling" in text
    assert len(p) == len(p.planned) and list(p) == list(p.planned)
    with pytest.raises(KeyError, match="not in this plan"):
        p.candidate("warp_drive")
