"""Recompute the computed figures of ``wan_nb/data/models.json`` from the real configs.

``python -m wan_nb.alternatives --refresh`` (or ``python -m tools.refresh_registry``)
writes each Wan preset as a synthetic checkpoint (the published configs, header-only
weights), reads it back with the component analysis and wan_nb's estimator, and stores:

* ``parameters`` — per component, counted from the safetensors headers (``"config"``);
* ``fingerprint`` — the transformer's shape-defining config (and the pipeline's
  ``boundary_ratio``), so a local folder can be recognised as that model;
* ``peak_memory`` entries with ``"source": "estimated"`` — one per strategy in
  :data:`STRATEGIES`, at the registry's ``estimate_settings``. Published figures are kept
  as they are.

``--check`` compares instead of writing, and exits 1 when the file is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

# Strategies whose peaks the registry records: none, then the usual ways to fit a smaller card.
STRATEGIES: tuple[str | None, ...] = (
    None,
    "model_cpu_offload+vae_tiling",
    "group_offload+vae_tiling",
    "sequential_cpu_offload+vae_tiling",
)
_FINGERPRINT_KEYS = ("num_layers", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "ffn_dim")


def _computed(preset: str, settings_data: dict[str, Any], workdir: Path) -> dict[str, Any]:
    from wan_nb.fixtures import write_synthetic_checkpoint
    from wan_nb.model.components import analyze_model_components
    from wan_nb.settings import GenerationSettings

    folder = write_synthetic_checkpoint(workdir / preset, preset)
    report = analyze_model_components(folder)
    parameters = {
        c.name: {"count": c.parameters, "source": "config", "dtype": ", ".join(c.dtypes)}
        for c in report.components
        if c.parameters
    }
    transformer = report["transformer"].config
    fingerprint: dict[str, Any] = {"transformer": {k: transformer[k] for k in _FINGERPRINT_KEYS if k in transformer}}
    fingerprint["_pipeline"] = {"boundary_ratio": report.pipeline_config.get("boundary_ratio")}
    peaks = []
    try:
        from wan_nb.memory.estimate import estimate_memory
    except ImportError:
        print("wan_nb.memory.estimate is not available: estimated peaks left as they were", file=sys.stderr)
        return {"parameters": parameters, "fingerprint": fingerprint, "peak_memory": None}
    settings = GenerationSettings.from_dict(settings_data)
    for strategy in STRATEGIES:
        estimate = estimate_memory(report, settings, strategy, device="cuda")
        peaks.append({
            "bytes": int(estimate.peak_bytes),
            "source": "estimated",
            "strategy": strategy,
            "settings": settings_data,
            "reference": f"wan_nb estimate over the {preset} synthetic checkpoint (published configs)",
        })
    return {"parameters": parameters, "fingerprint": fingerprint, "peak_memory": peaks}


def refreshed(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (models.json's content) with every computed figure recomputed."""
    data = json.loads(json.dumps(data))
    settings_data = data["estimate_settings"]
    with tempfile.TemporaryDirectory(prefix="wan_nb_refresh_") as tmp:
        for model in data["models"]:
            preset = model.get("synthetic_preset")
            if not preset:
                continue
            computed = _computed(preset, settings_data, Path(tmp))
            model["parameters"] = computed["parameters"]
            model["fingerprint"] = computed["fingerprint"]
            if computed["peak_memory"] is not None:
                published = [p for p in model.get("peak_memory") or [] if p.get("source") != "estimated"]
                model["peak_memory"] = computed["peak_memory"] + published
    return data


def _dump(data: dict[str, Any]) -> str:
    # One model per block, figures on one line each: diffs of a refresh stay readable.
    lines = ["{"]
    head = {k: v for k, v in data.items() if k != "models"}
    for key, value in head.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines.append('  "models": [')
    blocks = []
    for model in data["models"]:
        fields = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in model.items() if k != "peak_memory"]
        peaks = ",\n".join(f"        {json.dumps(p)}" for p in model.get("peak_memory") or [])
        fields.append('    "peak_memory": [' + (f"\n{peaks}\n      ]" if peaks else "]"))
        blocks.append("    {\n" + ",\n".join(f"  {f}" for f in fields) + "\n    }")
    lines.append(",\n".join(blocks))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wan_nb.alternatives", description=__doc__.splitlines()[0])
    parser.add_argument("--refresh", action="store_true", help="recompute and write models.json")
    parser.add_argument("--check", action="store_true", help="recompute and compare; exit 1 when stale")
    parser.add_argument("--path", default=None, help="the models.json to read and write (default: the package's)")
    args = parser.parse_args(argv)
    from wan_nb.model.registry import registry_path

    path = Path(args.path) if args.path else registry_path()
    data = json.loads(path.read_text(encoding="utf-8"))
    new = refreshed(data)
    if args.check:
        stale = new != data
        print(f"{path}: {'stale, run --refresh' if stale else 'up to date'}")
        return 1 if stale else 0
    if not args.refresh:
        parser.print_help()
        return 2
    path.write_text(_dump(new), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
