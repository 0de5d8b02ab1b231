"""Estimated vs measured peak of a real-size Wan 2.1 T2V 1.3B on one CUDA GPU, with no download.

The pipeline is built from the published configs (``../shared/DESIGN.md``: 30 layers, 12
heads of 128, FFN 8960, UMT5-XXL text encoder, diffusers' default Wan 2.1 VAE) with random
weights: the models are made on the meta device (no memory), then each parameter is
materialised on the GPU and drawn from a normal distribution; buffers (rotary tables) are
made for real. The tokenizer is wan_nb's tiny local one (ids fit UMT5's vocabulary). Memory
does not depend on the weights' values, so the peaks are those of the published model.

For 480x832 at 33 and 81 frames (2 steps: the peak does not grow with the steps) under no
strategy, ``vae_tiling``, ``model_cpu_offload`` and ``group_offload``, it measures the call
with ``wan_nb.measure`` (torch.cuda peak statistics) and estimates it with
``wan_nb.estimate_memory`` on a synthetic checkpoint of the same model (headers only), and
writes one tab-separated table (:func:`format_table`, read back by :func:`read_table`).

    python benchmarks/gpu_check.py --out gpu_check.tsv      # benchmarks/gpu_check.sh runs it
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PARAMETERS_1_3B = 1_418_996_800  # Wan2.1-T2V-1.3B transformer, published
FRAMES = (33, 81)
STRATEGIES = ("none", "vae_tiling", "model_cpu_offload", "group_offload")
COLUMNS = ("frames", "strategy", "measured_bytes", "estimated_bytes", "error", "measured_stage", "estimated_stage",
           "seconds")  # fmt: skip

TRANSFORMER_1_3B: dict[str, Any] = {
    "patch_size": (1, 2, 2), "num_attention_heads": 12, "attention_head_dim": 128, "in_channels": 16,
    "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 8960, "num_layers": 30,
    "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6,
}  # fmt: skip
UMT5_XXL: dict[str, Any] = {
    "vocab_size": 256384, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
    "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
    "dropout_rate": 0.0, "tie_word_embeddings": False,
}  # fmt: skip


def build_on_meta() -> dict[str, Any]:
    """The three models with parameters on the meta device (buffers real, on the CPU)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    with init_empty_weights(include_buffers=False):
        transformer = WanTransformer3DModel(**TRANSFORMER_1_3B)
        text_encoder = UMT5EncoderModel(UMT5Config(**UMT5_XXL))
        vae = AutoencoderKLWan()
    return {"transformer": transformer, "text_encoder": text_encoder, "vae": vae}


def materialize(model: Any, device: str, dtype: Any, seed: int = 0) -> Any:
    """Give every meta parameter real, random storage on ``device`` (normal, std 0.02) in ``dtype``."""
    import torch
    from accelerate.utils import set_module_tensor_to_device

    gen = torch.Generator(device=device).manual_seed(seed)
    # float32 where the model keeps it whatever torch_dtype (Wan's norms and time embedding)
    keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, param in list(model.named_parameters()):
        kept = any(k in name.split(".") for k in keep) and dtype != torch.float32
        value = torch.empty(param.shape, dtype=torch.float32 if kept else dtype, device=device)
        value.normal_(0.0, 0.02, generator=gen)
        set_module_tensor_to_device(model, name, device, value=value, dtype=value.dtype)
    return model.to(device=device).eval()  # the buffers, made for real on the CPU


def build_pipeline(device: str = "cuda"):
    import torch
    from diffusers import UniPCMultistepScheduler, WanPipeline

    from wan_nb.fixtures import make_tokenizer

    models = build_on_meta()
    models["transformer"] = materialize(models["transformer"], device, torch.bfloat16, 1)
    models["text_encoder"] = materialize(models["text_encoder"], device, torch.bfloat16, 2)
    models["vae"] = materialize(models["vae"], device, torch.float32, 3)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)  # fmt: skip
    return WanPipeline(tokenizer=make_tokenizer(), scheduler=scheduler, **models)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Tab-separated, one header line; bytes as integers, the error as a signed fraction."""
    lines = ["\t".join(COLUMNS)]
    for r in rows:
        lines.append("\t".join([str(int(r["frames"])), r["strategy"], str(int(r["measured_bytes"])),
                                str(int(r["estimated_bytes"])), f"{float(r['error']):+.4f}", r["measured_stage"],
                                r["estimated_stage"], f"{float(r['seconds']):.1f}"]))  # fmt: skip
    return "\n".join(lines) + "\n"


def read_table(text: str) -> list[dict[str, Any]]:
    """The rows of :func:`format_table`'s text, typed; a clear error for anything else."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or tuple(lines[0].split("\t")) != COLUMNS:
        raise ValueError(f"not a gpu_check table: the first line must be the columns {COLUMNS}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(COLUMNS):
            raise ValueError(f"line {number}: {len(cells)} cells, expected {len(COLUMNS)}")
        row = dict(zip(COLUMNS, cells))
        for key in ("frames", "measured_bytes", "estimated_bytes"):
            row[key] = int(row[key])
        row["error"] = float(row["error"])
        row["seconds"] = float(row["seconds"])
        rows.append(row)
    return rows


def _place(pipe: Any, strategy: str, settings: Any) -> None:
    from wan_nb.strategies import StrategyContext, get_strategy

    if strategy in ("model_cpu_offload", "group_offload"):
        pipe.to("cpu")  # the offloads start from the host, as after from_pretrained
    else:
        pipe.to("cuda")
    if strategy != "none":
        ctx = StrategyContext(device="cuda", settings=settings, dtype="bfloat16",
                              components=("text_encoder", "transformer", "vae"))  # fmt: skip
        get_strategy(strategy).apply(pipe, "cuda", ctx)


def run(out: Path) -> list[dict[str, Any]]:
    import torch

    from wan_nb import GenerationSettings, analyze_model_components, estimate_memory, measure
    from wan_nb.fixtures import write_synthetic_checkpoint

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; run it on a machine with one GPU.")
    report = analyze_model_components(
        write_synthetic_checkpoint(Path(tempfile.mkdtemp(prefix="wan_nb_gpu_")) / "wan21", "wan2.1-t2v-1.3b"))
    rows = []
    for strategy in STRATEGIES:
        for frames in FRAMES:
            settings = GenerationSettings(480, 832, frames, num_inference_steps=2, dtype="bfloat16")
            pipe = build_pipeline("cuda")
            pipe.set_progress_bar_config(disable=True)
            _place(pipe, strategy, settings)
            gc.collect()
            torch.cuda.empty_cache()
            start = time.perf_counter()
            with torch.no_grad(), measure("cuda", pipeline=pipe) as m:
                pipe(prompt="a cat walking on the beach at sunset", negative_prompt="low quality",
                     height=480, width=832, num_frames=frames, num_inference_steps=2, guidance_scale=5.0,
                     output_type="np", generator=torch.Generator().manual_seed(0))  # fmt: skip
            seconds = time.perf_counter() - start
            est = estimate_memory(report, settings, strategy, device="cuda")
            meas = m.result
            stages = {k: v for k, v in meas.by_stage.items() if k != "unknown"}
            row = {"frames": frames, "strategy": strategy, "measured_bytes": meas.peak_bytes,
                   "estimated_bytes": est.peak_bytes, "error": (est.peak_bytes - meas.peak_bytes) / meas.peak_bytes,
                   "measured_stage": max(stages, key=stages.get) if stages else "?",
                   "estimated_stage": est.peak_stage, "seconds": seconds}  # fmt: skip
            rows.append(row)
            print(format_table([row]).splitlines()[1], flush=True)
            out.write_text(format_table(rows))  # after every run: a partial table survives a timeout
            del pipe, m
            gc.collect()
            torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.tsv", help="the table's file")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = run(out)
    errors = sorted(abs(r["error"]) for r in rows)
    print(f"{len(rows)} runs; absolute error median {errors[len(errors) // 2]:.1%}, worst {errors[-1]:.1%}; "
          f"table in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
