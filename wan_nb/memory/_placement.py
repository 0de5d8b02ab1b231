"""Which weights are on the device in each stage of a call, under each placement strategy (offloads, device maps)."""

from __future__ import annotations

from wan_nb.memory._weights import _Weights
from wan_nb.vocabulary import PLACEMENT_STRATEGIES


def placement(
    parts: tuple[str, ...],
    weights: dict[str, _Weights],
    stages: list[str],
    image_to_video: bool,
    on_cpu: bool,
    device: str,
) -> tuple[dict[str, int], int, list[str]]:
    """Weights on the device in each stage, those there before the call, and what was assumed."""
    total = sum(w.total for w in weights.values())
    runner = {  # the model whose forward makes each stage
        "text_encode": [n for n in weights if n.startswith(("text_encoder", "image_encoder"))],
        "vae_encode": ["vae"],
        "denoise": [n for n in weights if n.startswith("transformer")],
        "vae_decode": ["vae"],
        "postprocess": [],
    }
    placement = next((p for p in parts if p in PLACEMENT_STRATEGIES), None)
    notes: list[str] = []
    if on_cpu:
        if placement or "text_encoder_cpu" in parts:
            notes.append("On the CPU every model lives in the same memory: offloading moves nothing out of it.")
        return dict.fromkeys(stages, total), total, notes

    if placement is None:
        on_device = total - sum(w.total for n, w in weights.items() if n.startswith("text_encoder") and "text_encoder_cpu" in parts)
        if "vae_on_cpu" in parts and "vae" in weights:
            on_device -= weights["vae"].total
        if "text_encoder_cpu" in parts:
            notes.append("text_encoder_cpu: the text encoder never reaches the device; the embeddings do.")
        return dict.fromkeys(stages, on_device), on_device, notes

    if placement == "model_cpu_offload":
        # accelerate's chained hooks: calling a model onloads it and offloads the one before it
        # in model_cpu_offload_seq. Out-of-order calls (the I2V pipeline's vae.encode before the
        # transformer) leave models behind, as they do in diffusers.
        order = [n for n in ("text_encoder", "image_encoder", "transformer", "transformer_2", "vae") if n in weights]
        calls = [("text_encode", n) for n in runner["text_encode"]]
        if image_to_video:
            calls.append(("vae_encode", "vae"))
        calls += [("denoise", n) for n in runner["denoise"]] + [("vae_decode", "vae"), ("postprocess", None)]
        on: set[str] = set()
        resident = dict.fromkeys(stages, 0)
        for stage, model in calls:
            if model is not None:
                on.add(model)
                i = order.index(model)
                if i > 0:
                    on.discard(order[i - 1])
            if stage in resident:
                resident[stage] = max(resident[stage], sum(weights[n].total for n in on))
        notes.append("model_cpu_offload: one model on the device at a time, moved there when it runs (accelerate's hooks).")
        return resident, 0, notes

    if placement == "group_offload":
        # Block-level groups of one block; with CUDA streams (wan_nb uses them on CUDA only)
        # the next block is prefetched while this one runs.
        prefetch = 2 if device.startswith("cuda") else 1
        resident = dict.fromkeys(stages, 0)
        for stage in stages:
            for name in runner[stage]:
                w = weights[name]
                half = w.halves.get("decoder" if stage == "vae_decode" else "encoder") if w.halves else None
                if half:  # the VAE by the block lists of the half that runs
                    need = half[0] + prefetch * max(half[1:], default=0)
                else:
                    need = w.unmatched + prefetch * max(w.blocks, default=0) if w.blocks else w.total
                resident[stage] = max(resident[stage], need)
        notes.append(
            f"group_offload (block level, one block per group{', CUDA streams' if prefetch == 2 else ''}): the "
            f"running model's non-block weights plus {prefetch} block(s); the T5/UMT5 text encoder by its "
            "encoder blocks (block_modules), its embedding always on; the VAE by the up/down blocks of the half "
            "that runs (diffusers' block_modules for AutoencoderKLWan)."
        )
        return resident, 0, notes

    if placement == "sequential_cpu_offload":
        resident = dict.fromkeys(stages, 0)
        for stage in stages:
            resident[stage] = max((weights[n].largest_leaf for n in runner[stage]), default=0)
        notes.append("sequential_cpu_offload: one module's weights on the device at a time (the largest counted).")
        return resident, 0, notes

    # balanced_device_map: the transformer(s) on one GPU, the other models on another; the
    # busiest GPU's figure is reported.
    denoisers = sum(w.total for n, w in weights.items() if n.startswith("transformer"))
    rest = total - denoisers
    resident = {s: (denoisers if s == "denoise" else rest) for s in stages}
    notes.append(
        "balanced_device_map: assumed two GPUs, the transformer(s) on one and the other models on the other; "
        "figures are for the GPU each stage runs on."
    )
    return resident, max(denoisers, rest), notes
