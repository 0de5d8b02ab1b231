"""The words wan_nb, its tests, its JSON and its users share (see DESIGN.md).

They are plain strings so that reports round-trip through JSON unchanged.
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "out_of_memory",
    "host_out_of_memory",
    "pipeline_unavailable",
    "version_mismatch",
    "component_missing",
    "weights_corrupt",
    "device_mismatch",
    "dtype_mismatch",
    "missing_dependency",
    "accelerator_unavailable",
    "accelerator_fault",
    "invalid_input",
    "user_code",
    "unknown",
)

STAGES: tuple[str, ...] = (
    "load",
    "to_device",
    "text_encode",
    "preprocess",  # the input image or video made ready for encoding (resize, convert, read)
    "denoise",
    "vae_decode",
    "vae_encode",
    "postprocess",
    "unknown",
)

STRATEGY_KINDS: tuple[str, ...] = (
    "optimization_fallback",
    "pipeline_substitution",
    "component_isolation",
    "alternative_model",
    "reduced_functionality",
)

COMPONENT_STATUSES: tuple[str, ...] = ("ok", "missing", "corrupt", "unavailable", "optional")

# Strategy names (snake_case nouns). Memory strategies compose with "+", e.g.
# "model_cpu_offload+vae_tiling".
MEMORY_STRATEGIES: tuple[str, ...] = (
    "vae_tiling",
    "vae_slicing",
    "model_cpu_offload",
    "group_offload",
    "sequential_cpu_offload",
    "layerwise_fp8",
    "half_precision",
    "text_encoder_cpu",
    "quantize_int8",
    "quantize_nf4",
    "balanced_device_map",
    "vae_on_cpu",
)
DEGRADED_STRATEGIES: tuple[str, ...] = ("fewer_frames", "lower_resolution")
STRUCTURAL_STRATEGIES: tuple[str, ...] = (
    "generic_pipeline",
    "assemble_components",
    "upgrade_library",
    "remote_code",
    "component_donor",
    "redownload",
    "alternative_model",
)
STRATEGY_NAMES: tuple[str, ...] = MEMORY_STRATEGIES + DEGRADED_STRATEGIES + STRUCTURAL_STRATEGIES
# Strategies that each decide where the models live: two of them never stack.
PLACEMENT_STRATEGIES: tuple[str, ...] = ("model_cpu_offload", "group_offload", "sequential_cpu_offload",
                                         "balanced_device_map")
_QUANT = ("quantize_int8", "quantize_nf4")


def _conflicts() -> dict[frozenset[str], str]:
    out: dict[frozenset[str], str] = {}
    for i, a in enumerate(PLACEMENT_STRATEGIES):
        for b in PLACEMENT_STRATEGIES[i + 1 :]:
            out[frozenset((a, b))] = (
                f"`{a}` and `{b}` both decide where the models live; diffusers refuses to stack "
                "one placement hook on another. Pick one."
            )
    out[frozenset(_QUANT)] = "`quantize_int8` and `quantize_nf4` are two precisions for the same weights; pick one."
    for q in _QUANT:
        out[frozenset(("layerwise_fp8", q))] = f"`layerwise_fp8` casts weights that `{q}` has already quantized; pick one."
        out[frozenset(("half_precision", q))] = (
            f"`{q}` already loads the rest of the pipeline in 16 bits; `half_precision` adds nothing."
        )
    for p in PLACEMENT_STRATEGIES:
        out[frozenset(("vae_on_cpu", p))] = (
            f"`{p}` places the VAE itself (it moves it to the accelerator for the decode), undoing `vae_on_cpu`; "
            "pick one."
        )
    for o in ("model_cpu_offload", "sequential_cpu_offload"):
        out[frozenset(("text_encoder_cpu", o))] = (
            f"`{o}` moves the text encoder to the accelerator while it encodes, undoing `text_encoder_cpu`; "
            "the offload already keeps it off the accelerator the rest of the time."
        )
    return out


# Pairs that cannot work together, with the reason a user reads.
CONFLICTS: dict[frozenset[str], str] = _conflicts()


def parse_strategy(name: object, *, known: tuple[str, ...] = STRATEGY_NAMES, allow_none: bool = False,
                   kind: str = "strategy") -> tuple[str, ...]:
    """``"a+b"`` -> ``("a", "b")``, checked: names in ``known``, no repeats, no conflicts.

    The one parser of strategy names: the catalogue uses it with every name, the estimator
    with the ones it models (and ``allow_none`` for ``None``/``"none"`` -> ``()``).
    """
    if name is not None and not isinstance(name, str):
        name = getattr(name, "name", None) or name  # a Strategy object
    if name is None or (isinstance(name, str) and name.strip() in ("", "none")):
        if allow_none:
            return ()
        raise ValueError(f"A strategy name is a non-empty string such as 'vae_tiling', got {name!r}.")
    if not isinstance(name, str):
        raise TypeError(f"A strategy is a name such as 'vae_tiling' or 'a+b', got {type(name).__name__}.")
    parts = tuple(p.strip() for p in name.split("+"))
    for part in parts:
        if part not in known:
            none = "none, " if allow_none else ""
            raise ValueError(f"Unknown {kind} `{part}` in {name!r}. Valid {kind.replace('strategy', 'strategies')}: {none}{', '.join(known)} "
                             "(combine with '+').")
    if len(parts) > 1:
        alone = [p for p in parts if p in STRUCTURAL_STRATEGIES]
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


# Kinds of device a torch device string may name ("cuda:1", "mps", ...).
DEVICE_KINDS: tuple[str, ...] = ("cpu", "cuda", "xpu", "mps", "npu", "hpu", "mtia", "privateuseone")


def check_device(device: object, argument: str = "device") -> str:
    """``device`` as a string if torch would accept it as a device, else a ValueError naming ``argument``."""
    text = str(device).strip() if device is not None else ""  # a torch.device prints as "cuda:1"
    kind, _, index = text.partition(":")
    if kind not in DEVICE_KINDS or (index and not index.isdigit()):
        raise ValueError(f"`{argument}` must be a torch device such as 'cuda', 'cuda:1', 'mps' or 'cpu', got {device!r}.")
    return text
