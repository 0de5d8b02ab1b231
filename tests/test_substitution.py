"""Pipeline substitution on real tiny pipelines: assembly, generic load, upgrade advice, remote code."""

import json
from dataclasses import replace

import pytest

from wan_nb.fixtures import faults
from wan_nb.model.components import analyze_model_components
from wan_nb.model.report import ModelFolderError
from wan_nb.repair.assemble import (
    CONSENT_REASON,
    AssemblyPlan,
    ConsentRequired,
    SubstitutionError,
    assemble_components,
    generic_pipeline,
    plan_assembly,
)
from wan_nb.repair.options import substitution_options
from wan_nb.repair.remote_code import find_remote_code, load_with_remote_code
from wan_nb.repair.upgrade import upgrade_guidance


def _tree_state(folder):
    """Every file's size and mtime: substitution must leave the model folder as it was."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def _fast_call(**overrides):
    from wan_nb.fixtures import tiny_call_kwargs

    # One step, one frame, no guidance: every stage runs, in about a second on a CPU.
    return tiny_call_kwargs("wan2.1-t2v", num_inference_steps=1, num_frames=1, guidance_scale=1.0, **overrides)


@pytest.fixture
def wan3(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.set_pipeline_class(path, "Wan3Pipeline")
    return path


@pytest.fixture
def custom_code(tiny_path, model_copy, tmp_path, monkeypatch):
    """A folder whose pipeline class lives in its own pipeline.py; importing it leaves a marker."""
    import diffusers.utils.dynamic_modules_utils as dynamic

    # diffusers copies the module into HF_MODULES_CACHE before importing it: keep that in tmp.
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    path = model_copy(tiny_path("wan2.1-t2v"))
    marker = tmp_path / "code-ran.txt"
    (path / "pipeline.py").write_text(
        "import pathlib\n"
        "from diffusers import WanPipeline\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n\n"
        "class CustomWanPipeline(WanPipeline):\n"
        "    custom = True\n"
    )
    index = json.loads((path / "model_index.json").read_text())
    index["_class_name"] = ["pipeline", "CustomWanPipeline"]  # diffusers' custom-pipeline convention
    (path / "model_index.json").write_text(json.dumps(index))
    return path, marker


def test_wan3_pipeline_is_assembled_and_produces_the_same_video(tiny_path, wan3):
    import numpy as np
    from diffusers import DiffusionPipeline

    with pytest.raises(AttributeError, match="Wan3Pipeline"):
        DiffusionPipeline.from_pretrained(wan3)
    before = _tree_state(wan3)
    plan = plan_assembly(wan3)
    assert plan.pipeline_class == "WanPipeline" and plan.requested_class == "Wan3Pipeline"
    assert {s.name for s in plan.components} == {"scheduler", "text_encoder", "tokenizer", "transformer", "vae"}
    assert any("Wan3Pipeline" in lim for lim in plan.limitations)
    assert dict(plan.rejected)["WanVACEPipeline"].startswith("expects WanVACETransformer3DModel")
    assert AssemblyPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert "WanPipeline(" in plan.snippet() and "WanTransformer3DModel.from_pretrained(" in plan.snippet()

    pipe = assemble_components(wan3)
    assert type(pipe).__name__ == "WanPipeline" and pipe.name_or_path == str(wan3)
    frames = pipe(**_fast_call()).frames
    assert frames.shape == (1, 1, 32, 32, 3)
    # Same weights, same classes: the assembled pipeline is the original, frame for frame.
    original = DiffusionPipeline.from_pretrained(tiny_path("wan2.1-t2v"))(**_fast_call()).frames
    np.testing.assert_allclose(frames, original, atol=1e-6)
    assert _tree_state(wan3) == before


def test_options_for_an_unknown_class(wan3):
    options = {o.name: o for o in substitution_options(wan3)}
    assert list(options) == ["generic_pipeline", "assemble_components", "remote_code", "upgrade_library"]
    assert not options["generic_pipeline"].applicable and "Wan3Pipeline" in options["generic_pipeline"].reason
    assert options["assemble_components"].applicable
    assert not options["remote_code"].applicable and not options["upgrade_library"].runs
    with pytest.raises(SubstitutionError, match="Wan3Pipeline.*assemble_components"):
        generic_pipeline(wan3)


def test_generic_pipeline_loads_the_named_class(tiny_path):
    import torch

    pipe = generic_pipeline(tiny_path("wan2.1-t2v"), torch_dtype="bfloat16")
    assert type(pipe).__name__ == "WanPipeline" and pipe.transformer.dtype == torch.bfloat16
    with pytest.raises(SubstitutionError, match="`torch_dtype='float9'`"):
        generic_pipeline(tiny_path("wan2.1-t2v"), torch_dtype="float9")


def test_upgrade_guidance_names_the_release(tiny_path, wan3):
    guidance = upgrade_guidance(wan3)
    assert guidance.required is None and guidance.command == "pip install -U diffusers"
    assert "Wan3Pipeline" in guidance.message and "does not install" in guidance.message

    # A Wan 2.2 folder on a diffusers that predates Wan: the pipeline came in 0.33.0, the
    # two experts in 0.35.0, so 0.35.0 is what it needs.
    report = analyze_model_components(tiny_path("wan2.2-t2v-a14b"))
    old = replace(report, diffusers_version="0.32.0", pipeline_importable=False)
    guidance = upgrade_guidance(old)
    assert guidance.required == "0.35.0" and guidance.command == 'pip install -U "diffusers>=0.35.0"'
    # On 0.34 the class exists but lacks the second expert: loading it generically is no answer.
    options = {o.name: o for o in substitution_options(replace(report, diffusers_version="0.34.0"))}
    assert not options["generic_pipeline"].applicable and "predates 0.35.0" in options["generic_pipeline"].reason
    assert options["upgrade_library"].applicable and '"diffusers>=0.35.0"' in options["upgrade_library"].reason

    # An unknown class in a folder saved by a newer diffusers: that version is the advice.
    newer = replace(analyze_model_components(wan3), saved_with="9.1.0")
    assert upgrade_guidance(newer).command == 'pip install -U "diffusers>=9.1.0"'


def test_missing_component_is_named(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.remove_component(path, "vae")
    with pytest.raises(SubstitutionError, match=r"`vae` is missing.*find_donor.*redownload_instructions"):
        plan_assembly(path)
    with pytest.raises(SubstitutionError, match="`donors` names text_encoder_3"):
        plan_assembly(path, donors={"text_encoder_3": path})


def test_forced_class_that_does_not_fit(tiny_path):
    with pytest.raises(SubstitutionError, match="WanVACEPipeline expects WanVACETransformer3DModel"):
        plan_assembly(tiny_path("wan2.1-t2v"), pipeline_class="WanVACEPipeline")
    with pytest.raises(SubstitutionError, match="`pipeline_class='NoSuchPipeline'`"):
        plan_assembly(tiny_path("wan2.1-t2v"), pipeline_class="NoSuchPipeline")


def test_bad_folder_says_what_to_give(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist"):
        plan_assembly(tmp_path / "nope")
    with pytest.raises(ModelFolderError, match="model_index.json"):
        assemble_components(tmp_path)


def test_remote_code_needs_consent_then_runs(custom_code):
    path, marker = custom_code
    remote = find_remote_code(path)
    assert remote.files == ("pipeline.py",) and remote.class_name == "CustomWanPipeline" and remote.local
    before = _tree_state(path)

    options = {o.name: o for o in substitution_options(path)}
    assert not options["remote_code"].applicable and options["remote_code"].reason == CONSENT_REASON
    assert not options["upgrade_library"].applicable  # the class is the folder's, not a release's
    with pytest.raises(ConsentRequired, match=CONSENT_REASON):
        load_with_remote_code(path)
    assert not marker.exists(), "the folder's code ran without consent"

    # Without consent, assembly from installed classes still gives a working pipeline.
    plan = plan_assembly(path)
    assert plan.pipeline_class == "WanPipeline" and "CustomWanPipeline" in plan.limitations[0]
    assert not marker.exists()

    consented = [o.name for o in substitution_options(path, allow_remote_code=True) if o.applicable]
    assert consented[0] == "remote_code"
    pipe = load_with_remote_code(path, allow_remote_code=True)
    assert type(pipe).__name__ == "CustomWanPipeline" and pipe.custom and marker.exists()
    assert pipe(**_fast_call()).frames.shape == (1, 1, 32, 32, 3)
    assert _tree_state(path) == before  # diffusers copied the module elsewhere, not into the folder


def test_remote_code_that_is_not_local_is_never_fetched(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    index = json.loads((path / "model_index.json").read_text())
    index["_class_name"] = ["hub_pipeline", "HubPipeline"]
    (path / "model_index.json").write_text(json.dumps(index))
    remote = find_remote_code(path)
    assert not remote.local and remote.missing == ("hub_pipeline.py",)
    with pytest.raises(SubstitutionError, match="never downloads"):
        load_with_remote_code(path, allow_remote_code=True)
    with pytest.raises(SubstitutionError, match="holds no pipeline or component code"):
        load_with_remote_code(tiny_path("wan2.1-t2v"), allow_remote_code=True)
