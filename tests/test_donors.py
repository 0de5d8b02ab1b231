"""Component isolation, donors and redownload advice on real tiny pipelines."""

import json
import shutil

import pytest

from wan_nb.fixtures import copy_model, faults
from wan_nb.model.components import analyze_model_components
from wan_nb.model.discovery import local_model_folders, repo_id_from_cache_path
from wan_nb.repair.assemble import SubstitutionError
from wan_nb.repair.donors import (
    Donor,
    UsableComponent,
    assemble_with_donors,
    check_component,
    find_donor,
    find_donors,
    isolate_components,
)
from wan_nb.repair.redownload import Redownload, redownload_instructions


@pytest.fixture(autouse=True)
def _private_hf_cache(tmp_path, monkeypatch):
    """Point every Hugging Face cache variable into this test's tmp dir."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path / "hf" / "hub"


def _tree_state(folder):
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def models(tmp_path, tiny_path):
    """A models folder: a Wan 2.1 copy without its VAE, a Wan 2.2 two-expert model (a
    compatible 16-channel VAE) and a model whose VAE has 48 latent channels (incompatible)."""
    root = tmp_path / "models"
    broken = copy_model(tiny_path("wan2.1-t2v"), root / "wan21-broken")
    faults.remove_component(broken, "vae")
    copy_model(tiny_path("wan2.2-t2v-a14b"), root / "wan22-a14b")
    wide = copy_model(tiny_path("wan2.1-t2v"), root / "wide-vae")
    config = json.loads((wide / "vae" / "config.json").read_text())
    config["z_dim"] = 48
    (wide / "vae" / "config.json").write_text(json.dumps(config))
    return root, broken


def test_missing_vae_gets_a_donor_and_the_pipeline_runs(models):
    from wan_nb.fixtures import tiny_call_kwargs

    root, broken = models
    before = _tree_state(broken)
    donors, rejected = find_donors(broken, "vae")
    assert [d.model for d in donors] == [str(root / "wan22-a14b")]
    donor = donors[0]
    assert donor.class_name == "AutoencoderKLWan" and donor.source == "models_dir" and not donor.same_config
    assert donor.matched == {"z_dim": 16}  # implied by the transformer's out_channels
    assert dict(rejected)[str(root / "wide-vae")] == "vae.z_dim is 48, needed 16"
    assert Donor.from_dict(json.loads(json.dumps(donor.to_dict()))) == donor

    # A donor can also be named by hand, as a model folder: its `vae` is taken.
    from wan_nb.repair.assemble import plan_assembly

    plan = plan_assembly(broken, donors={"vae": root / "wan22-a14b"})
    vae = next(s for s in plan.components if s.name == "vae")
    assert vae.origin == "donor" and vae.folder == str(root / "wan22-a14b" / "vae")

    pipe, chosen = assemble_with_donors(broken)
    assert chosen["vae"] == donor and pipe.vae is not None
    frames = pipe(**tiny_call_kwargs(num_inference_steps=1, num_frames=1, guidance_scale=1.0)).frames
    assert frames.shape == (1, 1, 32, 32, 3)
    assert _tree_state(broken) == before and not (broken / "vae").exists()  # loaded, never copied in


def test_no_donor_names_the_component_files_and_command(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))  # alone in its folder: no sibling to give a VAE
    faults.remove_component(path, "vae")
    assert find_donor(path, "vae") is None
    (fetch,) = redownload_instructions(path)
    assert fetch.component == "vae" and fetch.status == "missing" and not fetch.files_known
    assert fetch.files == ("vae/config.json", "vae/diffusion_pytorch_model.safetensors")
    assert fetch.command == f"hf download <repo-id> --include 'vae/*' --local-dir {path} --force-download"
    assert "replace <repo-id>" in fetch.reason
    parts = {c.component_type: c for c in isolate_components(path)}
    assert parts["transformer"].is_functional and "needs vae (missing)" in parts["transformer"].limitations[0]
    with pytest.raises(SubstitutionError, match=r"`vae` is missing .* no compatible AutoencoderKLWan.*hf download"):
        assemble_with_donors(path)
    named = redownload_instructions(path, repo_id="Wan-AI/Wan2.1-T2V-1.3B-Diffusers")[0]
    assert named.command.startswith("hf download Wan-AI/Wan2.1-T2V-1.3B-Diffusers --include 'vae/*'")
    assert Redownload.from_dict(json.loads(json.dumps(named.to_dict()))) == named


def test_truncated_transformer_is_isolated(tiny_path, model_copy):
    path = model_copy(tiny_path("wan2.1-t2v"))
    weight = faults.truncate_weights(path, "transformer")
    components = {c.component_type: c for c in isolate_components(path)}
    transformer = components.pop("transformer")
    assert not transformer.is_functional and transformer.status == "corrupt"
    assert "truncated" in transformer.problems[0] and transformer.dependencies == ("text_encoder", "vae", "scheduler")
    assert not components.pop("transformer_2").is_functional  # null in model_index.json: nothing to load
    for name, component in components.items():
        assert component.is_functional and component.checked == "loaded", (name, component.problems)
    assert components["text_encoder"].dependencies == ("tokenizer",) and not components["text_encoder"].limitations
    assert not any("transformer" in lim for c in components.values() for lim in c.limitations)
    assert transformer.limitations == ()
    assert components["vae"].memory_bytes > 0 and components["vae"].dtype == "float32"

    (fetch,) = redownload_instructions(path, repo_id="Wan-AI/Wan2.1-T2V-1.3B-Diffusers")
    assert fetch.status == "corrupt" and fetch.files_known
    assert fetch.files == ("transformer/diffusion_pytorch_model.safetensors",) and weight.name in fetch.command
    assert "--local-dir" in fetch.command and "--force-download" in fetch.command
    for component in isolate_components(path):
        assert UsableComponent.from_dict(json.loads(json.dumps(component.to_dict()))) == component


def test_damaged_transformer_with_its_config_needs_the_same_config(tiny_path, model_copy, tmp_path):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.truncate_weights(path, "transformer")
    other = copy_model(tiny_path("wan2.2-t2v-a14b"), tmp_path / "a14b")
    donor = find_donor(path, "transformer", [other])
    # Its config survived, so the donor's must match it all: the tiny two-expert model's does.
    assert donor is not None and donor.same_config and donor.source == "user" and donor.folder == str(other / "transformer")


def test_hf_cache_is_searched(tiny_path, model_copy, _private_hf_cache):
    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.remove_component(path, "vae")
    snapshot = _private_hf_cache / "models--Wan-AI--Tiny-Wan" / "snapshots" / "0123abcd"
    copy_model(tiny_path("wan2.1-t2v"), snapshot)
    assert repo_id_from_cache_path(snapshot) == "Wan-AI/Tiny-Wan"
    assert [f[1:] for f in local_model_folders([], include_hf_cache=True)] == [("hf_cache", "Wan-AI/Tiny-Wan")]
    donor = find_donor(path, "vae")
    assert donor.source == "hf_cache" and donor.repo_id == "Wan-AI/Tiny-Wan"
    assert find_donor(path, "vae", include_hf_cache=False) is None

    # A damaged file inside the cache: the command refreshes the cache, no --local-dir.
    faults.truncate_weights(snapshot, "vae")
    (fetch,) = redownload_instructions(snapshot)
    assert fetch.command == "hf download Wan-AI/Tiny-Wan vae/diffusion_pytorch_model.safetensors --force-download"


def test_meta_check_for_components_too_large_to_load(tiny_path):
    report = analyze_model_components(tiny_path("wan2.1-t2v"))
    for name in ("transformer", "vae"):
        component = check_component(report, name, max_load_bytes=0)
        assert component.is_functional and component.checked == "meta", component.problems
        assert "max_load_bytes" in component.limitations[0]


def test_bad_input_is_named(tiny_path, tmp_path):
    with pytest.raises(KeyError, match="no such component; it has"):
        find_donors(tiny_path("wan2.1-t2v"), "unet")
    assert redownload_instructions(tiny_path("wan2.1-t2v")) == []
    missing = tmp_path / "not-a-folder"
    assert local_model_folders([missing]) == []
    shutil.rmtree(tmp_path / "hf", ignore_errors=True)
