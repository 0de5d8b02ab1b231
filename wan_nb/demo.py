"""``wan-nb demo``: the whole flow on a tiny real pipeline, without Jupyter."""

from __future__ import annotations

import time
from pathlib import Path


def run_demo(out: Path, *, variant: str = "wan2.2-t2v-a14b") -> int:
    """Build a tiny Wan pipeline in ``out``, then print its component table."""
    from .components import analyze_model_components
    from .fixtures import build_tiny_pipeline

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = out / f"tiny-{variant}"
    start = time.perf_counter()
    if not (model / "model_index.json").is_file():
        build_tiny_pipeline(model, variant)
    print(f"1. built a tiny real {variant} pipeline in {model} ({time.perf_counter() - start:.1f} s)")
    report = analyze_model_components(model)
    print("2. its components, read from model_index.json and the safetensors headers:\n")
    print(report.to_text())
    return 0 if report.ok else 1
