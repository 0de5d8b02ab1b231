"""What a notebook user sees (issue 13): saved outputs, HTML, advice, plot objects.

Real failures throughout: a tiny Wan 2.2 pipeline decoding 128x128 frames runs out of a
16 MB budget at VAE decode with a genuine ``torch.OutOfMemoryError``. What only a browser
shows (layout, widgets rendering) is checked by ``tools/browser_check.py``.
"""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("IPython")

VARIANT = "wan2.2-t2v-a14b"
NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
FAILING = """\
with memory_budget("16MB"):
    video = pipe(**CALL()).frames[0]
video.shape
"""


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
""", store_history=False).raise_error()
    shell.extension_manager.load_extension("wan_nb")
    from wan_nb.notebook.magic import extension_state

    extension_state(shell).widgets = False
    yield shell
    shell.extension_manager.unload_extension("wan_nb")
    for name in ("pipe", "CALL", "video", "_wan_report", "_wan_plan"):
        shell.user_ns.pop(name, None)
    gc.collect()


@pytest.fixture(scope="module")
def failed_report(ip):
    """A real recovery: the cell failed under its own budget, then `%wan_recover --budget 16MB`."""
    ip.run_cell(FAILING)
    ip.run_cell("%wan_recover --budget 16MB --force --explore --strategies vae_slicing,vae_tiling")
    return ip.user_ns["_wan_report"]


# -- 1. Run All runs every notebook to the end --------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_notebooks_ran_to_the_end_and_tag_their_failing_cells(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] is not None for c in code), "a cell was not run"
    for cell in code:
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        if errors:
            # Jupyter's Run All stops at an error unless the cell carries this tag.
            assert "raises-exception" in cell["metadata"].get("tags", []), "".join(cell["source"])[:80]


# -- 2 and 4. A live display ends as static HTML + text; markup renders ----------------------------
def test_widget_recovery_in_a_real_kernel_saves_the_final_table(tiny_path, tmp_path, monkeypatch):
    pytest.importorskip("ipywidgets")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.delenv("WAN_NB_NO_WIDGETS", raising=False)
    monkeypatch.setenv("WAN_NB_FIXTURE_CACHE", str(tiny_path(VARIANT).parent))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in (
        "%load_ext wan_nb\nfrom diffusers import DiffusionPipeline\nfrom wan_nb.fixtures import tiny_call_kwargs\n"
        f"from wan_nb.memory import memory_budget\npipe = DiffusionPipeline.from_pretrained({str(tiny_path(VARIANT))!r})\n"
        f"pipe.set_progress_bar_config(disable=True)\nCALL = lambda: tiny_call_kwargs({VARIANT!r}, height=128, width=128)",
        FAILING,
        "%wan_recover --budget 16MB",
    )]
    nb.cells[1].metadata["tags"] = ["raises-exception"]
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[2].outputs
    bundles = [o.get("data", {}) for o in outputs if o.output_type in ("display_data", "execute_result")]
    assert not any("application/vnd.jupyter.widget-view+json" in b for b in bundles)  # no "model not found"
    final = [b for b in bundles if "text/html" in b and "wan_nb recovery" in b["text/html"]]
    assert len(final) == 1
    assert "Recovered with <code>vae_tiling</code>" in final[0]["text/html"]  # markup, not backticks
    assert "`vae_tiling`" not in final[0]["text/html"]
    assert "#2e7d32" in final[0]["text/html"]  # the green frame of a success
    assert "Recovered with `vae_tiling`" in final[0]["text/plain"]  # the outcome, not the first state
    assert "trying" not in final[0]["text/plain"]


# -- 3. The plan table ------------------------------------------------------------------------------
def test_plan_shows_planned_first_and_groups_the_skipped_collapsed():
    from wan_nb.diagnosis import Diagnosis
    from wan_nb.notebook.display import to_html
    from wan_nb.planning import plan

    the_plan = plan(Diagnosis(category="out_of_memory", stage="vae_decode", summary="ran out"), None, None, "cpu", "10MiB")
    assert the_plan.planned and the_plan.skipped
    html = to_html(the_plan)
    table, _, rest = html.partition("</table>")
    for c in the_plan.planned:
        assert f">{c.strategy}<" in table
    for c in the_plan.skipped:
        assert f">{c.strategy}<" not in table and f"<code>{c.strategy}</code>" in rest
    assert "<details>" in rest and "<details open" not in rest  # collapsed
    groups = {c.skip_reason for c in the_plan.skipped}
    assert rest.count("<li") == len(groups)  # one line per reason, not per strategy
    assert "table-layout: auto" in html  # JupyterLab's fixed layout squeezed the reason column


# -- 5. Failure reasons say what happened once ---------------------------------------------------------
def test_failed_rows_say_the_short_fact_and_the_peak_at_failure(failed_report):
    from wan_nb.notebook._html import attempts_frame

    failed = [a for a in failed_report.attempts if a.status == "failed"]
    assert failed, [(a.strategy, a.status) for a in failed_report.attempts]
    frame = attempts_frame(failed_report.attempts, failed_report)
    row = frame[frame["strategy"] == failed[0].strategy].iloc[0]
    assert row["reason"].startswith("out of memory at VAE decode")
    assert "more needed" in row["reason"] and "budget in use" in row["reason"]
    assert failed[0].error and failed[0].error.split()[0] not in row["reason"]  # not the whole message again
    assert "…" not in row["reason"]  # nothing cut mid-sentence
    # vae_slicing on one video: the plan knew it changes nothing, and the row says so.
    assert "expected:" in row["reason"] and "one video" in row["reason"]
    assert row["measured peak"].endswith(" at failure")
    assert not frame[frame["status"] == "success"]["measured peak"].str.contains("failure").any()


# -- 6. Messages speak the interface in use -----------------------------------------------------------
def test_advice_names_the_magic_flags():
    from wan_nb.notebook._wording import as_flags

    assert as_flags("rerun with allow_degraded=True to allow it") == "rerun with `--allow-degraded` to allow it"
    assert "--allow-remote-code" in as_flags("pass `allow_remote_code=True`")
    assert as_flags("pass models_dir= a folder") == "pass `--models-dir` a folder"


def test_no_plan_and_no_attempts_are_said_in_a_sentence(ip, capsys):
    ip.run_cell("undefined_name_13 + 1")
    capsys.readouterr()
    result = ip.run_cell("%wan_recover --dry-run")
    out = capsys.readouterr().out
    assert result.result is None
    assert "no plan for this failure (user_code)" in out and "own code" in out
    result = ip.run_cell("%wan_recover")
    out = capsys.readouterr().out
    assert "Nothing was tried" in out
    lines = result.error_in_exec._render_traceback_()
    assert not any("attempts[i]" in line for line in lines)  # there are no attempts to look at


# -- 7. No clutter from attempts --------------------------------------------------------------------
def test_library_progress_bars_are_off_during_attempts_and_restored(tiny_path, capfd):
    import diffusers
    import transformers

    from wan_nb.notebook._quiet import library_progress_bars_off

    diffusers.utils.logging.enable_progress_bar()
    transformers.utils.logging.disable_progress_bar()  # the user's own choice: stays off
    try:
        with library_progress_bars_off():
            assert not diffusers.utils.logging.is_progress_bar_enabled()
            diffusers.DiffusionPipeline.from_pretrained(str(tiny_path(VARIANT)))
        assert "Loading pipeline components" not in capfd.readouterr().err
        assert diffusers.utils.logging.is_progress_bar_enabled()
        assert not transformers.utils.logging.is_progress_bar_enabled()
    finally:
        diffusers.utils.logging.enable_progress_bar()
        transformers.utils.logging.enable_progress_bar()


# -- 8. A number shown stays that number ---------------------------------------------------------------
def test_live_estimate_is_the_attempts_estimate(ip):
    import wan_nb
    from wan_nb.fixtures import tiny_call_kwargs
    from wan_nb.memory import memory_budget
    from wan_nb.notebook.live import LiveTable

    pipe = ip.user_ns["pipe"]  # one pipeline in memory: a second would fill the 16 MB budget
    kwargs = tiny_call_kwargs(VARIANT, height=128, width=128)

    def run():
        with memory_budget("16MB"):
            return pipe(**kwargs).frames[0]

    with pytest.raises(Exception) as failure:
        run()
    table = LiveTable(widgets=False)
    shown: list[str] = []

    def start(candidate, index):
        table.start(candidate, index)
        shown.append(table.rows[-1].cells()[3])  # the estimate as shown while running

    report = wan_nb.recover(run, pipeline=pipe, error=failure.value, budget="16MB", on_start=start,
                            on_attempt=table.add, explore=True)
    assert report.attempts, report.to_text()
    done = [row.cells()[3] for row in table.rows]
    assert shown == done


# -- 9. Tables -----------------------------------------------------------------------------------------
def test_readable_frame_units_separators_no_nan_nothing_cut():
    import pandas as pd

    from wan_nb.notebook import readable

    long_text = "keep every model on the CPU and move each to the accelerator only while it runs"
    frame = pd.DataFrame({"strategy": ["a", "b"], "estimated_peak_bytes": [3 * 2**20, None],
                          "parameters": [421824.0, None], "what it does": [long_text, None]})
    shown = readable(frame)
    html, text = shown.to_html(), shown.to_text()
    assert "estimated peak (MiB)" in html and "3.00" in html and str(3 * 2**20) not in html
    assert "421,824" in html and "421824.0" not in html
    assert "nan" not in html.lower() and "nan" not in text.lower() and "None" not in text
    assert long_text in html and long_text in text


def test_component_counts_have_separators_and_key_values_align_left(tiny_path):
    from wan_nb import analyze_model_components
    from wan_nb.diagnosis import Diagnosis
    from wan_nb.notebook.display import to_html

    report = analyze_model_components(tiny_path(VARIANT))
    html = to_html(report)
    counts = [c.parameters for c in report.components if c.parameters]
    assert counts and all(f"{n:,}" in html for n in counts)
    assert not re.search(r">\d+\.0<", html)
    diag = Diagnosis(category="out_of_memory", stage="vae_decode", summary="ran out", evidence={"budget": 16 << 20, "in_use": 15 << 20})
    cells = re.findall(r"<td style=\"([^\"]*)\"", to_html(diag))
    assert cells and all("text-align: left" in css for css in cells)


# -- 10. Plots -------------------------------------------------------------------------------------------
def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_report_figure_one_unit_legend_clear_failures_marked(failed_report):
    figure = failed_report.plot()
    figure.draw_without_rendering()
    left, right = figure.axes
    assert left.get_ylabel() == right.get_ylabel()  # one unit for the figure
    for ax in (left, right):
        legend = ax.get_legend()
        assert legend is not None and not _overlap(legend.get_window_extent(), ax.get_window_extent())
    ticks = [t.get_text() for t in right.get_xticklabels()]
    assert "unknown" not in ticks
    marks = [t for t in right.texts if t.get_text() == "✘"]
    failed = [a for a in failed_report.attempts if a.status == "failed"]
    assert len(marks) == len(failed)
    stage = failed[0].diagnosis["stage"]
    assert ticks[round(marks[0].xy[0])] == stage  # the mark sits at the stage it failed in


def test_a_cell_level_budget_scales_the_axis_not_the_host_memory():
    from wan_nb.plots import plot_recovery
    from wan_nb.recovery import Attempt, RecoveryReport

    attempts = (Attempt("vae_tiling", "success", estimated_peak_bytes=12 << 20, measured_peak_bytes=12 << 20),)
    report = RecoveryReport(attempts=attempts, winner="vae_tiling", plan=None, device="cpu", budget_bytes=None,
                            available_bytes=20 << 30,
                            diagnosis={"category": "out_of_memory", "stage": "vae_decode",
                                       "evidence": {"budget": 16_000_000}})
    ax = plot_recovery(report)
    assert ax.get_ylabel() == "peak memory (MiB)"
    assert ax.get_ylim()[1] < 40  # 20 GiB of host memory would make every bar invisible
    (line,) = ax.get_lines()
    assert abs(line.get_ydata()[0] - 16_000_000 / 2**20) < 1e-6  # the cell's budget
    no_budget = RecoveryReport(attempts=attempts, winner="vae_tiling", plan=None, device="cpu",
                               available_bytes=20 << 30)
    ax = plot_recovery(no_budget)
    assert ax.get_ylim()[1] < 40 and not ax.get_lines() and "off the scale" in ax.get_title()
