"""Fit the activation coefficients of wan_nb's memory estimator; write wan_nb/data/calibration.json.

Every number in the JSON's ``coefficients`` comes from here: each Wan model (transformer,
UMT5 text encoder, the two VAE families' decode, tiled decode and encode) is built at small
sizes with random weights — the same classes and config shapes as the tiny pipelines of
``wan_nb.fixtures``, with the sizes varied one at a time so that each feature of
``wan_nb.memory._activations`` is identified — run once under ``wan_nb.measure`` on the CPU,
and its activation bytes (peak minus the level before the call, output included) recorded.
A least-squares fit of those bytes on the features gives the coefficients. The measurements
are kept next to the fit, so it can be checked and redone.

    .venv/bin/python benchmarks/calibrate.py            # ~2-4 minutes on 2 cores
    .venv/bin/python benchmarks/calibrate.py --check    # refit, compare, write nothing

The pipeline-level check (estimate vs measured on whole tiny pipelines, every strategy) is
``benchmarks/estimate_vs_measured.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from wan_nb.memory import _activations as A
from wan_nb.memory.meter import measure

OUT = Path(__file__).resolve().parents[1] / "wan_nb" / "data" / "calibration.json"
DT = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _added(fn, *args, **kwargs) -> int:
    """Activation bytes of ``fn(*args, **kwargs)``: its peak above the level before it, output included."""
    with torch.no_grad(), measure("cpu") as m:
        out = fn(*args, **kwargs)
    del out
    return m.added_bytes


# -- transformer --------------------------------------------------------------------------
def transformer_runs() -> list[dict]:
    from diffusers import WanTransformer3DModel

    runs = []
    grid = [
        # heads, head_dim, ffn multiple, (T, h, w) latent, dtype, per-token timestep
        (4, 16, 4, (3, 32, 32), "float32", False),
        (4, 16, 4, (6, 32, 32), "float32", False),
        (8, 16, 4, (3, 32, 32), "float32", False),
        (8, 16, 2, (3, 32, 32), "float32", False),
        (8, 16, 8, (2, 48, 32), "float32", False),
        (4, 32, 4, (3, 32, 32), "float32", False),
        (2, 64, 3, (3, 32, 48), "float32", False),
        (8, 16, 4, (3, 32, 32), "bfloat16", False),
        (8, 16, 8, (3, 32, 32), "bfloat16", False),
        (4, 32, 4, (2, 32, 32), "bfloat16", False),
        (8, 16, 4, (3, 32, 32), "float32", True),
        (4, 16, 4, (4, 32, 32), "float32", True),
        (8, 16, 4, (3, 32, 32), "bfloat16", True),
        (4, 32, 2, (2, 32, 48), "bfloat16", True),
    ]
    for heads, hd, fm, (T, h, w), dtype, ts in grid:
        config = {
            "patch_size": (1, 2, 2), "num_attention_heads": heads, "attention_head_dim": hd,
            "in_channels": 16, "out_channels": 16, "text_dim": 64, "freq_dim": 256,
            "ffn_dim": fm * heads * hd, "num_layers": 2, "cross_attn_norm": True,
            "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 256,
        }  # fmt: skip
        torch.manual_seed(0)
        model = WanTransformer3DModel(**config).to(DT[dtype]).eval()
        n = A.tokens(config, T, h, w)
        x = torch.randn(1, 16, T, h, w, dtype=DT[dtype])
        timestep = torch.full((1, n), 500.0) if ts else torch.tensor([500.0])
        context = torch.randn(1, 32, 64, dtype=DT[dtype])
        measured = _added(model, hidden_states=x, timestep=timestep, encoder_hidden_states=context, return_dict=False)
        b = A.DTYPE_BYTES[dtype]
        runs.append({
            "config": {k: config[k] for k in ("num_attention_heads", "attention_head_dim", "ffn_dim")},
            "latent": [T, h, w], "dtype": dtype, "per_token_timestep": ts, "tokens": n,
            "features": A.transformer_features(config, n, b, ts), "measured": measured,
        })  # fmt: skip
    return runs


# -- text encoder -------------------------------------------------------------------------
def text_encoder_runs() -> list[dict]:
    from transformers import UMT5Config, UMT5EncoderModel

    runs = []
    grid = [
        # d_model, d_ff, heads, seq_len, dtype
        (64, 128, 8, 64, "float32"),
        (64, 128, 8, 128, "float32"),
        (128, 256, 8, 64, "float32"),
        (64, 512, 8, 64, "float32"),
        (64, 128, 2, 128, "float32"),
        (128, 256, 16, 96, "float32"),
        (64, 128, 8, 128, "bfloat16"),
        (128, 512, 4, 64, "bfloat16"),
        # long prompts: the L^2 terms (Wan pads every prompt to 512 tokens)
        (64, 128, 8, 256, "float32"),
        (32, 64, 4, 512, "float32"),
        (32, 64, 8, 512, "float32"),
        (64, 256, 2, 384, "float32"),
        (64, 128, 8, 384, "bfloat16"),
        (32, 128, 4, 512, "bfloat16"),
    ]
    for d, f, heads, L, dtype in grid:
        config = {
            "vocab_size": 512, "d_model": d, "d_kv": d // heads, "num_heads": heads, "d_ff": f,
            "num_layers": 2, "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 8,
            "relative_attention_max_distance": 32, "dropout_rate": 0.0, "tie_word_embeddings": False,
        }  # fmt: skip
        torch.manual_seed(0)
        model = UMT5EncoderModel(UMT5Config(**config)).to(DT[dtype]).eval()
        ids = torch.randint(0, 512, (1, L))
        # Wan pads every prompt to max_sequence_length: a short prompt, then padding. The
        # padding mask makes the attention materialise a masked bias per head.
        mask = torch.zeros(1, L, dtype=torch.long)
        mask[:, : min(L, 12)] = 1
        measured = _added(model, ids, mask)
        runs.append({
            "config": {"d_model": d, "d_ff": f, "num_heads": heads}, "seq_len": L, "dtype": dtype,
            "features": A.text_encoder_features(config, L, A.DTYPE_BYTES[dtype]), "measured": measured,
        })  # fmt: skip
    return runs


# -- VAE ------------------------------------------------------------------------------------
def _vae(family: str, size: int, nrb: int):
    from diffusers import AutoencoderKLWan

    from wan_nb.fixtures.tiny import _vae_config

    config = _vae_config("wan2.2-ti2v-5b" if family == "vae22" else "wan2.1-t2v", size)
    config["num_res_blocks"] = nrb
    torch.manual_seed(0)
    return AutoencoderKLWan(**config).eval(), {k: v for k, v in config.items() if not k.startswith("latents_")}


def vae_runs() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    # family, size, num_res_blocks, latent frames, height, width
    decode_grid = [
        (1, 1, 2, 64, 64), (1, 1, 4, 64, 128), (2, 1, 3, 64, 64), (2, 2, 3, 64, 64),
        (1, 2, 5, 96, 64), (2, 1, 2, 128, 64), (1, 3, 3, 64, 64), (4, 1, 3, 64, 64),
        (4, 2, 2, 64, 64), (1, 1, 8, 64, 64),
    ]
    for family in ("vae21", "vae22"):
        rows = []
        for size, nrb, T, H, W in decode_grid:
            if family == "vae22":
                H, W = max(64, H // 32 * 32), max(64, W // 32 * 32)
            vae, config = _vae(family, size, nrb)
            _, spatial, _ = A.vae_factors(config)
            z = torch.randn(1, config["z_dim"], T, H // spatial, W // spatial)
            measured = _added(vae.decode, z, return_dict=False)
            frames = (T - 1) * 4 + 1
            rows.append({
                "config": config, "video": [frames, H, W], "dtype": "float32",
                "features": A.vae_decode_features(config, frames, H, W, 4), "measured": measured,
            })  # fmt: skip
        out[f"{family}_decode"] = rows

        rows = []
        # Tiled decode, with tiles smaller than the video (as wan_nb's vae_tiling does for
        # small videos) and diffusers' 3/4 stride.
        # Small channels and many frames: the final assembly peaks; wide channels and few
        # frames: one tile's working set peaks. Both phases are checked.
        tiled_grid = [(1, 1, 2, 128, 128, 64), (1, 2, 3, 128, 96, 64), (2, 1, 2, 128, 128, 64), (1, 1, 3, 192, 128, 96),
                      (4, 1, 2, 128, 128, 96), (4, 2, 2, 160, 128, 96)]  # fmt: skip
        for size, nrb, T, H, W, tile in tiled_grid:
            if family == "vae22":
                tile = max(64, tile // 32 * 32)
            tiling = {"tile_sample_min_height": tile, "tile_sample_min_width": tile,
                      "tile_sample_stride_height": tile * 3 // 4, "tile_sample_stride_width": tile * 3 // 4}  # fmt: skip
            vae, config = _vae(family, size, nrb)
            vae.enable_tiling(**tiling)
            _, spatial, _ = A.vae_factors(config)
            z = torch.randn(1, config["z_dim"], T, H // spatial, W // spatial)
            measured = _added(vae.decode, z, return_dict=False)
            frames = (T - 1) * 4 + 1
            rows.append({
                "config": config, "video": [frames, H, W], "tiling": tiling, "dtype": "float32",
                "features": A.vae_tiled_decode_features(config, frames, H, W, 4, tiling), "measured": measured,
            })  # fmt: skip
        out[f"{family}_tiled_decode"] = rows

        rows = []
        encode_grid = [(1, 1, 5, 64, 64), (1, 1, 9, 64, 96), (2, 1, 5, 64, 64), (1, 2, 5, 96, 64), (2, 2, 9, 64, 64),
                       (2, 1, 13, 64, 64), (1, 3, 9, 64, 64)]  # fmt: skip
        for size, nrb, frames, H, W in encode_grid:
            vae, config = _vae(family, size, nrb)
            x = torch.randn(1, 3, frames, H, W)
            measured = _added(vae.encode, x)
            rows.append({
                "config": config, "video": [frames, H, W], "dtype": "float32",
                "features": A.vae_encode_features(config, frames, H, W, 4), "measured": measured,
            })  # fmt: skip
        out[f"{family}_encode"] = rows
    return out


FEATURES = {
    "transformer": ["nf_b", "nd_b", "nd_4", "nh_4", "ts_nd_b", "ts_nd_4"],
    "text_encoder": ["ld_b", "lf_b", "hll_b", "hll_4", "ll_8"],
    "vae21_decode": ["out", "phi", "phi_nrb", "phi_2"],
    "vae22_decode": ["out", "phi", "phi_nrb", "phi_2"],
    "vae21_encode": ["video", "phi", "phi_nrb", "phi_2"],
    "vae22_encode": ["video", "phi", "phi_nrb", "phi_2"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="refit and compare with the stored file; write nothing")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the meter counts bytes, not time: one thread keeps runs comparable
    start = time.perf_counter()
    measurements = {"transformer": transformer_runs(), "text_encoder": text_encoder_runs(), **vae_runs()}
    models = {}
    print(f"{'model':<22} {'runs':>4} {'median err':>10} {'worst err':>10}  coefficients")
    for name, names in FEATURES.items():
        coef, quality = A.fit(measurements[name], names)
        models[name] = {"features": names, "coefficients": coef, "fit": quality, "measurements": measurements[name]}
        shown = ", ".join(f"{k}={v:.3g}" for k, v in coef.items())
        print(f"{name:<22} {quality['runs']:>4} {quality['median_rel_error']:>10.2%} {quality['max_rel_error']:>10.2%}  {shown}")
    # Tiled decoding is predicted from the decode coefficients and the tile layout, with no
    # coefficient of its own: these runs check it.
    for family in ("vae21", "vae22"):
        rows = measurements[f"{family}_tiled_decode"]
        coef = models[f"{family}_decode"]["coefficients"]
        errors = []
        for r in rows:
            f = r["features"]
            working = sum(coef[k] * f[k] for k in ("phi", "phi_nrb", "phi_2"))
            predicted = max(f["tiles"] + working, f["tiles"] + 3 * f["out"])
            r["predicted"] = int(predicted)
            errors.append(abs(predicted - r["measured"]) / r["measured"])
        errors.sort()
        quality = {"median_rel_error": errors[len(errors) // 2], "max_rel_error": errors[-1], "runs": len(rows)}
        models[f"{family}_tiled_decode"] = {"features": [], "coefficients": {}, "check": quality, "measurements": rows}
        print(f"{family + '_tiled_decode':<22} {len(rows):>4} {quality['median_rel_error']:>10.2%} "
              f"{quality['max_rel_error']:>10.2%}  (no coefficients: predicted from {family}_decode)")
    data = {
        "about": (
            "Activation coefficients of wan_nb's memory estimator, fitted by benchmarks/calibrate.py "
            "to CPU measurements (wan_nb.measure) of randomly initialised Wan models; see "
            "wan_nb/memory/_activations.py for the features."
        ),
        "environment": {
            "torch": torch.__version__,
            "diffusers": __import__("diffusers").__version__,
            "transformers": __import__("transformers").__version__,
            "python": platform.python_version(),
        },
        "models": models,
    }
    print(f"calibrated in {time.perf_counter() - start:.0f} s")
    if args.check:
        stored = json.loads(OUT.read_text())["models"]
        for name, model in models.items():
            old = stored[name]["coefficients"]
            if not old:
                continue
            drift = max(abs(model["coefficients"][k] - old[k]) / max(abs(old[k]), 1e-9) for k in old)
            print(f"{name:<22} largest coefficient change vs stored: {drift:.2%}")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
