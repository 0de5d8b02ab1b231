"""The strategy catalogue: what each fallback changes, needs and costs, and its snippet.

``get_strategy("model_cpu_offload+vae_tiling")`` returns one :class:`Strategy` doing both;
a name wan_nb does not know, or two strategies that cannot work together, raise
``ValueError`` saying which and why.
"""

from __future__ import annotations

from wan_nb.strategies._base import Code, Strategy, StrategyContext, combine
from wan_nb.strategies._catalogue import CATALOGUE, dtype_kwarg_name, half_dtype, tiling_kwargs
from wan_nb.strategies.structural import STRUCTURAL
from wan_nb.vocabulary import CONFLICTS, parse_strategy

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


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (*CATALOGUE, *STRUCTURAL)}

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


def get_strategy(name: str | Strategy) -> Strategy:
    """The :class:`Strategy` for ``name``; ``"a+b"`` combines them in that order."""
    if isinstance(name, Strategy):
        return name
    parts = parse_strategy(name, known=tuple(STRATEGIES))
    return combine([STRATEGIES[p] for p in parts])
