"""``report.snippet()`` is the user's own call with the strategy's lines, and it runs as pasted.

Each scenario is what a notebook user does in a real IPython shell: load a tiny pipeline,
name their prompt, negative prompt, generator (and image) as they like, call the pipeline
under a ``memory_budget`` that makes its VAE decode fail, run ``%wan_recover``, and paste
``_wan_report.snippet()`` into a new cell of the same kernel. The pasted cell must run (under
the same budget) and make the same frames the recovery made; the snippet must name every
argument of the failed call by the cell's own source, and the folder by the variable the
cell loaded it from.
"""

from __future__ import annotations

import gc
import textwrap

import pytest

pytest.importorskip("IPython")
torch = pytest.importorskip("torch")

import wan_nb  # noqa: E402
from wan_nb.strategies.usercall import UserCall, source_of  # noqa: E402

SIZES = "height=128, width=128, num_frames=5, num_inference_steps=2"


@pytest.fixture
def ip(tiny_path):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    before = set(shell.user_ns)
    shell.extension_manager.load_extension("wan_nb")
    from wan_nb.notebook.magic import extension_state

    extension_state(shell).widgets = False
    shell.run_cell("import torch\nfrom diffusers import DiffusionPipeline, WanPipeline, WanImageToVideoPipeline\n"
                   "from wan_nb.memory import memory_budget\nfrom wan_nb.fixtures import make_test_image",
                   store_history=False).raise_error()
    yield shell
    shell.extension_manager.unload_extension("wan_nb")
    for name in set(shell.user_ns) - before:
        shell.user_ns.pop(name, None)
    gc.collect()


def _run(ip, source: str):
    result = ip.run_cell(source, store_history=True)
    return result


def _budget_for(ip, call: str) -> int:
    """85 % of the call's own peak above what is resident: its VAE decode fails, tiling fits."""
    ip.user_ns["_measure"] = wan_nb.measure
    ip.run_cell(f"with _measure(pipeline=pipe) as _m:\n    {call}", store_history=False).raise_error()
    m = ip.user_ns.pop("_m").result
    assert max(m.by_stage, key=m.by_stage.get) == "vae_decode", m.by_stage
    return int(m.baseline_bytes + (m.peak_bytes - m.baseline_bytes) * 0.85)


def _fail_recover_paste(ip, failing: str, name: str) -> tuple[str, object]:
    """Run ``failing`` (it must OOM), ``%wan_recover``, paste the snippet under the same budget.

    Returns the snippet and what the recovered cell bound to ``name``.
    """
    failed = _run(ip, failing)
    assert isinstance(failed.error_in_exec, torch.OutOfMemoryError), failed.error_in_exec
    del failed
    recovered = _run(ip, "%wan_recover")
    assert recovered.error_in_exec is None, recovered.error_in_exec
    report = ip.user_ns["_wan_report"]
    assert report.winner, report.to_text()
    made = ip.user_ns[name]
    snippet = report.snippet()
    # The pasted cell: under the cell's own budget (the device it failed on), in the same kernel.
    pasted = _run(ip, "with memory_budget(BUDGET):\n" + textwrap.indent(snippet, "    "))
    assert pasted.error_in_exec is None, f"{pasted.error_in_exec!r}\n{snippet}"
    return snippet, made


def test_t2v_snippet_names_every_argument_and_runs_as_pasted(ip, tiny_path):
    ip.user_ns["model_dir"] = str(tiny_path("wan2.1-t2v"))
    _run(ip, "pipe = WanPipeline.from_pretrained(model_dir)\npipe.set_progress_bar_config(disable=True)\n"
             'my_prompt = "a cat walking on the beach at sunset"\nnegative = "low quality, blurry"\n'
             "seed = torch.Generator().manual_seed(0)").raise_error()
    call = (f"pipe(prompt=my_prompt, negative_prompt=negative, generator=seed, {SIZES}, "
            'output_type="np", max_sequence_length=16)')
    ip.user_ns["BUDGET"] = _budget_for(ip, call)
    ip.run_cell("seed = torch.Generator().manual_seed(0)", store_history=False).raise_error()
    snippet, made = _fail_recover_paste(ip, f"with memory_budget(BUDGET):\n    frames = {call}.frames[0]\n", "frames")
    for argument in ("prompt=my_prompt", "negative_prompt=negative", "generator=seed", 'output_type="np"',
                     "max_sequence_length=16", "height=128", "num_frames=5"):
        assert argument in snippet, snippet
    assert "frames = pipe(" in snippet and ".frames[0]" in snippet
    assert "from_pretrained" not in snippet  # the pipeline is in the kernel: nothing to load again
    assert "vae.enable_tiling(" in snippet
    # The pasted cell bound `frames`, as the user's cell would have. Its generator had moved on
    # (as rerunning their own cell would find it); reseeded, it gives the recovery's frames.
    assert ip.user_ns["frames"].shape == made.shape
    ip.run_cell("seed = torch.Generator().manual_seed(0)", store_history=False).raise_error()
    again = _run(ip, "with memory_budget(BUDGET):\n" + textwrap.indent(snippet, "    "))
    assert again.error_in_exec is None
    assert abs(ip.user_ns["frames"] - made).max() < 1e-5


def test_a_strategy_that_changes_the_load_loads_from_the_users_folder_variable(ip, tiny_path):
    ip.user_ns["model_dir"] = str(tiny_path("wan2.1-t2v"))
    _run(ip, "pipe = WanPipeline.from_pretrained(model_dir)\npipe.set_progress_bar_config(disable=True)\n"
             'p = "a cat"').raise_error()
    call = f'pipe(prompt=p, {SIZES}, output_type="np", max_sequence_length=16)'
    ip.user_ns["BUDGET"] = _budget_for(ip, call)
    failed = _run(ip, f"with memory_budget(BUDGET):\n    frames = {call}.frames[0]\n")
    assert isinstance(failed.error_in_exec, torch.OutOfMemoryError)
    del failed
    # The user asks for a precision change: a fresh load of the folder, for the same call.
    recovered = _run(ip, "%wan_recover --strategies half_precision --force")
    assert recovered.error_in_exec is None, recovered.error_in_exec
    report = ip.user_ns["_wan_report"]
    assert report.winner == "half_precision", report.to_text()
    snippet = report.snippet()
    load = next(line for line in snippet.splitlines() if "from_pretrained" in line)
    assert load in ("pipe = WanPipeline.from_pretrained(model_dir, torch_dtype=torch.bfloat16)",
                    "pipe = WanPipeline.from_pretrained(model_dir, dtype=torch.bfloat16)"), snippet
    assert ip.user_ns["model_dir"] not in snippet  # the variable, not the temporary folder's path
    assert "pipe = None" in snippet.split("from_pretrained")[0]  # the old pipeline goes first
    pasted = _run(ip, "with memory_budget(BUDGET):\n" + textwrap.indent(snippet, "    "))
    assert pasted.error_in_exec is None, f"{pasted.error_in_exec!r}\n{snippet}"
    assert ip.user_ns["pipe"].transformer.dtype == torch.bfloat16
    assert ip.user_ns["frames"].shape == (5, 128, 128, 3)


def test_i2v_snippet_passes_the_image(ip, tiny_path):
    ip.user_ns["model_dir"] = str(tiny_path("wan2.1-i2v"))
    _run(ip, "pipe = WanImageToVideoPipeline.from_pretrained(model_dir)\npipe.set_progress_bar_config(disable=True)\n"
             "start_frame = make_test_image(128, 128)\nprompt = 'a cat'").raise_error()
    call = f'pipe(image=start_frame, prompt=prompt, {SIZES}, output_type="np", max_sequence_length=16, ' \
           "generator=torch.Generator().manual_seed(3))"
    ip.user_ns["BUDGET"] = _budget_for(ip, call)
    snippet, made = _fail_recover_paste(ip, f"with memory_budget(BUDGET):\n    video = {call}.frames[0]\n", "video")
    assert "image=start_frame" in snippet and "prompt=prompt" in snippet, snippet
    # An inline generator is repeated as written: the pasted cell starts the same noise.
    assert "generator=torch.Generator().manual_seed(3)" in snippet
    # The recovery decoded the failed run's latents, whose image was encoded whole; the pasted
    # cell runs in full, so tiling also tiles that encode: close, not identical (issue 12).
    assert ip.user_ns["video"].shape == made.shape
    assert abs(ip.user_ns["video"] - made).max() < 0.1


def test_a14b_cell_that_loads_its_own_pipeline(ip, tiny_path):
    ip.user_ns["folder"] = str(tiny_path("wan2.2-t2v-a14b"))
    _run(ip, "pipe = DiffusionPipeline.from_pretrained(folder)\npipe.set_progress_bar_config(disable=True)").raise_error()
    call = f'pipe(prompt="a fox", negative_prompt="blurry", {SIZES}, output_type="np", ' \
           "generator=torch.Generator().manual_seed(1), max_sequence_length=16)"
    ip.user_ns["BUDGET"] = _budget_for(ip, call)
    _run(ip, "del pipe; import gc; gc.collect()").raise_error()
    failing = ("pipe = DiffusionPipeline.from_pretrained(folder)\npipe.set_progress_bar_config(disable=True)\n"
               f"with memory_budget(BUDGET):\n    out = {call}\nvideo = out.frames[0]\n")
    snippet, made = _fail_recover_paste(ip, failing, "video")
    # The cell loaded the pipeline: the snippet loads it the same way, from the same variable.
    assert "pipe = DiffusionPipeline.from_pretrained(folder)" in snippet, snippet
    assert "out = pipe(" in snippet and 'prompt="a fox"' in snippet and 'negative_prompt="blurry"' in snippet
    assert "transformer_2" not in snippet or "enable_tiling" in snippet
    assert abs(ip.user_ns["out"].frames[0] - made).max() < 1e-5


# -- outside a notebook: the values the call received --------------------------------------
def test_recover_outside_a_notebook_names_values_by_the_callers_names(tiny_path):
    from wan_nb.fixtures import load_tiny_pipeline

    pipe = load_tiny_pipeline("wan2.1-t2v")
    pipe.set_progress_bar_config(disable=True)
    ns = {"pipe": pipe, "title": "a cat walking", "gen": torch.Generator().manual_seed(0)}
    run = eval(f"lambda: pipe(prompt=title, generator=gen, {SIZES}, output_type='np', max_sequence_length=16, "
               "negative_prompt='low quality')", ns)
    with wan_nb.measure(pipeline=pipe) as m:
        run()
    budget = int(m.result.baseline_bytes + (m.result.peak_bytes - m.result.baseline_bytes) * 0.85)
    ns["gen"] = torch.Generator().manual_seed(0)
    report = wan_nb.recover(run, pipeline=pipe, budget=budget, namespace=ns)
    assert report.winner, report.to_text()
    snippet = report.snippet()
    assert "prompt=title" in snippet and "generator=gen" in snippet and "negative_prompt='low quality'" in snippet
    again = wan_nb.RecoveryReport.from_json(report.to_json())
    assert again.snippet() == snippet  # the call travels with the report
    ns["gen"] = torch.Generator().manual_seed(0)
    with wan_nb.memory_budget(budget):
        exec(snippet, ns)
    assert abs(ns["video"] - report.result.frames[0]).max() < 1e-5


def test_a_value_without_a_name_is_said_not_guessed():
    class Unnamed:
        pass

    call = UserCall.from_values("pipe", {"prompt": "x", "callback_on_step_end": Unnamed()})
    assert call.unresolved == ("callback_on_step_end",)
    snippet = wan_nb.get_strategy("vae_tiling").snippet(call=call)
    assert "callback_on_step_end: no name in the notebook holds the value passed" in snippet
    compile(snippet, "<snippet>", "exec")  # still Python


def test_sources_of_values():
    gen = torch.Generator().manual_seed(7)
    assert source_of(torch.bfloat16) == "torch.bfloat16"
    assert source_of(gen) == 'torch.Generator(device="cpu").manual_seed(7)'
    assert source_of(gen, [{"g": gen}]) == "g"
    assert source_of([1, 2.5, "a"]) == "[1, 2.5, 'a']"
    assert source_of(float("nan")) is None
    assert source_of(5, [{"five": 5}]) == "5"  # numbers stay literals


def test_with_source_keeps_the_statement_and_the_cells_own_text():
    seen = UserCall.from_values("pipe", {"prompt": "é", "height": 64, "image": object()})
    cell = ('from diffusers.utils import export_to_video\n'
            'with memory_budget(B):\n'
            '    export_to_video(pipe("é",\n'
            '                         height=64, image=load_image(url)).frames[0], "out.mp4")\n')
    call = seen.with_source(cell)
    assert call.from_cell
    assert call.arguments == {"prompt": '"é"', "height": "64", "image": "load_image(url)"}
    assert call.before == "export_to_video(" and call.after == '.frames[0], "out.mp4")'
    assert call.unresolved == ()
    # A cell whose call does not match what the engine saw is not used.
    assert UserCall.from_values("pipe", {"prompt": "x"}).with_source("pipe(prompt='x', height=1)").from_cell is False
    assert UserCall.from_values("pipe", {"prompt": "x"}).with_source("pipe(**kw)").from_cell is False
