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
