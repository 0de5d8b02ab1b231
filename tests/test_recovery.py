"""The recovery engine on real tiny pipelines under real memory budgets: the issue's seven scenarios,
the script entry point in every calling form, and the report as data."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest

from wan_nb.diagnosis import diagnose
from wan_nb.recovery.engine import recover
from wan_nb.recovery.records import Attempt, RecoveryError, RecoveryReport
from wan_nb.recovery.retry import retry_on_failure

NO_ACCEL = "needs an accelerator (CUDA/XPU/MPS); this kernel has none"


def call(**overrides):
    from wan_nb.fixtures import tiny_call_kwargs

    return tiny_call_kwargs("wan2.1-t2v", **overrides)


# 64x64 px, 5 frames: the VAE decode is the peak stage (its decoder works at full resolution).
DECODE_HEAVY = {"height": 64, "width": 64, "num_frames": 5, "num_inference_steps": 2}
# 64x64 px, 65 frames, latents out: no decode, the transformer's tokens make the peak.
DENOISE_HEAVY = {"height": 64, "width": 64, "num_frames": 65, "num_inference_steps": 1, "output_type": "latent"}


def measured(run, pipe=None):
    from wan_nb.memory.meter import measure

    gc.collect()
    with measure(pipeline=pipe) as m:
        run()
    return m.result


def live_bytes() -> int:
    from wan_nb.memory.meter import measure

    gc.collect()
    with measure(device="cpu") as m:
        pass
    return m.result.baseline_bytes


def failure(run, budget):
    from wan_nb.memory.budget import memory_budget

    try:
        with memory_budget(budget, device="cpu"):
            run()
    except Exception as exc:  # noqa: BLE001 - the failure under test
        return exc
    raise AssertionError("the run fitted in its budget")


def fingerprint(pipe) -> dict:
    import torch

    out: dict = {"pipe": {k: id(v) for k, v in pipe.__dict__.items()}}
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            out[name] = {
                "tensors": {n: (str(t.device), str(t.dtype)) for n, t in [*module.named_parameters(),
                                                                           *module.named_buffers()]},
                "hooked": sorted(n for n, m in module.named_modules()
                                 if {"_hf_hook", "_diffusers_hook", "forward", "_old_forward"} & set(m.__dict__)),
                "flags": {k: v for k, v in module.__dict__.items() if isinstance(v, (bool, int, float, str))},
            }
    return out


@pytest.fixture(scope="module")
def path(tiny_path):
    return tiny_path("wan2.1-t2v", 1)


@pytest.fixture(scope="module")
def pipe(path):
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(path)


@pytest.fixture(scope="module")
def decode_budget(pipe):
    """A budget the plain decode exceeds and the tiled one fits: 80 % of the untiled run's extra memory."""
    m = measured(lambda: pipe(**call(**DECODE_HEAVY)), pipe)
    return m.baseline_bytes + int(0.8 * (m.peak_bytes - m.baseline_bytes))


# --------------------------------------------------------------------------- scenario 1


def test_oom_in_vae_decode_is_fixed_by_tiling_in_one_attempt(pipe, decode_budget):
    run = lambda: pipe(**call(**DECODE_HEAVY))  # noqa: E731 - the failing cell
    error = failure(run, decode_budget)
    assert diagnose(error).stage == "vae_decode"
    report = recover(run, error=error, budget=decode_budget)
    assert error.__traceback__ is None  # its frames held the failed run's tensors
    assert report.winner == "vae_tiling" and len(report.attempts) == 1
    attempt = report.attempts[0]
    assert attempt.status == "success" and attempt.measured_peak_bytes < decode_budget
    assert attempt.by_stage["vae_decode"] < decode_budget and attempt.estimated_peak_bytes is not None
    assert report.result.frames.shape == (1, 5, 64, 64, 3)
    assert report.settings.height == 64 and report.settings.num_frames == 5  # read from the call
    assert report.plan.planned[0].strategy == "vae_tiling"
    snippet = report.snippet()
    # The pipeline is in memory and tiling does not change its load: the snippet tiles it and
    # repeats the call (tests/test_snippets_pasted.py runs such snippets as pasted).
    assert "from_pretrained" not in snippet and "height=64" in snippet and "num_frames=5" in snippet
    assert "pipe.vae.enable_tiling(tile_sample_min_height=32" in snippet
    assert pipe.vae.use_tiling is False  # not kept: apply=False


# --------------------------------------------------------------------------- scenario 2


def test_oom_in_denoising_finds_what_fits_on_a_cpu_and_says_why_the_rest_cannot(path):
    from diffusers import WanPipeline

    def cell():
        pipe = WanPipeline.from_pretrained(path)
        pipe.to("cpu")
        return pipe(**call(**DENOISE_HEAVY))

    m = measured(cell)
    budget = m.baseline_bytes + int(0.9 * (m.peak_bytes - m.baseline_bytes))
    report = recover(cell, budget=budget)  # no error given: the engine runs it as it is first
    assert report.probe.status == "failed" and report.probe.diagnosis["stage"] == "denoise"
    assert report.succeeded and report.winner and len(report.attempts) <= 2
    assert report.winning_attempt.measured_peak_bytes < budget
    skipped = {c.strategy: c.skip_reason for c in report.plan.skipped}
    for name in ("model_cpu_offload", "group_offload", "sequential_cpu_offload", "quantize_nf4"):
        assert skipped[name] == NO_ACCEL
    assert not {"model_cpu_offload", "group_offload"} & {a.strategy for a in report.attempts}


# --------------------------------------------------------------------------- scenario 3


def test_when_only_fewer_frames_fits_it_waits_for_permission(pipe, path):
    from wan_nb.memory.estimate import estimate_memory
    from wan_nb.model.components import analyze_model_components
    from wan_nb.planning import SAFETY_MARGIN
    from wan_nb.recovery.pipelines import pipeline_bytes as _pipeline_bytes
    from wan_nb.settings import GenerationSettings

    run = lambda: pipe(**call(height=48, width=48, num_frames=33, num_inference_steps=1))  # noqa: E731
    m = measured(run, pipe)
    # Room for the shortest clip (5 frames) with the plan's safety margin, and no more: the
    # full clip, tiling (its tiles cost more than they save at 48 px) and a fresh load in
    # another precision next to this pipeline all need more.
    shortest = GenerationSettings(height=48, width=48, num_frames=5, num_inference_steps=1, max_sequence_length=32,
                                  dtype="float32")
    need = estimate_memory(analyze_model_components(path), shortest, device="cpu").peak_bytes
    others = m.baseline_bytes - _pipeline_bytes([pipe], "cpu")
    budget = others + int(need / (1 - SAFETY_MARGIN) * 1.02)
    assert budget < m.peak_bytes  # the clip as asked does not fit

    refused = recover(run, error=failure(run, budget), budget=budget)
    assert not refused.attempts and not refused.succeeded
    assert not any(c.planned for c in refused.plan.candidates)
    frames = refused.plan.candidate("fewer_frames")
    assert frames.fit == "fits" and frames.changes == {"num_frames": 5}
    assert "num_frames 33 -> 5" in frames.skip_reason and "allow_degraded=True" in frames.skip_reason
    assert refused.plan.candidate("vae_tiling").skip_reason.startswith("predicted not to fit")
    # The mildest change that fits comes first: tiling as well keeps more frames.
    first = next(c for c in refused.plan.candidates if c.degraded)
    assert first.strategy.startswith("fewer_frames") and first.changes["num_frames"] >= 5
    assert f"`{first.strategy}` would (num_frames={first.changes['num_frames']})" in refused.notes[-1]
    assert "allow_degraded=True" in refused.to_text()

    allowed = recover(run, error=failure(run, budget), budget=budget, allow_degraded=True)
    assert allowed.winner == first.strategy and len(allowed.attempts) == 1
    assert allowed.result.frames.shape[1] == first.changes["num_frames"]
    assert allowed.winning_attempt.measured_peak_bytes < budget
    assert f"num_frames={first.changes['num_frames']}" in allowed.snippet()


# --------------------------------------------------------------------------- scenario 4


def test_a_run_that_loads_its_own_pipeline_recovers_and_its_names_are_put_back(path, decode_budget):
    from diffusers import WanPipeline

    namespace: dict = {"pipe": "not loaded yet"}

    def cell():
        namespace["pipe"] = WanPipeline.from_pretrained(path)
        namespace["pipe"].to("cpu")
        return namespace["pipe"](**call(**DECODE_HEAVY))

    from wan_nb.recovery.pipelines import pipeline_bytes as _pipeline_bytes

    # The cell loads its weights inside the budget: give it room for them.
    budget = decode_budget + _pipeline_bytes([WanPipeline.from_pretrained(path)], "cpu")
    bound_after = []
    # The seed's way: a fixed order, whatever the failure; on a CPU the text encoder has
    # nowhere better to go, so the first attempt fails.
    report = recover(cell, namespace=namespace, error=failure(cell, budget), budget=budget, force=True,
                     strategies=["text_encoder_cpu", "vae_tiling"],
                     on_attempt=lambda a: bound_after.append(namespace.get("pipe")))
    assert [a.status for a in report.attempts] == ["failed", "success"]
    assert report.attempts[0].diagnosis["category"] == "out_of_memory"
    # The failed cell's own pipeline was unbound before the retries, the failed attempt's
    # after it (and so both were freed); the winner's stays as it ran.
    assert "`pipe` held the pipeline the failed run had loaded" in report.notes[0]
    assert bound_after[0] is None
    assert namespace["pipe"] is bound_after[1] and namespace["pipe"].vae.use_tiling
    assert "to" not in namespace["pipe"].__dict__
    assert report.winner == "vae_tiling" and report.pipeline_class == "WanPipeline"
    assert report.path == str(path) and report.settings.num_frames == 5


def test_the_same_failure_recovers_with_an_existing_pipeline_found_in_the_namespace(pipe, decode_budget):
    namespace = {"pipe": pipe, "call": call, "DECODE_HEAVY": DECODE_HEAVY}
    # The prompt passed by position, as people write it: the engine binds it to the signature.
    run = notebook_cell("kw = call(**DECODE_HEAVY)\nvideo = pipe(kw.pop('prompt'), **kw)", namespace)
    report = recover(run, namespace=namespace, budget=decode_budget)
    assert report.winner == "vae_tiling" and len(report.attempts) == 1
    assert report.probe is not None and report.probe.diagnosis["stage"] == "vae_decode"
    assert report.settings.height == 64 and namespace["video"].frames.shape == (1, 5, 64, 64, 3)


def test_an_offloaded_pipeline_ignores_moves_during_the_attempt_only(pipe):
    import torch

    from wan_nb.recovery.patches import guard_to
    from wan_nb.strategies import STRATEGIES, StrategyContext
    from wan_nb.strategies.state import PipelineState

    before = fingerprint(pipe)
    state = PipelineState.capture(pipe)
    STRATEGIES["model_cpu_offload"]._setup(pipe, StrategyContext(device="cpu"))
    guard_to(pipe, "ignore")
    # A user's `pipe.to(device)` would undo the offload; "meta" would even drop the weights.
    assert pipe.to("meta") is pipe
    assert pipe.transformer.device.type == "cpu" and hasattr(pipe.transformer, "_hf_hook")
    assert torch.isfinite(pipe(**call(num_inference_steps=1, output_type="latent")).frames).all()
    assert state.restore() == []
    assert fingerprint(pipe) == before and "to" not in pipe.__dict__


# --------------------------------------------------------------------------- scenario 5


def notebook_cell(source: str, namespace: dict):
    """A zero-argument callable running ``source`` the way Jupyter runs a cell (its file name too)."""
    code = compile(source, "/tmp/ipykernel_4242/2715.py", "exec")
    return lambda: exec(code, namespace)


def test_user_code_errors_and_accelerator_faults_are_not_retried():
    calls = []
    cell = notebook_cell("calls.append(1)\nsettings = {}\nsettings['prompt']", {"calls": calls})

    report = recover(cell)
    assert calls == [1] and report.probe.diagnosis["category"] == "user_code" and not report.attempts
    assert "Fix the cell" in report.notes[0]
    fault = recover(cell, error="RuntimeError: CUDA error: an illegal memory access was encountered")
    assert calls == [1] and not fault.attempts and not fault.succeeded
    assert fault.diagnosis["category"] == "accelerator_fault"
    assert "Restart the kernel" in fault.notes[0] and "Restart the kernel" in fault.to_text()


# --------------------------------------------------------------------------- scenario 6


def test_after_recovery_the_pipeline_and_the_memory_are_as_before(pipe, decode_budget):
    import torch

    run = lambda: pipe(**call(**DECODE_HEAVY))  # noqa: E731
    before = fingerprint(pipe)
    weights = {n: t.clone() for n, t in pipe.transformer.state_dict().items()}
    baseline = live_bytes()
    # Every candidate that fits, in-place and fresh-load ones alike.
    report = recover(run, error=failure(run, decode_budget), budget=decode_budget * 4, explore=True,
                     strategies=["vae_tiling", "half_precision+vae_tiling", "layerwise_fp8"])
    assert [a.status for a in report.attempts] == ["success"] * 3
    assert all(not a.restore_problems for a in report.attempts)
    assert fingerprint(pipe) == before
    assert all(torch.equal(t, weights[n]) for n, t in pipe.transformer.state_dict().items())
    del report
    assert abs(live_bytes() - baseline) <= 0.01 * baseline


def test_apply_keeps_the_winner_on_the_pipeline(pipe, decode_budget):
    from wan_nb.strategies.state import PipelineState

    before = PipelineState.capture(pipe)
    run = lambda: pipe(**call(**DECODE_HEAVY))  # noqa: E731
    report = recover(run, error=failure(run, decode_budget), budget=decode_budget, apply=True)
    assert report.winner == "vae_tiling" and report.applied
    assert pipe.vae.use_tiling and pipe.vae.tile_sample_min_height == 32 and "to" not in pipe.__dict__
    assert "(kept on the pipeline)" in report.to_text()
    assert before.restore() == [] and not pipe.vae.use_tiling  # for the next tests


# --------------------------------------------------------------------------- scenario 7


def test_ctrl_c_in_the_second_attempt_restores_and_returns_the_partial_report(pipe):
    started = []

    def interrupt_on_second_attempt(pipeline, step, timestep, callback_kwargs):
        if len(started) == 2:
            raise KeyboardInterrupt
        return callback_kwargs

    run = lambda: pipe(**call(**DECODE_HEAVY, callback_on_step_end=interrupt_on_second_attempt))  # noqa: E731
    before = fingerprint(pipe)
    report = recover(run, diagnosis=diagnose(failure(lambda: pipe(**call(**DECODE_HEAVY)), 1)), explore=True,
                     strategies=["vae_tiling", "half_precision", "layerwise_fp8"],
                     on_start=lambda candidate, index: started.append(candidate.strategy))
    assert report.interrupted and len(started) == 2
    assert [a.status for a in report.attempts] == ["success", "interrupted"]
    assert [a.strategy for a in report.attempts] == started and report.winner == started[0]
    assert report.attempts[1].error == "KeyboardInterrupt" and report.attempts[1].diagnosis is None
    assert fingerprint(pipe) == before
    assert "Interrupted" not in report.to_text()  # a winner was found before the interrupt


# --------------------------------------------------------------------------- the report


def test_the_report_is_data_a_table_and_a_live_feed(pipe, decode_budget):
    seen: list = []
    run = lambda: pipe(**call(**DECODE_HEAVY))  # noqa: E731
    report = recover(run, error=failure(run, decode_budget), budget=decode_budget,
                     on_start=lambda c, i: seen.append(("start", c.strategy, i)),
                     on_attempt=lambda a: seen.append(("done", a.strategy, a.status)))
    assert seen == [("start", "vae_tiling", 0), ("done", "vae_tiling", "success")]
    again = RecoveryReport.from_json(report.to_json())
    assert again == report and again.to_dict() == report.to_dict() and again.result is None
    assert again.snippet() == report.snippet()
    assert isinstance(again.attempts[0], Attempt) and again.plan.planned[0].strategy == "vae_tiling"
    frame = report.to_frame()
    assert list(frame["strategy"]) == ["vae_tiling"] and frame["measured_peak_bytes"].iloc[0] < decode_budget
    text = report.to_text()
    assert "Recovered with `vae_tiling`" in text and "1. vae_tiling" in text
    json.dumps(report.to_dict())
    with pytest.raises(ValueError, match="`status` must be one of"):
        Attempt(strategy="x", status="maybe")


def test_bad_arguments_say_what_to_pass():
    with pytest.raises(TypeError, match="zero-argument callable"):
        recover("pipe(prompt)")
    with pytest.raises(ValueError, match="pass `strategies="):
        recover(lambda: None, force=True)
    with pytest.raises(TypeError, match="unknown option"):
        retry_on_failure(budgett="1GiB")


def test_finding_pipelines_does_not_import_diffusers():
    code = ("import sys; from wan_nb.recovery import pipelines as i; "
            "assert i.find_pipelines({'a': 1}, [2], lambda: 3) == []; assert 'diffusers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- the script entry point


def _generate(pipe, budget=None):
    from wan_nb.memory.budget import memory_budget

    # A script's own cap: the run fails inside it the way it would on a smaller card.
    with memory_budget(budget, device="cpu"):
        return pipe(**call(**DECODE_HEAVY))


def test_retry_on_failure_bare_decorator_recovers(pipe, decode_budget):
    @retry_on_failure
    def generate():
        return _generate(pipe, decode_budget)

    assert generate.last_report is None
    video = generate()
    assert video.frames.shape == (1, 5, 64, 64, 3)
    assert generate.last_report.winner == "vae_tiling"
    assert generate.__name__ == "generate"


@pytest.mark.parametrize("form", ["factory", "factory_empty", "call", "call_with_options"])
def test_retry_on_failure_passes_its_options_in_every_form(pipe, decode_budget, form):
    def generate(n):
        return pipe(**call(**DECODE_HEAVY)), n

    options = {"budget": decode_budget, "strategies": ["vae_tiling"], "max_attempts": 0}
    wrapped = {
        "factory": lambda: retry_on_failure(**options)(generate),
        "factory_empty": lambda: retry_on_failure()(generate),
        "call": lambda: retry_on_failure(generate),
        "call_with_options": lambda: retry_on_failure(generate, **options),
    }[form]()
    if form in ("factory_empty", "call"):
        # No options: nothing fails, the function's own result comes back.
        assert wrapped(7)[1] == 7 and wrapped.last_report is None
        return
    with pytest.raises(RecoveryError, match="tried: nothing") as info:
        wrapped(7)
    report = info.value.report
    assert report.budget_bytes == decode_budget
    assert [c.strategy for c in report.plan.candidates] == ["vae_tiling"]
    assert "Stopped after 0 attempt(s)" in " ".join(report.notes)
    assert wrapped.last_report is report


def test_retry_on_failure_reraises_what_no_strategy_answers():
    @retry_on_failure(budget="1GiB")
    def broken():
        return {}["prompt"]

    with pytest.raises(KeyError, match="prompt"):
        broken()


# -- structural strategies: the run's own from_pretrained returns the assembled pipeline -------
def _folder_state(path):
    from pathlib import Path

    return sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in Path(path).rglob("*") if p.is_file())


def _loads_and_calls(path, **overrides):
    def run():
        from diffusers import DiffusionPipeline

        from wan_nb.fixtures import tiny_call_kwargs

        pipe = DiffusionPipeline.from_pretrained(str(path))
        pipe.set_progress_bar_config(disable=True)
        return pipe(**tiny_call_kwargs("wan2.1-t2v", **overrides)).frames[0]

    return run


@pytest.fixture
def no_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))


STRUCTURAL_WINNERS = ("assemble_components", "generic_pipeline")


def test_an_unknown_pipeline_class_is_recovered_by_assembling_its_components(tiny_path, tmp_path, no_hf_cache):
    from wan_nb.fixtures import copy_model, set_pipeline_class

    path = copy_model(tiny_path("wan2.1-t2v"), tmp_path / "alone" / "wan3")
    set_pipeline_class(path, "Wan3Pipeline")
    before = _folder_state(path)
    ns: dict = {}
    run = _loads_and_calls(path, num_inference_steps=1)
    with pytest.raises(Exception) as info:
        run()
    assert diagnose(info.value).category == "pipeline_unavailable"

    report = recover(run, namespace=ns)
    assert report.winner in STRUCTURAL_WINNERS, report.to_text()
    assert report.plan.candidate("assemble_components").planned
    assert report.result is not None and len(report.result) > 0  # the video's frames
    assert _folder_state(path) == before  # the folder is read, never written
    expected = {"assemble_components": "assemble_components(", "generic_pipeline": "DiffusionPipeline.from_pretrained("}
    assert expected[report.winner] in report.snippet()
    remote = report.plan.candidate("remote_code")
    assert not remote.planned
    for guidance in ("upgrade_library", "alternative_model"):
        assert "guidance only" in report.plan.candidate(guidance).skip_reason
    # The attempt went into the history (the autouse fixture points it at a temporary file).
    from wan_nb.history import load_history

    assert any(r.strategy == report.winner and r.success for r in load_history())


def test_remote_code_is_skipped_without_consent(tiny_path, tmp_path, no_hf_cache):
    from wan_nb.diagnosis import Diagnosis
    from wan_nb.fixtures import copy_model, set_pipeline_class
    from wan_nb.model.components import analyze_model_components
    from wan_nb.planning import plan
    from wan_nb.repair.assemble import CONSENT_REASON

    path = copy_model(tiny_path("wan2.1-t2v"), tmp_path / "alone" / "custom")
    set_pipeline_class(path, "MyWanPipeline")
    (path / "pipeline.py").write_text(
        "from diffusers import WanPipeline\n\n\nclass MyWanPipeline(WanPipeline):\n    pass\n")
    index = json.loads((path / "model_index.json").read_text())
    index["_class_name"] = ["pipeline", "MyWanPipeline"]
    (path / "model_index.json").write_text(json.dumps(index))
    report = analyze_model_components(path)
    diag = Diagnosis(category="pipeline_unavailable", stage="load", summary="x")
    without = plan(diag, report, None, "cpu")
    assert not without.candidate("remote_code").planned
    assert without.candidate("remote_code").skip_reason == CONSENT_REASON
    assert CONSENT_REASON == "needs your consent: runs code from the model folder"
    with_consent = plan(diag, report, None, "cpu", allow_remote_code=True)
    assert with_consent.candidate("remote_code").planned, with_consent.to_text()


def test_a_missing_vae_is_taken_from_a_donor_in_models_dir(tiny_path, tmp_path, no_hf_cache):
    from wan_nb.fixtures import copy_model, remove_component

    path = copy_model(tiny_path("wan2.1-t2v"), tmp_path / "alone" / "broken")
    remove_component(path, "vae")
    models = tmp_path / "models"
    copy_model(tiny_path("wan2.1-t2v"), models / "other-wan")
    run = _loads_and_calls(path, num_inference_steps=1)

    report = recover(run, namespace={}, models_dir=models)
    assert report.diagnosis["category"] in ("component_missing", "weights_corrupt"), report.diagnosis
    assert report.winner == "component_donor", report.to_text()
    assert report.result is not None
    assert "assemble_with_donors(" in report.snippet() and str(models) in report.snippet()
    assert not (path / "vae").exists()  # the donor is used, not copied in


def test_without_a_donor_the_plan_says_what_to_download(tiny_path, tmp_path, no_hf_cache):
    from wan_nb.fixtures import copy_model, remove_component

    path = copy_model(tiny_path("wan2.1-t2v"), tmp_path / "alone" / "broken")
    remove_component(path, "vae")
    report = recover(_loads_and_calls(path, num_inference_steps=1), namespace={})
    assert report.winner is None
    donor = report.plan.candidate("component_donor")
    assert not donor.planned and "models_dir" in donor.skip_reason
    fetch = report.plan.candidate("redownload")
    assert not fetch.planned
    assert "hf download" in fetch.skip_reason and "vae/config.json" in fetch.skip_reason, fetch.skip_reason
    assert not (path / "vae").exists()  # nothing was downloaded


def test_recovery_report_plots_estimates_and_measurements():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    attempt = Attempt(strategy="vae_tiling", status="success", estimated_peak_bytes=2 << 20,
                      measured_peak_bytes=3 << 20, by_stage={"denoise": 1 << 20, "vae_decode": 3 << 20})
    report = RecoveryReport(attempts=(attempt,), winner="vae_tiling", plan=None, device="cpu")
    fig = report.plot()
    assert isinstance(fig, Figure) and fig.axes


def test_clear_tracebacks_also_empties_the_locals_a_display_cached():
    from wan_nb.recovery.sandbox import clear_tracebacks

    def failing():
        big = bytearray(1 << 20)  # noqa: F841 - held by the frame
        raise RuntimeError("boom")

    try:
        failing()
    except RuntimeError as exc:
        error = exc
    frame = error.__traceback__.tb_next.tb_frame
    cached = frame.f_locals  # what IPython's traceback display reads (a dict before 3.13)
    assert "big" in cached
    clear_tracebacks(error)
    assert "big" not in frame.f_locals
    if isinstance(cached, dict):
        assert "big" not in cached


def test_a_fresh_load_keeps_the_users_progress_bar_config_and_a_failed_attempt_empties_the_vae_cache(
        path, monkeypatch):
    from diffusers import DiffusionPipeline

    from wan_nb.diagnosis import Diagnosis

    own = DiffusionPipeline.from_pretrained(path)
    own.set_progress_bar_config(disable=True, desc="quiet")
    seen = []

    def run():
        # The call goes to the fresh load; the callback sees that pipeline.
        def look(pipeline, step, timestep, callback_kwargs):
            seen.append(dict(pipeline._progress_bar_config))
            return callback_kwargs

        return own(**call(num_inference_steps=1, output_type="latent", callback_on_step_end=look))

    cleared = []
    real_clear = type(own.vae).clear_cache
    monkeypatch.setattr(type(own.vae), "clear_cache", lambda self: (cleared.append(self), real_clear(self)))
    report = recover(run, pipeline=own, diagnosis=Diagnosis("out_of_memory", "denoise", "x"),
                     strategies=["half_precision"], force=True)
    assert report.winner == "half_precision", report.to_text()
    assert seen and seen[0] == {"disable": True, "desc": "quiet"}
    assert not cleared  # nothing failed

    def fails():
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    recover(fails, pipeline=own, diagnosis=Diagnosis("out_of_memory", "vae_decode", "x"),
            strategies=["vae_tiling"], force=True)
    assert any(v is own.vae for v in cleared)
