"""``wan-nb demo``: the whole walk-through on a tiny real pipeline, without Jupyter.

Build a tiny Wan 2.2 pipeline (two experts, random weights, real diffusers classes), run it
under a memory budget it exceeds, diagnose the failure, recover, print the attempts table,
and write ``report.html`` and ``vram.png`` into ``--out``. A minute or less on a laptop CPU.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

VARIANT = "wan2.2-t2v-a14b"
# The tiny pipeline's VAE decode of 128x128 frames peaks near 19 MB of CPU memory; tiled, near
# 13 MB. A 16 MB budget plays the part of a card that is a little too small.
BUDGET = "16MB"
SIDE = 128


def _step(number: int, text: str, start: float) -> None:
    print(f"\n{number}. {text}  [{time.perf_counter() - start:.1f} s]")


def run_demo(out: Path, *, variant: str = VARIANT, budget: str = BUDGET, explore: bool = True) -> int:
    """Run the walk-through, writing into ``out``; 0 when the run was recovered, 1 otherwise."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # A terminal walk-through: the loading and denoising bars of every attempt would bury the
    # table (tqdm reads TQDM_DISABLE; this process is the demo's own).
    os.environ.setdefault("TQDM_DISABLE", "1")
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    from wan_nb.fixtures import build_tiny_pipeline, tiny_call_kwargs
    from wan_nb.model.components import analyze_model_components

    model = out / f"tiny-{variant}"
    if not (model / "model_index.json").is_file():
        build_tiny_pipeline(model, variant)
    components = analyze_model_components(model)
    _step(1, f"A tiny real {variant} pipeline in {model} (random weights, the real diffusers classes):", start)
    print(components.to_text())

    pipe = _load(model)
    call = tiny_call_kwargs(variant, height=SIDE, width=SIDE)

    def run() -> Any:
        # A fresh generator each run: every attempt makes the same video.
        return pipe(**{**call, "generator": tiny_call_kwargs(variant)["generator"]}).frames[0]

    from wan_nb.memory import memory_budget

    _step(2, f"Generate {call['num_frames']} frames of {SIDE}x{SIDE} on a device with {budget}:", start)
    error = None
    try:
        with memory_budget(budget):
            run()
    except Exception as exc:  # noqa: BLE001 - the failure is the point: it is diagnosed below
        error = exc
        print(f"   failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    if error is None:
        print("   it fit: nothing to recover (is the budget larger than the run needs?)")
        return 0

    from wan_nb.diagnosis import diagnose

    diagnosis = diagnose(error)
    _step(3, "What went wrong, and where:", start)
    print(diagnosis.to_text())

    from wan_nb.notebook.live import LiveTable
    from wan_nb.recovery.engine import recover

    _step(4, "Recover: each planned strategy applied, the run repeated and measured, the pipeline put back:", start)
    live = LiveTable("attempts", widgets=False)
    report = recover(run, pipeline=pipe, error=error, budget=budget, explore=explore,
                     on_start=live.start, on_attempt=live.add)
    del error
    live.finish(report)

    _step(5, "The report:", start)
    print(report.to_text())

    from wan_nb.notebook.export import save_report
    from wan_nb.plots import plot_report

    html_path = save_report(report, out / "report.html", extra=[("Components", components), ("Diagnosis", diagnosis)])
    png_path = out / "vram.png"
    plot_report(report).savefig(png_path, dpi=100, bbox_inches="tight")
    _step(6, "Written:", start)
    print(f"   {html_path.resolve()}\n   {png_path.resolve()}")
    return 0 if report.winner else 1


def _load(model: Path) -> Any:
    from diffusers import DiffusionPipeline

    from wan_nb.fixtures.tiny import _quiet

    with _quiet():
        pipe = DiffusionPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    return pipe
