"""The words of a diagnosis: its one-line summary, the strategies to try, the next steps.

Kept apart from the rules (what and where): these only phrase what the rules found. The
``Try:`` list leaves out what :func:`wan_nb.plan` would skip for the same failure, so the
advice and the plan agree.
"""

from __future__ import annotations

import re

from wan_nb.units import format_bytes
from wan_nb.vocabulary import STRATEGY_NAMES

_STAGE_WORDS = {
    "load": "while loading the model", "to_device": "while moving the model to the device",
    "text_encode": "during text encoding", "preprocess": "while preparing the input image or video",
    "denoise": "during denoising", "vae_decode": "during VAE decode",
    "vae_encode": "during VAE encode", "postprocess": "while post-processing the video", "unknown": "",
}


def _during(stage: str, component: str | None) -> str:
    if stage == "unknown":
        return ""
    return f" {_STAGE_WORDS[stage]}" + (f" ({component})" if component else "")


def _size(evidence: dict, key: str) -> str | None:
    value = evidence.get(key)
    return format_bytes(value) if isinstance(value, (int, float)) else None


def _device_words(device: str) -> str:
    if device.startswith(("cuda", "hip")):
        return f"GPU ({device})"
    if device == "mps":
        return "Apple GPU (mps)"
    if device.startswith("cpu"):
        return "memory budget on the CPU" if "budget" in device else "CPU"
    return f"accelerator ({device})" if device else "accelerator"


def summary(category: str, stage: str, component: str | None, ev: dict) -> str:
    during = _during(stage, component)
    if category == "out_of_memory":
        device = _device_words(str(ev.get("device", "")))
        tried, free, total = _size(ev, "tried_to_allocate"), _size(ev, "free"), _size(ev, "total_capacity")
        detail = f": it asked for {tried} more" if tried else ""
        if tried and total:
            detail += f" with {free} free of {total}" if free else f" of {total} in all"
        if "budget" in device:
            return f"The run went over its memory budget{during}{detail}."
        return f"The {device} ran out of memory{during}{detail}."
    if category == "host_out_of_memory":
        tried = _size(ev, "tried_to_allocate")
        return f"The machine ran out of CPU RAM{during}" + (f" (asked for {tried})." if tried else ".")
    if category == "pipeline_unavailable":
        name = ev.get("missing_class") or ev.get("missing_module") or "the pipeline class"
        version = ev.get("installed_diffusers")
        return f"The installed diffusers{' ' + str(version) if version else ''} does not provide {name}."
    if category == "version_mismatch":
        if ev.get("unexpected_keyword"):
            return (f"The installed library does not accept `{ev['unexpected_keyword']}`: it is older (or newer) "
                    f"than the code or checkpoint expects.")
        if ev.get("package") and ev.get("missing_module"):
            return (f"The installed {ev['package']} has no module {ev['missing_module']}: it is another release than "
                    f"the code importing it was written for{during}.")
        return f"The checkpoint or code expects a different library version{during}."
    if category == "component_missing" and ev.get("unloadable_class"):
        return (f"model_index.json names {ev['unloadable_class']} for {component or 'a component'}, which diffusers "
                "cannot load: it loads concrete model, tokenizer, scheduler and processor classes, not a factory.")
    if category == "component_missing" and ev.get("missing_module"):
        return f"The app's own module {ev['missing_module']} is missing{during}."
    if category == "component_missing":
        what = ev.get("missing_file") or "a file"
        where = ev.get("missing_path")
        return f"{what} is missing" + (f" in {where}" if where and where != what else "") + f"{during}."
    if category == "weights_corrupt":
        file = ev.get("file")
        return "A weights or config file is damaged or incomplete" + (f" ({file})." if file else ".")
    if category == "device_mismatch":
        devices = f" ({ev['devices']})" if ev.get("devices") else ""
        return f"Tensors on different devices{devices} met{during}: part of the pipeline is not where the rest is."
    if category == "dtype_mismatch" and ev.get("dtypes") == "float8":
        return f"The weights use an fp8 dtype this device has no kernels for{during}."
    if category == "dtype_mismatch":
        dtypes = f" ({ev['dtypes']})" if ev.get("dtypes") else ""
        return f"Tensors of different dtypes{dtypes} met{during}."
    if category == "missing_dependency" and ev.get("node_pack"):
        return f"The ComfyUI node pack {ev['node_pack']} is not installed; another node pack imports it{during}."
    if category == "missing_dependency":
        package = ev.get("missing_package")
        needed = f"; it was needed{during}" if during else ""
        return f"The package {package} is not installed{needed}." if package else \
            f"A package or program the pipeline needs is missing{during}."
    if category == "accelerator_unavailable":
        if re.search(r"no ke[rm]n?el image|invalid device function", str(ev.get("message", "")), re.I):
            return (f"This PyTorch build (or an extension it runs) has no kernels for this GPU{during}: an "
                    "unsupported accelerator, not a fault.")
        return "The accelerator the code asks for is not available to this PyTorch installation."
    if category == "accelerator_fault":
        return f"The accelerator reported a fault{during}; its context is unusable until the kernel restarts."
    if category == "invalid_input":
        return f"The pipeline rejected its arguments: {ev.get('message', 'see the message')}"
    if category == "user_code":
        return f"The error comes from the notebook's own code ({ev.get('exception_type', 'error')})."
    return "wan_nb could not tell what this error is" + (f" ({ev['exception_type']})." if ev.get(
        "exception_type") else ".")


_OOM_ORDER = {
    "vae_decode": ("vae_tiling", "vae_slicing", "model_cpu_offload", "group_offload", "sequential_cpu_offload",
                   "lower_resolution", "fewer_frames"),
    "vae_encode": ("vae_tiling", "vae_slicing", "model_cpu_offload", "group_offload", "lower_resolution"),
    "denoise": ("group_offload", "model_cpu_offload", "layerwise_fp8", "sequential_cpu_offload", "quantize_int8",
                "quantize_nf4", "fewer_frames", "lower_resolution"),
    "text_encode": ("text_encoder_cpu", "model_cpu_offload", "group_offload", "sequential_cpu_offload"),
    "load": ("model_cpu_offload", "group_offload", "half_precision", "layerwise_fp8", "quantize_int8",
             "quantize_nf4", "text_encoder_cpu", "sequential_cpu_offload", "balanced_device_map"),
    "to_device": ("model_cpu_offload", "group_offload", "half_precision", "layerwise_fp8", "text_encoder_cpu",
                  "sequential_cpu_offload", "quantize_int8", "balanced_device_map"),
    "postprocess": ("fewer_frames", "lower_resolution"),
    "preprocess": ("model_cpu_offload", "group_offload", "lower_resolution"),
    "unknown": ("model_cpu_offload", "vae_tiling", "group_offload", "layerwise_fp8", "sequential_cpu_offload",
                "fewer_frames", "lower_resolution"),
}
_HOST_ORDER = {
    "vae_decode": ("vae_tiling", "vae_slicing", "fewer_frames", "lower_resolution"),
    "vae_encode": ("vae_tiling", "vae_slicing", "lower_resolution"),
    "postprocess": ("fewer_frames", "lower_resolution"),
}
_SUGGEST = {
    "host_out_of_memory": ("half_precision", "quantize_int8", "quantize_nf4", "layerwise_fp8", "alternative_model"),
    "pipeline_unavailable": ("assemble_components", "generic_pipeline", "upgrade_library", "remote_code"),
    "version_mismatch": ("upgrade_library", "assemble_components", "generic_pipeline"),
    "component_missing": ("component_donor", "redownload", "alternative_model"),
    "weights_corrupt": ("redownload", "component_donor", "alternative_model"),
}


# What wan_nb.plan() does not run on what a diagnosis alone shows (diffusers' defaults: one
# video in bfloat16; no consent given to change the output or run a folder's code; guidance
# it never carries out itself). The plan lists them as skipped, so "Try:" leaves them out and
# the next steps say what to do by hand. tests/test_diagnose_real.py holds the two to agreement.
_PLAN_SKIPS = frozenset({
    "vae_slicing",  # no effect on a single video
    "half_precision",  # the pipeline already runs in bfloat16
    "fewer_frames", "lower_resolution",  # change the output: only with allow_degraded=True
    "remote_code",  # only with allow_remote_code=True
    "upgrade_library", "redownload", "alternative_model",  # guidance: wan_nb never installs or downloads
})
_NEEDS_ACCELERATOR = frozenset({"model_cpu_offload", "group_offload", "sequential_cpu_offload", "text_encoder_cpu",
                                "quantize_int8", "quantize_nf4", "balanced_device_map"})
_NEEDS_CUDA = frozenset({"quantize_int8", "quantize_nf4"})  # bitsandbytes


def suggest(category: str, stage: str, ev: dict) -> tuple[str, ...]:
    if category == "out_of_memory":
        names = _OOM_ORDER.get(stage, _OOM_ORDER["unknown"])
    elif category == "host_out_of_memory":
        names = _HOST_ORDER.get(stage, _SUGGEST["host_out_of_memory"])
    elif category == "pipeline_unavailable" and ev.get("diffusers_too_old") == "yes":
        names = ("upgrade_library", "assemble_components", "generic_pipeline")
    elif category in ("version_mismatch", "component_missing") and ev.get("missing_module"):
        names = ()  # a Python module an import misses: no way of building the pipeline changes that
    else:
        names = _SUGGEST.get(category, ())
    device = str(ev.get("device", ""))
    dropped = set(_PLAN_SKIPS)
    if device.startswith("cpu"):
        dropped |= _NEEDS_ACCELERATOR  # the failure was on the CPU: the plan skips what needs a GPU
    elif device and not device.startswith(("cuda", "hip")):
        dropped |= _NEEDS_CUDA
    return tuple(n for n in names if n in STRATEGY_NAMES and n not in dropped)


def next_steps(category: str, stage: str, component: str | None, ev: dict) -> tuple[str, ...]:
    steps: list[str] = []
    if category == "out_of_memory":
        if stage == "vae_decode":
            steps.append("Call pipe.vae.enable_tiling() (and enable_slicing()) before running the pipeline again.")
            if "comfyui" in str(ev.get("wrapper", "")):
                steps.append("In ComfyUI, decode with the 'VAE Decode (Tiled)' node instead.")
        elif stage == "text_encode":
            steps.append("Encode the prompt with the text encoder on the CPU, or enable model CPU offload.")
        else:
            steps.append("Enable pipe.enable_model_cpu_offload() or group offloading instead of pipe.to(device).")
        if isinstance(ev.get("reserved_unallocated"), int) and isinstance(ev.get("tried_to_allocate"), int) and \
                ev["reserved_unallocated"] >= ev["tried_to_allocate"]:
            steps.append("Memory is fragmented: set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True before "
                         "torch starts.")
        steps.append("Free memory from the failed run first (del the outputs, gc.collect(), torch.cuda.empty_cache()).")
        steps.append("If it still does not fit, lower the resolution or the number of frames.")
    elif category == "host_out_of_memory":
        steps.append("Load the weights in bfloat16 (torch_dtype=torch.bfloat16) so less CPU RAM is needed.")
        steps.append("Close other notebooks or processes holding RAM, or add swap; a killed kernel must be restarted.")
    elif category == "pipeline_unavailable":
        name = ev.get("missing_class", "the class")
        if ev.get("required_diffusers"):
            steps.append(f"{name} needs diffusers >= {ev['required_diffusers']}: pip install -U diffusers, "
                         "then restart the kernel.")
        else:
            steps.append(f"Check the spelling of {name} (and `_class_name` in model_index.json), or upgrade "
                         "diffusers: pip install -U diffusers.")
        steps.append("Or load the components one by one and assemble the pipeline from them.")
    elif category == "version_mismatch":
        if ev.get("program") == "ffmpeg":
            steps.append("Install a current ffmpeg (or point the video writer at imageio-ffmpeg's bundled one): the "
                         "one found is older than the options it is given.")
        if ev.get("required_diffusers"):
            steps.append(f"This needs diffusers >= {ev['required_diffusers']}: pip install -U diffusers, then "
                         "restart the kernel.")
        elif ev.get("package") and ev.get("missing_module"):
            steps.append(f"Install the release of {ev['package']} that the code importing {ev['missing_module']} was "
                         "written for (its requirements file names it), then restart the kernel.")
        else:
            steps.append("Upgrade the libraries named in the error (pip install -U diffusers transformers), then "
                         "restart the kernel.")
        if not ev.get("missing_module"):
            steps.append("Check that the checkpoint matches the model: a Wan 2.2 checkpoint needs Wan 2.2 classes.")
    elif category == "component_missing" and ev.get("unloadable_class"):
        name = component or "the component"
        steps.append(f"In model_index.json, replace {ev['unloadable_class']} for {name} by the concrete class (for a "
                     "tokenizer, the `tokenizer_class` of its tokenizer_config.json, e.g. T5TokenizerFast).")
        steps.append(f"Or load it yourself and pass it: `from_pretrained(path, {name}="
                     f"{ev['unloadable_class']}.from_pretrained(path, subfolder={name!r}))`.")
    elif category == "component_missing" and ev.get("missing_module"):
        folder = str(ev["missing_module"]).split(".")[0]
        steps.append(f"Run the app from its own folder (the one holding {folder}/), or reinstall it: its own module "
                     f"{ev['missing_module']} is missing or not where it is imported from.")
    elif category == "component_missing":
        what = component or ev.get("missing_file") or "the component"
        if component is None and ev.get("missing_file") in ("config.json", "model_index.json"):
            steps.append(f"Compare the folder {ev.get('missing_path', '')} with its model_index.json: a component's "
                         "folder (or its config) is missing; download the model again or point at the right folder.")
        else:
            steps.append(f"Download {what} again, or point the loader at the folder that holds it.")
        steps.append("Or take the component from a compatible model that has it (same architecture).")
    elif category == "weights_corrupt":
        steps.append("Delete the damaged file and download it again (check its size against the hub listing).")
        steps.append("A few hundred bytes that start with 'version https://git-lfs' mean git-lfs was not used: "
                     "run `git lfs pull` or use huggingface-cli download.")
    elif category == "device_mismatch":
        steps.append("Move the whole pipeline to one device (pipe.to('cuda')) or use enable_model_cpu_offload(); "
                     "do not move single components by hand.")
        steps.append("Create generators and inputs on the pipeline's device, or pass them on the CPU.")
    elif category == "dtype_mismatch":
        if re.search(r"float8|fp8", str(ev.get("message", "")) + str(ev.get("dtypes", "")), re.I):
            steps.append("This GPU lacks fp8 (e4m3) kernels (they need an RTX 40xx/Ada, Hopper or newer): load the "
                         "weights in bfloat16 or float16, or pick fp8_e5m2 where the loader offers it.")
        steps.append("Load every component with the same torch_dtype (e.g. torch.bfloat16) and pass inputs in that "
                     "dtype.")
        steps.append("On a CPU, use torch.float32 or bfloat16: many CPU kernels lack float16.")
    elif category == "missing_dependency" and ev.get("node_pack"):
        steps.append(f"Install the node pack {ev['node_pack']} into ComfyUI's custom_nodes (ComfyUI-Manager, or git "
                     "clone it there), then restart ComfyUI.")
    elif category == "missing_dependency":
        package = ev.get("missing_package")
        steps.append(f"pip install {package}, then restart the kernel." if package else
                     "Install the package or program the error names, then restart the kernel.")
    elif category == "accelerator_unavailable":
        if re.search(r"no ke[rm]n?el image|invalid device function", str(ev.get("message", "")), re.I):
            steps.append("The installed PyTorch (or an extension it runs, such as SageAttention or flash-attn) has no "
                         "kernels for this GPU: install a build for its architecture (RTX 50xx needs CUDA 12.8 "
                         "wheels; on AMD, a ROCm build for the card's gfx target).")
        steps.append("Check torch.cuda.is_available() (or torch.backends.mps.is_available()); install a PyTorch "
                     "build for your GPU and driver.")
        steps.append("Without an accelerator, run on the CPU with a small resolution and few frames.")
    elif category == "accelerator_fault":
        steps.append("Restart the kernel: after this error the accelerator's context cannot be used again.")
        steps.append("Rerun with CUDA_LAUNCH_BLOCKING=1 to find the operation that failed; check indices, "
                     "driver and GPU health.")
    elif category == "invalid_input":
        message, rule = str(ev.get("message", "")), str(ev.get("rule", ""))
        if "latent_channels" in ev:
            steps.append("Load the model that matches the workflow: an image-to-video checkpoint (Wan 2.1 I2V takes "
                         "36 input channels) when an image conditions the video, a text-to-video one (16) when none "
                         "does.")
        elif "got_channels" in ev:
            steps.append('Convert the image to RGB before passing it: image = image.convert("RGB") (a PNG with '
                         "transparency has 4 channels, a greyscale one 1).")
        elif "export_to_video" in rule:
            steps.append('Pass export_to_video the frames first and the file name second: '
                         'export_to_video(output.frames[0], "out.mp4", fps=16).')
        elif "is invalid for input of size" in message:
            steps.append("Use a height and width that split into the model's patches: multiples of 16 for Wan "
                         "(32 for Wan 2.2 TI2V-5B); the same for every frame of a control video.")
        elif "wrong type" in rule:
            steps.append("Pass the image as a PIL.Image (diffusers.utils.load_image(path)) or a tensor, not a path, "
                         "an array of another layout or a list.")
        steps.append("Fix the argument the message names (Wan: height and width divisible by 16, "
                     "num_frames of the form 4k+1).")
    elif category == "user_code":
        steps.append("Fix the notebook cell the traceback points to; the pipeline itself did not fail.")
    elif "interrupted" in str(ev.get("reason", "")):
        steps.append("Nothing failed: the run was stopped by hand. Run the cell again when ready.")
    else:
        steps.append("Read the full traceback; if it came from a library, search its issue tracker for the "
                     "last line.")
    return tuple(steps)
