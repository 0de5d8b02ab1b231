"""``%load_ext wan_nb``: the magics and the failed-cell hook, in a real IPython shell.

The failures are real: a tiny Wan 2.2 pipeline (two experts) decoding 128x128 frames needs
about 19 MB of CPU memory; under a 16 MB budget its VAE decode fails with a genuine
``torch.OutOfMemoryError``, and VAE tiling (about 13 MB) fixes it.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import pytest

pytest.importorskip("IPython")

VARIANT = "wan2.2-t2v-a14b"
BUDGET = "16MB"
FAILING = """\
before = "assigned before the failure"
with memory_budget(BUDGET):
    video = pipe(**CALL()).frames[0]
    print("generated", video.shape)
after = video.shape
after
"""
EXPECTED_SHAPE = (5, 128, 128, 3)


@pytest.fixture(scope="module")
def ip(tiny_path):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell(f"""
from diffusers import DiffusionPipeline
from wan_nb.fixtures import tiny_call_kwargs
from wan_nb.memory import memory_budget
pipe = DiffusionPipeline.from_pretrained({str(tiny_path(VARIANT))!r})
pipe.set_progress_bar_config(disable=True)
CALL = lambda: tiny_call_kwargs({VARIANT!r}, height=128, width=128)
BUDGET = {BUDGET!r}
""", store_history=False).raise_error()
    yield shell
    for name in ("pipe", "CALL", "video", "before", "after", "_wan_report", "_wan_plan"):
        shell.user_ns.pop(name, None)
    gc.collect()


@pytest.fixture
def wan(ip):
    """The extension, loaded fresh (no failure recorded), with the text table."""
    from wan_nb.notebook.magic import extension_state

    ip.extension_manager.load_extension("wan_nb")
    magics = extension_state(ip)
    magics.widgets = False
    for name in ("video", "before", "after", "_wan_report", "_wan_plan", "x"):
        ip.user_ns.pop(name, None)
    yield magics
    ip.extension_manager.unload_extension("wan_nb")
    pipe = ip.user_ns.get("pipe")
    if pipe is not None:
        pipe.vae.disable_tiling()


def _fail(ip, source: str = FAILING):
    import torch

    result = ip.run_cell(source)
    assert isinstance(result.error_in_exec, torch.OutOfMemoryError), result.error_in_exec
    return result


# -- the hook --------------------------------------------------------------------------------
def test_the_hook_records_source_and_diagnosis_not_the_exception(ip, wan):
    result = _fail(ip)
    error = weakref.ref(result.error_in_exec)
    failed = wan.recorder.last
    assert failed.source == FAILING
    assert failed.diagnosis.category == "out_of_memory" and failed.diagnosis.stage == "vae_decode"
    assert failed.error.startswith("OutOfMemoryError: CPU out of memory")
    assert all(isinstance(getattr(failed, f), (str, int, type(None))) for f in ("source", "error", "execution_count"))
    del result
    # IPython's own references (for %tb and %debug): the last result, sys.last_*, its traceback printer.
    ip.run_cell("1")
    sys.last_value = sys.last_traceback = sys.last_type = None
    ip.InteractiveTB.tb = None
    gc.collect()
    assert error() is None  # nothing of wan_nb's kept the exception (and its frames) alive
    assert wan.recorder.last is failed  # a successful cell does not clear the record


def test_the_hook_ignores_interrupts_and_its_own_magics(ip, wan):
    ip.run_cell("raise KeyboardInterrupt")
    assert wan.recorder.last is None
    ip.run_cell("%wan_recover --budget nonsense")  # a UsageError in a wan magic's cell
    assert wan.recorder.last is None
    ip.run_cell("1 / 0")
    assert wan.recorder.last.diagnosis.category == "user_code"


# -- %wan_recover ----------------------------------------------------------------------------
def test_recover_reruns_the_failed_cell_and_keeps_its_variables(ip, wan, capsys):
    import torch

    import wan_nb.notebook

    _fail(ip)
    assert ip.user_ns["before"] == "assigned before the failure" and "video" not in ip.user_ns
    capsys.readouterr()
    hooks = []
    ip.events.register("post_run_cell", hooks.append)
    try:
        result = ip.run_cell("%wan_recover")
    finally:
        ip.events.unregister("post_run_cell", hooks.append)
    assert result.error_in_exec is None
    assert result.result == EXPECTED_SHAPE  # the magic's value is the cell's value
    assert ip.user_ns["video"].shape == EXPECTED_SHAPE and ip.user_ns["after"] == EXPECTED_SHAPE
    assert len(hooks) == 1  # the rerun did not fire post_run_cell: only the magic's own cell did
    report = ip.user_ns["_wan_report"]
    assert report is wan.last_report and report.winner == "vae_tiling"
    assert report.attempts[-1].measured_peak_bytes < 16 * 10**6
    assert wan.recorder.last.recovered_by == "vae_tiling"
    assert wan_nb.notebook.last_report(ip) is report
    assert ip.user_ns["pipe"].vae.use_tiling is False  # put back: no --apply
    out = capsys.readouterr().out
    assert "generated (5, 128, 128, 3)" in out  # the successful rerun's output is shown
    assert "✔ Recovered with `vae_tiling`" in out
    assert not isinstance(report.result, torch.Tensor)


def test_recover_after_a_failed_decode_replays_it_and_then_holds_nothing(ip, wan, capsys):
    _fail(ip)
    kept = wan.recorder.last.kept
    assert kept is not None and kept.stage == "vae_decode" and kept.latents.device.type == "cpu"
    assert kept.seconds > 0  # the failed cell's time up to the failure, from the pre_run_cell hook
    gone = weakref.ref(kept.latents)
    del kept
    ip.run_cell("%wan_recover").raise_error()
    attempt = wan.last_report.winning_attempt
    assert attempt.replayed == ("text_encode", "denoise") and attempt.saved_seconds > 0
    assert ip.user_ns["video"].shape == EXPECTED_SHAPE and ip.user_ns["after"] == EXPECTED_SHAPE
    assert "replayed: skipped text_encode + denoise" in capsys.readouterr().out
    gc.collect()
    assert wan.recorder.last.kept is None and gone() is None  # dropped once recovered

    _fail(ip)
    ip.run_cell("%wan_recover --no-replay").raise_error()
    assert wan.last_report.winning_attempt.replayed == ()


def test_a_second_recover_after_a_success_runs_it_again(ip, wan, capsys):
    _fail(ip)
    ip.run_cell("%wan_recover").raise_error()
    first = ip.user_ns["_wan_report"]
    capsys.readouterr()
    result = ip.run_cell("%wan_recover")
    result.raise_error()
    assert "was already recovered with `vae_tiling`; running it again" in capsys.readouterr().out
    assert ip.user_ns["_wan_report"] is not first and ip.user_ns["_wan_report"].winner == "vae_tiling"
    assert result.result == EXPECTED_SHAPE


def test_recover_without_a_recorded_failure_says_so(ip, wan, capsys):
    result = ip.run_cell("%wan_recover")
    assert result.error_in_exec is None and result.result is None
    assert "no failed cell to recover" in capsys.readouterr().err
    assert "_wan_report" not in ip.user_ns and wan.last_report is None


def test_budget_accepts_a_share_of_the_device(ip, wan):
    ip.run_cell("%%wan_recover --budget 0.9\nx = 41\nx + 1").raise_error()
    assert ip.user_ns["_wan_report"].probe.succeeded


def test_explore_compares_strategies_and_keeps_the_winners_values(ip, wan):
    _fail(ip, FAILING + "tiled = pipe.vae.use_tiling\n")
    # --force: the 16-bit fresh load beside the pipeline is predicted not to fit the 16 MB budget
    # since tiles are sized by prediction; exploring both is what this test is about.
    ip.run_cell("%wan_recover --explore --force --strategies vae_tiling,half_precision+vae_tiling").raise_error()
    report = ip.user_ns["_wan_report"]
    assert [c.strategy for c in report.plan.candidates] == ["vae_tiling", "half_precision+vae_tiling"]
    assert [a.strategy for a in report.attempts] == ["vae_tiling", "half_precision+vae_tiling"], report.plan.to_text()
    assert all(a.measured_peak_bytes for a in report.attempts)
    assert report.winner == "vae_tiling"
    # The last attempt ran on a fresh 16-bit copy (the notebook's `pipe` untiled); the winner
    # ran on `pipe` itself with tiling on: its values are the ones left in the notebook.
    assert ip.user_ns["tiled"] is True


def test_dry_run_shows_the_plan_and_runs_nothing(ip, wan):
    from wan_nb.planning import Plan

    _fail(ip)
    result = ip.run_cell(f"%wan_recover --dry-run --budget {BUDGET}")
    plan = result.result
    assert isinstance(plan, Plan) and ip.user_ns["_wan_plan"] is plan
    assert plan.planned[0].strategy == "vae_tiling" and plan.planned[0].estimated_peak_bytes
    assert plan.settings.height == 128  # read from the cell's call, which was not run
    assert "video" not in ip.user_ns and wan.last_report is None
    assert wan.recorder.last.recovered_by is None


def test_dry_run_of_a_cell_plans_without_running_it(ip, wan):
    from wan_nb.planning import Plan

    result = ip.run_cell("%%wan_recover --dry-run\nvideo = pipe(**CALL()).frames[0]")
    assert isinstance(result.result, Plan) and result.result.category == "out_of_memory"
    assert "video" not in ip.user_ns


def test_force_tries_the_strategies_in_order_and_one_line_per_failure(ip, wan, capsys):
    _fail(ip)
    capsys.readouterr()
    # vae_slicing is left out by the plan (one video: it changes nothing); --force tries it.
    ip.run_cell("%wan_recover --force --strategies vae_slicing,vae_tiling").raise_error()
    report = ip.user_ns["_wan_report"]
    assert [(a.strategy, a.status) for a in report.attempts] == [("vae_slicing", "failed"), ("vae_tiling", "success")]
    out = capsys.readouterr().out
    failed_lines = [line for line in out.splitlines() if "vae_slicing" in line]
    assert len(failed_lines) == 1 and "out of memory at VAE decode" in failed_lines[0]
    assert "Traceback" not in out
    assert "OutOfMemoryError" in report.attempts[0].error_text and "Traceback" in report.attempts[0].error_text


def test_allow_degraded_lets_output_changing_strategies_run(ip, wan):
    from wan_nb.recovery.records import RecoveryError

    _fail(ip)
    result = ip.run_cell("%wan_recover --strategies lower_resolution")
    assert isinstance(result.error_in_exec, RecoveryError)  # refused: it changes the video
    assert "allow_degraded" in result.error_in_exec.report.plan.candidate("lower_resolution").skip_reason
    assert "video" not in ip.user_ns
    ip.run_cell("%wan_recover --strategies lower_resolution --allow-degraded").raise_error()
    report = ip.user_ns["_wan_report"]
    assert report.winner == "lower_resolution"
    height, width = report.attempts[-1].changes["height"], report.attempts[-1].changes["width"]
    assert ip.user_ns["video"].shape == (5, height, width, 3) and height < 128


def test_apply_keeps_the_winner_and_insert_adds_its_code(ip, wan, capsys):
    _fail(ip)
    ip.run_cell("%wan_recover --apply --insert").raise_error()
    report = ip.user_ns["_wan_report"]
    assert report.applied and ip.user_ns["pipe"].vae.use_tiling is True
    assert "pipe.vae.enable_tiling(" in ip.rl_next_input  # the next cell's text
    assert "in a new cell below" in capsys.readouterr().out
    ip.run_cell("video = pipe(**CALL()).frames[0]").raise_error()  # the cells that follow fit as they are


def test_remote_code_and_models_dir_reach_recover(ip, wan, monkeypatch, tmp_path):
    import wan_nb.recovery.engine

    seen = {}
    real = wan_nb.recovery.engine.recover

    def spy(run, **kwargs):
        seen.update(kwargs)
        return real(run, **kwargs)  # the real engine accepts both

    monkeypatch.setattr(wan_nb.recovery.engine, "recover", spy)
    ip.run_cell(f"%%wan_recover --allow-remote-code --models-dir {tmp_path}\nx = 1").raise_error()
    assert seen["allow_remote_code"] is True and seen["models_dir"] == str(tmp_path)
    seen.clear()
    ip.run_cell("%%wan_recover\nx = 1").raise_error()
    assert "allow_remote_code" not in seen and "models_dir" not in seen
    # The line magic, on a recorded failure, passes them on too and the engine runs with them.
    seen.clear()
    _fail(ip)
    ip.run_cell(f"%wan_recover --models-dir {tmp_path} --allow-remote-code").raise_error()
    assert seen["allow_remote_code"] is True and seen["models_dir"] == str(tmp_path)
    report = ip.user_ns["_wan_report"]
    assert report.winner == "vae_tiling" and report.models_dir == str(tmp_path)


@pytest.mark.parametrize(("line", "message"), [
    ("--budget 12XB", "is not a size"),
    ("--budget 0B", "more than 0 bytes"),
    ("--strategies nope", "Unknown strategy `nope`"),
    ("--strategies model_cpu_offload+sequential_cpu_offload", "cannot be used"),
    ("--force", "`--force` tries the `--strategies`"),
    ("--dry-run --apply", "runs nothing"),
    ("--models-dir /no/such/folder", "no such folder"),
    ("--bogus", "unrecognized arguments"),
])
def test_bad_options_are_usage_errors(ip, wan, line, message):
    from IPython.core.error import UsageError

    result = ip.run_cell(f"%wan_recover {line}")
    assert isinstance(result.error_in_exec, UsageError) and message in str(result.error_in_exec)
    assert wan.recorder.last is None


def test_help_lists_every_option(ip, wan):
    doc = ip.find_line_magic("wan_recover").__doc__
    for option in ("--budget", "--explore", "--dry-run", "--strategies", "--allow-degraded", "--allow-remote-code",
                   "--apply", "--insert", "--models-dir", "--force"):
        assert option in doc


# -- %%wan_recover -----------------------------------------------------------------------------
def test_cell_magic_that_succeeds_first_time(ip, wan):
    result = ip.run_cell("%%wan_recover\nx = 41\nx + 1")
    assert result.error_in_exec is None and result.result == 42 and ip.user_ns["x"] == 41
    report = ip.user_ns["_wan_report"]
    assert report.probe.succeeded and report.attempts == () and report.winner is None
    assert wan.recorder.last is None


def test_cell_magic_recovers_its_own_cell_under_a_budget(ip, wan):
    from wan_nb.units import parse_bytes

    result = ip.run_cell(f"%%wan_recover --budget {BUDGET}\nvideo = pipe(**CALL()).frames[0]\nvideo.shape")
    result.raise_error()
    report = ip.user_ns["_wan_report"]
    # The budget rehearses the smaller device for the first run too, and the plan is judged against it.
    assert report.budget_bytes == parse_bytes(BUDGET) and report.plan.budget_bytes == parse_bytes(BUDGET)
    assert report.probe.status == "failed" and report.probe.diagnosis["stage"] == "vae_decode"
    assert report.plan.candidate("vae_tiling").fit in ("fits", "tight")
    assert report.winner == "vae_tiling" and report.attempts[-1].measured_peak_bytes <= parse_bytes(BUDGET)
    assert result.result == EXPECTED_SHAPE and ip.user_ns["video"].shape == EXPECTED_SHAPE


def test_an_interrupted_recovery_ends_the_cell_as_interrupted(ip, wan, capsys):
    result = ip.run_cell("%%wan_recover\nraise KeyboardInterrupt")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert ip.user_ns["_wan_report"].interrupted
    assert "Interrupted" in capsys.readouterr().out
    assert wan.recorder.last is None  # an interrupt is not a failure to recover


def test_cell_magic_with_a_syntax_error_is_a_usage_error(ip, wan):
    from IPython.core.error import UsageError

    result = ip.run_cell("%%wan_recover\nx = (")
    assert isinstance(result.error_in_exec, UsageError) and "cannot be rerun" in str(result.error_in_exec)


def test_cell_magic_that_stays_failed_is_remembered_for_wan_recover(ip, wan):
    from wan_nb.notebook._errors import CellNotRecovered

    result = ip.run_cell("%%wan_recover\nx = 1\nundefined_name")
    assert isinstance(result.error_in_exec, CellNotRecovered)
    assert result.error_in_exec._render_traceback_()[0].startswith("CellNotRecovered: wan_nb could not recover")
    assert wan.recorder.last.source.strip() == "x = 1\nundefined_name"  # the body, not the magic
    assert wan.recorder.last.diagnosis.category == "user_code"


# -- the other magics --------------------------------------------------------------------------
def test_wan_analyze(ip, wan, tiny_path):
    from IPython.core.error import UsageError

    from wan_nb.model.report import ComponentReport

    report = ip.run_line_magic("wan_analyze", str(tiny_path(VARIANT)))
    assert isinstance(report, ComponentReport) and "transformer_2" in report.names and report.ok
    data, _ = ip.display_formatter.format(report)
    assert "text/html" in data and data["text/plain"] == report.to_text()
    with pytest.raises(UsageError):
        ip.run_line_magic("wan_analyze", "/no/such/model")


def test_wan_estimate_shows_a_table_and_returns_a_plot(ip, wan, tiny_path):
    from IPython.core.error import UsageError
    from matplotlib.figure import Figure

    path = tiny_path(VARIANT)
    table = ip.run_line_magic("wan_estimate", f"{path} --height 128 --width 128 --frames 5 --steps 2 --device cpu "
                                              "--dtype float32 --strategies vae_tiling --budget 16MB --no-plot")
    assert list(table.estimates) == ["vae_tiling"] and table.budget_bytes == 16 * 10**6
    assert table.estimates["vae_tiling"].settings.height == 128
    assert "text/html" in table._repr_mimebundle_()
    figure = ip.run_line_magic("wan_estimate", f"{path} --height 128 --width 128 --frames 5 --device cpu")
    assert isinstance(figure, Figure)
    with pytest.raises(UsageError):
        ip.run_line_magic("wan_estimate", f"{path} --height 128")


def test_wan_diagnose(ip, wan, capsys):
    assert ip.run_line_magic("wan_diagnose", "") is None
    assert "no failed cell recorded" in capsys.readouterr().err
    _fail(ip)
    assert ip.run_line_magic("wan_diagnose", "") is wan.recorder.last.diagnosis
    pasted = ip.run_cell_magic("wan_diagnose", "", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB")
    assert pasted.category == "out_of_memory"


# -- loading and unloading ---------------------------------------------------------------------
def test_loading_is_light():
    code = ("import sys; from IPython.core.interactiveshell import InteractiveShell;"
            "ip = InteractiveShell.instance(); ip.run_line_magic('load_ext', 'wan_nb');"
            "assert 'wan_recover' in ip.magics_manager.magics['line'];"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'ipywidgets', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unload_removes_everything_it_added(ip):
    from wan_nb.notebook.magic import extension_state

    bundle = ip.display_formatter.mimebundle_formatter
    before_printers = dict(bundle.deferred_printers), dict(bundle.type_printers)
    before_hooks = list(ip.events.callbacks["post_run_cell"])
    ip.extension_manager.load_extension("wan_nb")
    assert "wan_recover" in ip.magics_manager.magics["cell"] and len(ip.events.callbacks["post_run_cell"]) == len(before_hooks) + 1
    ip.run_cell("%%wan_recover\nx = 1")
    assert "_wan_report" in ip.user_ns
    ip.extension_manager.unload_extension("wan_nb")
    for kind in ("line", "cell"):
        assert not [name for name in ip.magics_manager.magics[kind] if name.startswith("wan_")]
    assert "WanMagics" not in ip.magics_manager.registry
    assert ip.events.callbacks["post_run_cell"] == before_hooks
    assert (dict(bundle.deferred_printers), dict(bundle.type_printers)) == before_printers
    assert "_wan_report" not in ip.user_ns and extension_state(ip) is None


def test_dry_run_without_budget_uses_the_failures_own_budget(ip, wan):
    """The cell failed under its own memory_budget: the plan is judged against that, not host RAM."""
    from wan_nb.units import parse_bytes

    _fail(ip)
    plan = ip.run_cell("%wan_recover --dry-run").result
    assert plan.budget_bytes == parse_bytes(BUDGET)
    assert plan.available_bytes is not None and plan.available_bytes <= parse_bytes(BUDGET)
