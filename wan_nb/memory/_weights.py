"""The weights each component keeps on the device, read from the safetensors headers, under each strategy's dtypes.

Per component: the total, the part outside the top-level block lists and each block (group
offloading moves a block at a time), the largest leaf module (sequential offloading), the
largest float8-stored layer (layerwise casting upcasts it while it runs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from wan_nb.memory import _activations as A

# diffusers' WanTransformer3DModel._keep_in_fp32_modules: kept float32 whatever torch_dtype.
_WAN_KEEP_FP32 = ("rope", "time_embedder", "scale_shift_table", "norm1", "norm2", "norm3")
# diffusers' layerwise casting skips these: DEFAULT_SKIP_MODULES_PATTERN, the model's
# _keep_in_fp32_modules and WanTransformer3DModel._skip_layerwise_casting_patterns.
_LAYERWISE_SKIP = re.compile(
    r"pos_embed|patch_embed|norm|^proj_in$|^proj_out$|patch_embedding|condition_embedder|" + "|".join(_WAN_KEEP_FP32)
)
_EMBEDDINGS = ("shared", "embed_tokens", "embedding", "wte", "position_embedding")
# bitsandbytes: int8 is one byte per weight plus a float32 scale per row; NF4 half a byte plus
# a float32 absmax per 64 weights (no double quantization, as wan_nb's strategy loads it).
_NF4_BYTES = 0.5 + 4 / 64
@dataclass
class _Weights:
    """Resident bytes of one component under the strategy's dtypes."""

    total: int = 0
    unmatched: int = 0  # outside the top-level block lists (group offloading's always-on group)
    blocks: list[int] = field(default_factory=list)
    largest_leaf: int = 0  # the largest single module (sequential offloading)
    largest_cast: int = 0  # the largest float8-stored layer, upcast while it runs
    exact: bool = True
    # The VAE's halves as group offloading splits them (its _group_offload_block_modules):
    # "decoder"/"encoder" -> [weights outside the up/down block lists, + the (post_)quant_conv, blocks...]
    halves: dict[str, list[int]] = field(default_factory=dict)


@lru_cache(maxsize=64)
def _tensor_table(files: tuple[str, ...]) -> tuple[tuple[str, int, tuple[int, ...]], ...] | None:
    """(name, numel, shape) of every tensor in these safetensors files, from their headers only."""
    from wan_nb.model.checkpoint import CheckpointError, read_safetensors_header

    table: list[tuple[str, int, tuple[int, ...]]] = []
    try:
        for path in files:
            header = read_safetensors_header(path)
            table.extend((name, info.numel, tuple(info.shape)) for name, info in header.tensors.items())
    except (CheckpointError, OSError):
        return None
    return tuple(table) if table else None


def _component_files(report: Any, info: Any) -> tuple[str, ...]:
    root = Path(getattr(report, "path", "") or "")
    return tuple(str(root / f) for f in (info.files or ()) if str(f).endswith(".safetensors"))


def _weights(report: Any, info: Any, dtype: str, mode: str | None) -> _Weights:
    """Resident bytes of a component; ``mode`` is None, ``"fp8"``, ``"int8"`` or ``"nf4"``."""
    base = A.DTYPE_BYTES[dtype]
    is_transformer = info.name.startswith("transformer")
    is_text_encoder = info.name.startswith("text_encoder")
    keep_fp32 = is_transformer and dtype != "float32"
    # transformers keeps T5's `wo` in float32 only for float16 loads.
    keep_wo = info.name.startswith("text_encoder") and dtype == "float16"
    table = _tensor_table(_component_files(report, info))
    if table is None:
        return _weights_from_totals(info, base)

    modules: dict[str, list[tuple[str, int, tuple[int, ...]]]] = {}
    for name, numel, shape in table:
        module, _, leaf = name.rpartition(".")
        modules.setdefault(module, []).append((leaf, numel, shape))
    w = _Weights()
    blocks: dict[int, int] = {}
    is_vae = info.name.startswith("vae")
    half_rest = {"decoder": 0, "encoder": 0}
    half_blocks: dict[str, dict[int, int]] = {"decoder": {}, "encoder": {}}
    for module, tensors in modules.items():
        parts = module.split(".")
        # A Linear or Conv layer: a weight of two or more dimensions (embeddings excluded by name).
        weight_2d = any(leaf == "weight" and len(shape) >= 2 for leaf, _, shape in tensors) and parts[-1] not in _EMBEDDINGS
        fp32 = (keep_fp32 and any(p in _WAN_KEEP_FP32 for p in parts)) or (keep_wo and "wo" in parts)
        per = 4 if fp32 else base
        layer = weight_2d and not fp32 and not _LAYERWISE_SKIP.search(module)
        nbytes = 0.0
        for leaf, numel, _ in tensors:
            if mode == "fp8" and layer:
                nbytes += numel
            elif mode in ("int8", "nf4") and layer and leaf == "weight":
                nbytes += numel * (1 if mode == "int8" else _NF4_BYTES)
            else:
                nbytes += numel * per
        if mode == "int8" and layer:
            # a float32 scale per output row
            nbytes += 4 * sum(shape[0] for leaf, _, shape in tensors if leaf == "weight")
        nbytes = int(nbytes)
        w.total += nbytes
        w.largest_leaf = max(w.largest_leaf, nbytes)
        if mode == "fp8" and layer:
            w.largest_cast = max(w.largest_cast, sum(n for _, n, _ in tensors) * base)
        if is_transformer and len(parts) >= 2 and parts[0] in ("blocks", "vace_blocks") and parts[1].isdigit():
            key = int(parts[1]) + (100_000 if parts[0] == "vace_blocks" else 0)  # VACE's blocks: a list of their own
            blocks[key] = blocks.get(key, 0) + nbytes
        elif is_text_encoder and len(parts) >= 3 and parts[:2] == ["encoder", "block"] and parts[2].isdigit():
            # T5/UMT5: wan_nb's group_offload reaches encoder.block through `block_modules`.
            blocks[int(parts[2])] = blocks.get(int(parts[2]), 0) + nbytes
        else:
            w.unmatched += nbytes
        if is_vae and parts[0] in half_rest:
            if len(parts) >= 3 and parts[1] in ("up_blocks", "down_blocks") and parts[2].isdigit():
                half_blocks[parts[0]][int(parts[2])] = half_blocks[parts[0]].get(int(parts[2]), 0) + nbytes
            else:
                half_rest[parts[0]] += nbytes
        elif is_vae and parts[0] in ("post_quant_conv", "quant_conv"):
            half_rest["decoder" if parts[0] == "post_quant_conv" else "encoder"] += nbytes
    w.blocks = [blocks[i] for i in sorted(blocks)]
    if is_vae and any(half_blocks.values()):
        w.halves = {k: [half_rest[k]] + [half_blocks[k][i] for i in sorted(half_blocks[k])] for k in half_rest}
    return w


def _weights_from_totals(info: Any, base: int) -> _Weights:
    """Without readable headers: totals from the report, blocks split evenly (approximate)."""
    params = info.parameters or (info.bytes or 0) // 4
    total = int(params * base)
    w = _Weights(total=total, unmatched=total, largest_leaf=total, exact=False)
    layers = int((info.config or {}).get("num_layers") or 0)
    if info.name.startswith("transformer") and layers:
        per_block = int(total * 0.97) // layers
        w.blocks = [per_block] * layers
        w.unmatched = total - per_block * layers
        D, F, _ = A.transformer_width(info.config)
        w.largest_leaf = D * F * base
    return w
