"""wan_nb.plots: what each plot draws (bars, limit line, failure marks), on real Figures."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")


def _report(probe_failed: bool = False):
    from wan_nb.recovery.records import Attempt, RecoveryReport

    attempts = (
        Attempt("half_precision", "failed", estimated_peak_bytes=12 << 20, measured_peak_bytes=10 << 20,
                by_stage={"denoise": 9 << 20, "vae_decode": 10 << 20}, seconds=1.0, error="OutOfMemoryError: x"),
        Attempt("vae_tiling", "success", estimated_peak_bytes=8 << 20, measured_peak_bytes=7 << 20,
                by_stage={"denoise": 6 << 20, "vae_decode": 7 << 20}, seconds=2.0),
        Attempt("layerwise_fp8", "success", estimated_peak_bytes=None, measured_peak_bytes=6 << 20,
                by_stage={"denoise": 5 << 20, "vae_decode": 6 << 20}, seconds=2.0),
    )
    return RecoveryReport(attempts=attempts, winner="vae_tiling", plan=None, device="cpu", budget_bytes=10 << 20)


def _heights(ax):
    return [round(p.get_height(), 3) for p in ax.patches]


def test_plot_recovery_draws_grouped_bars_budget_line_and_failures():
    from wan_nb.plots import plot_recovery

    ax = plot_recovery(_report())
    # Two estimates + three measurements (one attempt has no estimate), in MiB.
    assert sorted(_heights(ax)) == [6.0, 7.0, 8.0, 10.0, 12.0]
    assert ax.get_ylabel() == "peak memory (MiB)"
    (line,) = ax.get_lines()
    assert list(line.get_ydata()) == [10.0, 10.0]  # the budget
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["budget 10.00 MiB", "estimated", "measured", "measured at failure"]
    texts = [t.get_text() for t in ax.texts]
    assert "failed" in texts  # the failed attempt is marked
    assert "no\nestimate" in texts
    assert [t.get_text() for t in ax.get_xticklabels()] == ["half_precision", "vae_tiling", "layerwise_fp8"]
    failed = [p for p in ax.patches if p.get_hatch() == "//"]
    assert len(failed) == 1 and round(failed[0].get_height(), 3) == 10.0


def test_plot_recovery_uses_available_memory_without_a_budget():
    from dataclasses import replace

    from wan_nb.plots import plot_recovery

    report = replace(_report(), budget_bytes=None, available_bytes=20 << 20)
    ax = plot_recovery(report)
    assert "available 20.00 MiB" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_stages_of_a_report_is_measured_per_attempt():
    from wan_nb.plots import plot_stages

    ax = plot_stages(_report())
    assert ax.get_title() == "Measured peak per stage"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["denoise", "vae_decode"]
    assert len(ax.patches) == 6  # 3 attempts x 2 stages
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"half_precision (failed)", "vae_tiling"}


def test_plot_stages_of_an_estimate_and_plot_estimates(synth_path):
    from wan_nb.memory import estimate_memory
    from wan_nb.model.components import analyze_model_components
    from wan_nb.plots import plot_estimates, plot_stages
    from wan_nb.settings import GenerationSettings

    report = analyze_model_components(synth_path("wan2.1-t2v-1.3b"))
    settings = GenerationSettings(height=480, width=832, num_frames=81)
    plain = estimate_memory(report, settings)
    tiled = estimate_memory(report, settings, "vae_tiling")
    ax = plot_stages(plain)
    assert ax.get_title() == "Estimated peak per stage"
    stages = [t.get_text() for t in ax.get_xticklabels()]
    assert stages[0] == "weights" and "vae_decode" in stages
    assert ax.get_ylabel() == "peak memory (GiB)"

    ax = plot_estimates({"as is": plain, "vae_tiling": tiled}, budget="12GiB")
    assert len(ax.patches) == 2
    widths = [p.get_width() for p in ax.patches]
    assert widths[1] < widths[0]  # tiling predicts less
    assert [t.get_text() for t in ax.get_yticklabels()] == ["as is", "vae_tiling"]
    assert ax.get_lines()[0].get_xdata()[0] == pytest.approx(12.0)


def test_plot_report_returns_a_figure_with_both_views(tmp_path):
    from matplotlib.figure import Figure

    from wan_nb.plots import plot_report

    figure = plot_report(_report())
    assert isinstance(figure, Figure)
    assert [ax.get_title() for ax in figure.axes] == ["Estimated vs measured peak on cpu", "Measured peak per stage"]
    figure.savefig(tmp_path / "vram.png")  # no pyplot, no backend choice needed
    assert (tmp_path / "vram.png").read_bytes()[:4] == b"\x89PNG"


def test_plots_do_not_import_pyplot_or_ipython():
    import subprocess
    import sys

    code = ("import sys; from wan_nb.plots import plot_report; from wan_nb.recovery.engine import RecoveryReport;"
            "plot_report(RecoveryReport((), None, None, 'cpu')).savefig('/dev/null', format='png');"
            "print('matplotlib.pyplot' in sys.modules, 'IPython' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
