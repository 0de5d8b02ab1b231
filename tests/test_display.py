"""wan_nb.notebook.display and .live: HTML beside text for every report, the live table both ways."""

from __future__ import annotations

import io

import pytest

pytest.importorskip("IPython")


def _report(winner: str | None = "vae_tiling"):
    from wan_nb.diagnosis import Diagnosis
    from wan_nb.planning import plan
    from wan_nb.recovery.records import Attempt, RecoveryReport

    diagnosis = Diagnosis(category="out_of_memory", stage="vae_decode", summary="ran out in <vae_decode>")
    the_plan = plan(diagnosis, None, None, "cpu", "10MiB")
    attempts = (
        Attempt("half_precision", "failed", reason="16-bit weights; no estimate", estimated_peak_bytes=12 << 20,
                measured_peak_bytes=10 << 20, by_stage={"denoise": 9 << 20, "vae_decode": 10 << 20}, seconds=1.25,
                error="OutOfMemoryError: CPU out of memory", error_text="Traceback ...\nOutOfMemoryError: ..."),
        Attempt("vae_tiling", "success" if winner else "failed", reason="decode in tiles; aimed at vae_decode",
                estimated_peak_bytes=8 << 20, measured_peak_bytes=7 << 20,
                by_stage={"denoise": 6 << 20, "vae_decode": 7 << 20}, seconds=2.5),
    )
    return RecoveryReport(attempts=attempts, winner=winner, plan=the_plan, device="cpu", budget_bytes=10 << 20,
                          diagnosis=diagnosis.to_dict(), path="/models/tiny", pipeline_class="WanPipeline",
                          dtype="float32")


# -- text and HTML for each report type ------------------------------------------------------
def test_recovery_report_bundle_has_text_and_styled_html():
    from wan_nb.notebook.display import mimebundle

    report = _report()
    bundle = mimebundle(report)
    assert bundle["text/plain"] == report.to_text()
    html = bundle["text/html"]
    assert "Recovered with <code>vae_tiling</code>" in html
    assert "10.00 MiB" in html and "7.00 MiB" in html  # sizes readable, not raw byte counts
    assert "#2e7d32" in html and "#c62828" in html  # success green, failure red
    assert "enable_tiling" in html  # the snippet
    assert "&lt;vae_decode&gt;" in html  # escaped


def test_html_is_deterministic_for_nbval():
    from wan_nb.notebook.display import to_html

    assert to_html(_report()) == to_html(_report())


def test_failed_report_lists_what_was_not_tried():
    from wan_nb.notebook.display import to_html

    html = to_html(_report(winner=None))
    assert "No strategy recovered the run" in html
    assert "not tried, by reason" in html and "<code>model_cpu_offload</code>" in html  # grouped, collapsed


def test_component_report_and_plan_and_diagnosis_render(tiny_path):
    from wan_nb.diagnosis import diagnose
    from wan_nb.model.components import analyze_model_components
    from wan_nb.notebook.display import mimebundle

    report = analyze_model_components(tiny_path("wan2.1-t2v"))
    html = mimebundle(report)["text/html"]
    assert "transformer" in html and "WanTransformer3DModel" in html and "ok" in html
    assert mimebundle(report)["text/plain"] == report.to_text()

    plan = _report().plan
    assert "vae_tiling" in mimebundle(plan)["text/html"]
    assert mimebundle(plan)["text/plain"] == plan.to_text()

    diagnosis = diagnose("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.")
    bundle = mimebundle(diagnosis)
    assert "out_of_memory" in bundle["text/html"] and bundle["text/plain"] == diagnosis.to_text()


def test_memory_estimate_renders(synth_path):
    from wan_nb.memory import estimate_memory
    from wan_nb.model.components import analyze_model_components
    from wan_nb.notebook.display import mimebundle
    from wan_nb.settings import GenerationSettings

    estimate = estimate_memory(analyze_model_components(synth_path("wan2.1-t2v-1.3b")),
                               GenerationSettings(height=480, width=832, num_frames=81), "vae_tiling")
    bundle = mimebundle(estimate)
    assert "vae_tiling" in bundle["text/html"] and "GiB" in bundle["text/html"]
    assert bundle["text/plain"] == estimate.to_text()


def test_show_prints_text_outside_a_notebook():
    from wan_nb.notebook.display import show

    out = io.StringIO()
    show(_report(), file=out)
    assert out.getvalue().strip() == _report().to_text().strip()


def test_show_displays_the_bundle_in_a_notebook(monkeypatch):
    import IPython.display

    from wan_nb.notebook.display import show

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    show(_report(), notebook=True)
    (bundle, raw), = shown
    assert raw and set(bundle) == {"text/plain", "text/html"}


def test_to_html_refuses_other_objects():
    from wan_nb.notebook.display import to_html

    with pytest.raises(ValueError, match="no HTML form for int"):
        to_html(3)


def test_register_uses_the_shell_formatters_and_unregister_restores(ip):
    from wan_nb.notebook import display

    bundle = ip.display_formatter.mimebundle_formatter
    sentinel = lambda obj: {"text/plain": "user's own"}  # noqa: E731
    bundle.for_type_by_name("wan_nb.planning.records", "Plan", sentinel)
    done = display.register(ip)
    try:
        data, _ = ip.display_formatter.format(_report())
        assert data["text/plain"] == _report().to_text() and "text/html" in data
    finally:
        display.unregister(ip, done)
    assert bundle.deferred_printers.get(("wan_nb.planning.records", "Plan")) is sentinel  # the user's printer is back
    assert ("wan_nb.recovery.engine", "RecoveryReport") not in bundle.deferred_printers
    data, _ = ip.display_formatter.format(_report())
    assert "text/html" not in data
    bundle.pop("wan_nb.planning.records.Plan")


def test_wan_nb_figures_and_axes_show_as_png_once(ip):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wan_nb.notebook import display
    from wan_nb.plots import plot_recovery, plot_report

    done = display.register(ip)
    try:
        assert "image/png" in ip.display_formatter.format(plot_report(_report()))[0]
        assert "image/png" in ip.display_formatter.format(plot_recovery(_report()))[0]
        # An Axes of a pyplot figure is the inline backend's to show: not a second time here.
        figure, ax = plt.subplots()
        assert display.axes_png(plot_recovery(_report(), ax)) is None
        plt.close(figure)
    finally:
        display.unregister(ip, done)


def test_notebook_package_exports_resolve():
    import wan_nb.notebook

    for name in wan_nb.notebook.__all__:
        assert callable(getattr(wan_nb.notebook, name)), name
    with pytest.raises(AttributeError):
        wan_nb.notebook.nothing_here  # noqa: B018


# -- the live table --------------------------------------------------------------------------
class _Candidate:
    def __init__(self, strategy: str, estimate: int | None = None) -> None:
        self.strategy = strategy
        self.estimated_peak_bytes = estimate


def test_live_table_text_prints_one_line_per_attempt():
    from wan_nb.notebook.live import LiveTable

    out = io.StringIO()
    report = _report()
    table = LiveTable(widgets=False, file=out)
    for i, attempt in enumerate(report.attempts):
        table.start(_Candidate(attempt.strategy, attempt.estimated_peak_bytes), i)
        table.add(attempt)
    table.finish(report)
    lines = out.getvalue().splitlines()
    assert lines[0] == "wan_nb recovery:"
    assert len(lines) == 4  # heading, one line per attempt, the ending
    assert "half_precision" in lines[1] and "failed" in lines[1] and "OutOfMemoryError" in lines[1]
    assert "Traceback" not in out.getvalue()  # the full text stays on the report
    assert "vae_tiling" in lines[2] and "success" in lines[2] and "7.00 MiB" in lines[2]
    assert lines[3].startswith("✔ Recovered with `vae_tiling`")
    assert repr(table).splitlines()[1:3] == lines[1:3]


def test_live_table_widget_gains_rows_and_turns_green():
    pytest.importorskip("ipywidgets")
    from wan_nb.notebook.live import LiveTable

    shown = []
    report = _report()
    table = LiveTable(widgets=True, display=shown.append)
    heading, body = table.widget.children
    table.start(_Candidate("half_precision", 12 << 20), 0)
    assert shown == [table.widget]  # displayed once, at the first row
    assert "trying <code>half_precision</code>" in heading.value and "running" in body.value
    table.add(report.attempts[0])
    table.start(_Candidate("vae_tiling", 8 << 20), 1)
    table.add(report.attempts[1])
    assert body.value.count("<tr>") == 3  # header and two attempts
    assert "OutOfMemoryError" in body.value and "7.00 MiB" in body.value
    table.finish(report)
    assert table.widget.layout.border == "2px solid #2e7d32"
    assert "Recovered with <code>vae_tiling</code>" in heading.value and "`" not in heading.value
    assert len(shown) == 1
    assert "vae_tiling" in repr(table)  # readable repr, as tqdm.notebook's


def test_live_table_widget_turns_red_on_failure():
    pytest.importorskip("ipywidgets")
    from wan_nb.notebook.live import LiveTable

    report = _report(winner=None)
    table = LiveTable(widgets=True, display=lambda w: None)
    for attempt in report.attempts:
        table.add(attempt)  # rows appear even without start (the probe has no start)
    table.finish(report)
    assert table.widget.layout.border == "2px solid #c62828"
    assert table.state == "failed"


def test_widgets_available_decides_by_env_and_frontend(monkeypatch):
    from wan_nb.notebook import live

    class Kernel:
        kernel = object()

    monkeypatch.delenv(live.ENV_NO_WIDGETS, raising=False)
    assert live.widgets_available(Kernel()) is True
    assert live.widgets_available(object()) is False  # a terminal shell has no kernel
    monkeypatch.setenv(live.ENV_NO_WIDGETS, "1")
    assert live.widgets_available(Kernel()) is False


def test_missing_ipywidgets_falls_back_to_text_with_a_hint(monkeypatch, capsys):
    import builtins

    from wan_nb.notebook import live

    class Kernel:
        kernel = object()

    real_import = builtins.__import__

    def no_widgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError("no ipywidgets")
        return real_import(name, *args, **kwargs)

    monkeypatch.delenv(live.ENV_NO_WIDGETS, raising=False)
    monkeypatch.setattr(live, "_hinted", False)
    monkeypatch.setattr(builtins, "__import__", no_widgets)
    assert live.widgets_available(Kernel()) is False
    assert 'install "ipywidgets"' in capsys.readouterr().err


@pytest.fixture(scope="module")
def ip():
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()
