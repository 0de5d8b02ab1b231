"""The strategy catalogue: what each fallback changes, needs and costs, and its snippet.

``get_strategy("model_cpu_offload+vae_tiling")`` returns one :class:`Strategy` doing both;
a name wan_nb does not know, or two strategies that cannot work together, raise
``ValueError`` saying which and why.
"""

from __future__ import annotations

from wan_nb.strategies._base import Code, Strategy, StrategyContext, combine
from wan_nb.strategies._catalogue import CATALOGUE, dtype_kwarg_name, half_dtype, tiling_kwargs

__all__ = [
    "COMBINATIONS",
    "CONFLICTS",
    "Code",
    "STRATEGIES",
    "Strategy",
    "StrategyContext",
    "dtype_kwarg_name",
    "get_strategy",
    "half_dtype",
    "parse_strategy",
    "tiling_kwargs",
]

from wan_nb.strategies.structural import STRUCTURAL  # noqa: E402

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (*CATALOGUE, *STRUCTURAL)}

_PLACEMENT = ("model_cpu_offload", "group_offload", "sequential_cpu_offload", "balanced_device_map")
_QUANT = ("quantize_int8", "quantize_nf4")

# Pairs that cannot work together, with the reason a user reads.
CONFLICTS: dict[frozenset[str], str] = {}
for _i, _a in enumerate(_PLACEMENT):
    for _b in _PLACEMENT[_i + 1 :]:
        CONFLICTS[frozenset((_a, _b))] = (
            f"`{_a}` and `{_b}` both decide where the models live; diffusers refuses to stack "
            "one placement hook on another. Pick one."
        )
CONFLICTS[frozenset(_QUANT)] = "`quantize_int8` and `quantize_nf4` are two precisions for the same weights; pick one."
for _q in _QUANT:
    CONFLICTS[frozenset(("layerwise_fp8", _q))] = (
        f"`layerwise_fp8` casts weights that `{_q}` has already quantized; pick one."
    )
    CONFLICTS[frozenset(("half_precision", _q))] = (
        f"`{_q}` already loads the rest of the pipeline in 16 bits; `half_precision` adds nothing."
    )
for _o in ("model_cpu_offload", "sequential_cpu_offload"):
    CONFLICTS[frozenset(("text_encoder_cpu", _o))] = (
        f"`{_o}` moves the text encoder to the accelerator while it encodes, undoing `text_encoder_cpu`; "
        "the offload already keeps it off the accelerator the rest of the time."
    )

# Combinations the plan considers besides the single strategies: an offload or a lighter
# transformer for the denoising peak, with tiling for the decoding peak.
COMBINATIONS: tuple[str, ...] = (
    "half_precision+vae_tiling",
    "layerwise_fp8+vae_tiling",
    "model_cpu_offload+vae_tiling",
    "group_offload+vae_tiling",
    "sequential_cpu_offload+vae_tiling",
    "text_encoder_cpu+vae_tiling",
    "half_precision+model_cpu_offload",
    "half_precision+group_offload",
    "layerwise_fp8+group_offload",
    "quantize_int8+model_cpu_offload",
    "quantize_nf4+model_cpu_offload",
    "half_precision+group_offload+vae_tiling",
    "fewer_frames+vae_tiling",
    "lower_resolution+vae_tiling",
    "fewer_frames+half_precision",
)


def parse_strategy(name: str) -> tuple[str, ...]:
    """``"a+b"`` -> ``("a", "b")``, checked: known names, no repeats, no conflicts."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"A strategy name is a non-empty string such as 'vae_tiling', got {name!r}.")
    parts = tuple(p.strip() for p in name.split("+"))
    valid = ", ".join(STRATEGIES)
    for part in parts:
        if part not in STRATEGIES:
            raise ValueError(f"Unknown strategy `{part}` in {name!r}. Valid strategies: {valid}.")
    if len(parts) > 1:
        alone = [p for p in parts if STRATEGIES[p].structural]
        if alone:
            raise ValueError(f"Strategy {name!r} cannot be used: `{alone[0]}` replaces the load (or is guidance "
                             "only) and does not combine with other strategies.")
    if len(set(parts)) != len(parts):
        raise ValueError(f"Strategy {name!r} names the same strategy twice.")
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            reason = CONFLICTS.get(frozenset((a, b)))
            if reason:
                raise ValueError(f"Strategy {name!r} cannot be used: {reason}")
    return parts


def get_strategy(name: str | Strategy) -> Strategy:
    """The :class:`Strategy` for ``name``; ``"a+b"`` combines them in that order."""
    if isinstance(name, Strategy):
        return name
    parts = parse_strategy(name)
    return combine([STRATEGIES[p] for p in parts])
