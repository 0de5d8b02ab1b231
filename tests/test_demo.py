"""``wan-nb demo``: the whole walk-through, through the real CLI entry point."""

from __future__ import annotations


def test_demo_fails_diagnoses_recovers_and_writes_its_files(tiny_path, model_copy, tmp_path, capsys):
    from wan_nb.cli import main

    out = tmp_path / "demo"
    out.mkdir()
    # The demo builds its tiny pipeline into --out unless one is there: reuse the session's build.
    model_copy(tiny_path("wan2.2-t2v-a14b")).rename(out / "tiny-wan2.2-t2v-a14b")
    assert main(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "failed: OutOfMemoryError" in text
    assert "out_of_memory at vae_decode" in text  # the diagnosis
    assert "✔ Recovered with `vae_tiling`" in text  # the live table's ending
    assert "Paste this to apply it yourself" in text and "enable_tiling(" in text
    html = (out / "report.html").read_text()
    assert "Recovered with <code>vae_tiling</code>" in html and "data:image/png;base64," in html
    assert "WanPipeline" in html and "out_of_memory" in html  # components and diagnosis sections
    assert (out / "vram.png").read_bytes()[:4] == b"\x89PNG"
    assert str((out / "report.html").resolve()) in text
