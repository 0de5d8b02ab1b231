"""Replay: a decode OOM re-decodes the failed run's latents; a denoise OOM reuses its prompt embeddings.

Real tiny pipelines under real memory budgets; the replayed output is compared with a full
rerun of the same cell under the same strategy and seed.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from wan_nb import recover, retry_on_failure
from wan_nb.diagnosis import diagnose
from wan_nb.recovery.replay import KeptRun, keep_from_error

DECODE = {"height": 64, "width": 64, "num_frames": 5, "num_inference_steps": 3}
DENOISE = {"height": 64, "width": 64, "num_frames": 65, "num_inference_steps": 1, "output_type": "latent"}


def call(variant, **overrides):
    from wan_nb.fixtures import tiny_call_kwargs
    from wan_nb.fixtures.tiny import make_test_image

    if variant == "wan2.1-i2v":
        overrides.setdefault("image", make_test_image(overrides["width"], overrides["height"]))
    return tiny_call_kwargs(variant, **overrides)


def measured(run, pipe=None):
    from wan_nb.memory.meter import measure

    gc.collect()
    with measure(pipeline=pipe, device="cpu") as m:
        run()
    return m.result


def failure(run, budget):
    from wan_nb.memory.budget import memory_budget

    try:
        with memory_budget(budget, device="cpu"):
            run()
    except Exception as exc:  # noqa: BLE001 - the failure under test
        return exc
    raise AssertionError("the run fitted in its budget")


class Calls:
    """Counts the forward calls of the modules of one class, wherever they are (fresh loads too)."""

    def __init__(self, *class_names: str) -> None:
        self.names = class_names
        self.count = 0

    def __enter__(self) -> Calls:
        import torch

        def hook(module, args):
            if type(module).__name__ in self.names:
                self.count += 1

        self._handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


@pytest.fixture(scope="module")
def pipes(tiny_path):
    from diffusers import DiffusionPipeline

    cache = {}

    def get(variant):
        if variant not in cache:
            cache[variant] = DiffusionPipeline.from_pretrained(tiny_path(variant, 1))
        return cache[variant]

    return get


def _decode_failure(pipe, variant):
    run = lambda: pipe(**call(variant, **DECODE))  # noqa: E731 - the failing cell
    m = measured(run, pipe)
    assert max(m.by_stage, key=m.by_stage.get) == "vae_decode", m.by_stage  # the decode is the peak
    budget = m.baseline_bytes + int(0.85 * (m.peak_bytes - m.baseline_bytes))
    error = failure(run, budget)
    assert diagnose(error).stage == "vae_decode"
    return run, budget, error


@pytest.mark.parametrize("variant", ["wan2.1-t2v", "wan2.1-i2v", "wan2.2-t2v-a14b", "wan2.2-ti2v-5b"])
def test_a_decode_oom_redecodes_the_latents_and_equals_a_full_rerun(pipes, variant):
    pipe = pipes(variant)
    run, budget, error = _decode_failure(pipe, variant)
    with Calls("WanTransformer3DModel", "UMT5EncoderModel", "T5EncoderModel") as models:
        replayed = recover(run, error=error, budget=budget, strategies=["vae_tiling"])
    assert replayed.winner == "vae_tiling", replayed.to_text()
    attempt = replayed.winning_attempt
    assert attempt.replayed == ("text_encode", "denoise") and attempt.replay_note is None
    assert models.count == 0  # neither the text encoder nor the transformer ran again
    assert "latents" in " ".join(replayed.notes)

    full = recover(run, diagnosis=replayed.diagnosis, budget=budget, strategies=["vae_tiling"], replay=False)
    assert full.winner == "vae_tiling" and full.winning_attempt.replayed == ()
    # The same strategy and seed: the same video (tiling both times, so the same decode). I2V
    # also VAE-encodes its input image, and a full rerun under tiling tiles that encode too:
    # there the two differ by the tiling's own blending, not by the replay.
    difference = np.abs(replayed.result.frames - full.result.frames)
    if variant == "wan2.1-i2v":
        assert difference.mean() < 0.01 and difference.max() < 0.1, (difference.mean(), difference.max())
    else:
        assert difference.max() < 1e-6
    assert pipe.vae.use_tiling is False  # the pipeline as it was


def test_the_kept_run_lives_on_the_host_and_goes_with_the_recovery(pipes):
    pipe = pipes("wan2.1-t2v")
    run, budget, error = _decode_failure(pipe, "wan2.1-t2v")
    kept = keep_from_error(error)
    assert isinstance(kept, KeptRun) and kept.stage == "vae_decode"
    assert kept.latents.device.type == "cpu" and kept.latents.shape[2] == 2  # 5 frames: 2 latent frames
    gone = weakref.ref(kept.latents)
    report = recover(run, error=error, budget=budget, kept=kept)
    assert report.winning_attempt.replayed
    del kept, error
    gc.collect()
    assert gone() is None  # nothing of the recovery holds the latents
    assert "KeptRun" not in repr(report.to_dict())


def test_a_call_that_is_not_the_failed_one_runs_in_full_and_says_why(pipes):
    pipe = pipes("wan2.1-t2v")
    run, budget, error = _decode_failure(pipe, "wan2.1-t2v")
    other = lambda: pipe(**call("wan2.1-t2v", **DECODE, prompt="a dog in the snow"))  # noqa: E731
    report = recover(other, error=error, budget=budget, strategies=["vae_tiling"])
    attempt = report.attempts[0]
    assert attempt.replayed == () and "`prompt` differs" in attempt.replay_note
    assert "ran in full: this call is not the failed one" in report.to_text()


def test_explore_compares_decode_strategies_at_decode_cost(pipes):
    pipe = pipes("wan2.1-t2v")
    run, budget, error = _decode_failure(pipe, "wan2.1-t2v")
    report = recover(run, error=error, budget=budget, explore=True, strategies=["vae_tiling", "vae_slicing"],
                     force=True)
    tried = {a.strategy: a for a in report.attempts}
    assert set(tried) == {"vae_tiling", "vae_slicing"}
    assert all(a.replayed == ("text_encode", "denoise") for a in tried.values())
    assert tried["vae_tiling"].succeeded and not tried["vae_slicing"].succeeded  # one video: slicing saves nothing


def test_a_strategy_that_changes_the_denoising_reruns_in_full(pipes):
    pipe = pipes("wan2.1-t2v")
    run, budget, error = _decode_failure(pipe, "wan2.1-t2v")
    # Without the budget: its fresh load in half precision beside the pipeline would not fit in it.
    report = recover(run, error=error, strategies=["half_precision+vae_tiling"], force=True)
    attempt = report.attempts[0]
    assert attempt.succeeded
    assert attempt.replayed == () and "changes what the denoising computes" in attempt.replay_note


def test_a_denoise_oom_reuses_the_prompt_embeddings(pipes):
    pipe = pipes("wan2.1-t2v")
    run = lambda: pipe(**call("wan2.1-t2v", **DENOISE))  # noqa: E731
    m = measured(run, pipe)
    budget = m.baseline_bytes + int(0.9 * (m.peak_bytes - m.baseline_bytes))
    error = failure(run, budget)
    assert diagnose(error).stage == "denoise"
    kept = keep_from_error(error)
    assert kept.stage == "denoise" and set(kept.embeddings) == {"prompt_embeds", "negative_prompt_embeds"}
    assert all(t.device.type == "cpu" for t in kept.embeddings.values())
    with Calls("UMT5EncoderModel") as encoder:
        report = recover(run, error=error, budget=budget, kept=kept, allow_degraded=True)
    assert report.attempts and encoder.count == 0, report.to_text()  # no retry encoded the prompt
    assert all(a.replayed == ("text_encode",) for a in report.attempts)
    assert report.winner, report.to_text()
    # The output a full run gives with the same changes and seed (the prompt encoded again).
    changes = report.winning_attempt.changes
    assert changes.get("num_frames", 65) < 65  # on a CPU, fewer frames is what fits
    expected = pipe(**call("wan2.1-t2v", **{**DENOISE, **changes})).frames
    np.testing.assert_allclose(report.result.frames.float().numpy(), expected.float().numpy(), atol=1e-6)


def test_retry_on_failure_replays_the_decode(pipes):
    pipe = pipes("wan2.1-t2v")
    _, budget, error = _decode_failure(pipe, "wan2.1-t2v")
    del error  # its frames hold the failed run's activations
    gc.collect()

    @retry_on_failure(budget=budget, strategies=["vae_tiling"], pipeline=pipe)
    def generate():
        return pipe(**call("wan2.1-t2v", **DECODE)).frames[0]

    with Calls("WanTransformer3DModel") as transformer:
        video = generate()
    steps = DECODE["num_inference_steps"] * 2  # CFG: two passes a step, in the failed first call only
    assert video.shape == (5, 64, 64, 3) and transformer.count == steps
    attempt = generate.last_report.winning_attempt
    assert attempt.replayed == ("text_encode", "denoise") and attempt.saved_seconds > 0

    @retry_on_failure(budget=budget, strategies=["vae_tiling"], pipeline=pipe, replay=False)
    def generate_in_full():
        return pipe(**call("wan2.1-t2v", **DECODE)).frames[0]

    np.testing.assert_allclose(generate_in_full(), video, atol=1e-6)
    assert generate_in_full.last_report.winning_attempt.replayed == ()


def test_vae_on_cpu_is_planned_for_accelerators_and_said_why_not_on_a_cpu(synth_path):
    import wan_nb
    from wan_nb.settings import GenerationSettings

    report = wan_nb.analyze_model_components(synth_path("wan2.1-t2v-1.3b"))
    settings = GenerationSettings(480, 832, 81)
    none = wan_nb.estimate_memory(report, settings)
    on_cpu = wan_nb.estimate_memory(report, settings, "vae_on_cpu")
    assert on_cpu.by_stage["vae_decode"] < none.by_stage["vae_decode"]
    assert on_cpu.by_stage["weights"] < none.by_stage["weights"]  # the VAE's weights left the device
    assert on_cpu.by_stage["denoise"] == pytest.approx(none.by_stage["denoise"] - (none.by_stage["weights"]
                                                                                   - on_cpu.by_stage["weights"]))
    diagnosis = wan_nb.Diagnosis("out_of_memory", "vae_decode", "ran out")
    cpu_plan = wan_nb.plan(diagnosis, report, settings, "cpu", budget="16GiB")
    assert cpu_plan.candidate("vae_on_cpu").skip_reason.startswith("needs an accelerator")
    assert 'pipe.vae.to("cpu")' in wan_nb.get_strategy("vae_on_cpu").snippet(path="m")
    with pytest.raises(ValueError, match="undoing `vae_on_cpu`"):
        wan_nb.get_strategy("vae_on_cpu+model_cpu_offload")
