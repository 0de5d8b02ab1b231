"""The rules that turn a parsed error into a category, a stage, a component and evidence.

Order matters and is deliberate: the exception's *meaning* is decided by specific phrases
the libraries print, never by a lone word. "CUDA error: out of memory" is an OOM,
"CUDA error: device-side assert triggered" is not, and a message that merely mentions
CUDA (as torch's "CUDA kernel errors might be asynchronously reported" trailer does) is
neither until a rule says so. The stage comes from the frames (deepest specific frame
wins), then from what the message or log names (ComfyUI node types and popups, SD.Next's
"Encode:"/"Decode:" lines, progress bars, "Loading checkpoint shards").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from wan_nb.diagnosis.tracetext import Frame, ParsedError, ParsedText
from wan_nb.units import parse_bytes

_I = re.IGNORECASE

COMPONENTS = ("transformer_2", "transformer", "text_encoder", "image_encoder", "image_processor",
              "tokenizer", "scheduler", "vae")

# Class names wan_nb knows, with the first diffusers release that has them (DESIGN.md).
CLASS_SINCE = {
    "WanPipeline": "0.33.0", "WanImageToVideoPipeline": "0.33.0", "WanVideoToVideoPipeline": "0.33.0",
    "WanTransformer3DModel": "0.33.0", "AutoencoderKLWan": "0.33.0",
    "WanVACEPipeline": "0.34.0", "WanVACETransformer3DModel": "0.34.0",
    "WanAnimatePipeline": "0.36.0", "WanAnimateTransformer3DModel": "0.36.0",
}
# Keyword arguments that only exist from a given diffusers release on (Wan 2.2 arrived in 0.35).
KWARG_SINCE = {
    "guidance_scale_2": "0.35.0", "boundary_ratio": "0.35.0", "expand_timesteps": "0.35.0",
    "transformer_2": "0.35.0", "last_image": "0.34.0",
}
# Names that, undefined inside a library, mean an optional package was not installed
# (diffusers does "if is_ftfy_available(): import ftfy" and uses ftfy later).
KNOWN_PACKAGES = frozenset({
    "ftfy", "imageio", "imageio_ffmpeg", "cv2", "sentencepiece", "accelerate", "peft", "bitsandbytes",
    "flash_attn", "xformers", "sageattention", "decord", "av", "einops", "easydict", "bs4",
    "torchvision", "safetensors", "gguf", "optimum", "torchao", "triton", "librosa", "soundfile",
    "regex", "protobuf", "google", "onnxruntime", "mmgp", "moviepy", "dashscope",
})
_CLASS_TO_COMPONENT = [
    (re.compile(r"\w*Tokenizer\w*|\btokenizer\b", _I), "tokenizer"),
    (re.compile(r"AutoencoderKL\w*|\bVAE\w*|\w*VAE\b|vae_\w+|\bvae\b", _I), "vae"),
    (re.compile(r"transformer_2\b|high.?noise|low.?noise", _I), "transformer_2"),
    (re.compile(r"\w*Transformer3DModel\b|\bWanModel\b|\bUNET\w*|\bdiffusion_model\b|\btransformer\b", _I),
     "transformer"),
    (re.compile(r"\w*(?:UMT5|T5)EncoderModel\b|\btext_encoder\b|\bumt5\w*|\bt5\w*\b|CLIPLoader|CLIPTextEncode\w*",
                _I), "text_encoder"),
    (re.compile(r"CLIPVision\w*|\bimage_encoder\b", _I), "image_encoder"),
    (re.compile(r"\w*Scheduler\b|\bscheduler\b", _I), "scheduler"),
]


@dataclass
class Finding:
    category: str
    rule: str
    facts: dict[str, str | int | float] = field(default_factory=dict)


# --- helpers ---------------------------------------------------------------------------------

_TYPE_BASES = {
    "ModuleNotFoundError": ("ImportError",), "FileNotFoundError": ("OSError",),
    "NotADirectoryError": ("OSError",), "IsADirectoryError": ("OSError",), "PermissionError": ("OSError",),
    "EnvironmentError": ("OSError",), "IOError": ("OSError",), "OutOfMemoryError": ("RuntimeError",),
    "UnboundLocalError": ("NameError",), "IndentationError": ("SyntaxError",), "TabError": ("SyntaxError",),
    "_ArrayMemoryError": ("MemoryError",), "JSONDecodeError": ("ValueError",),
}


def is_type(err: ParsedError, *names: str) -> bool:
    short = err.short_type
    known = {short, *err.bases, *_TYPE_BASES.get(short, ())}
    return any(n in known for n in names)


def raised_in_user_code(err: ParsedError) -> bool:
    """The deepest frame is a notebook cell: nothing in a library ran below it."""
    frames = [f for f in err.frames if not _WRAPPER_PATH.search(f.path)]
    return bool(frames) and frames[-1].is_user


def in_users_script(err: ParsedError) -> bool:
    """Every frame is in one script run as the program (``<module>`` first), none in a library.

    That is the user's own script (``python run.py``): a NameError there is their code's,
    not a package's. An application (a launcher importing its app, a web UI) spans files.
    """
    frames = [f for f in err.frames if not _WRAPPER_PATH.search(f.path)]
    if not frames or frames[0].name != "<module>" or any(_LIBRARY_PATH.search(f.path) for f in frames):
        return False
    return len({f.path for f in frames}) == 1 and not frames[0].path.startswith("<frozen")


def looks_like_library_class(name: str) -> bool:
    return bool(re.fullmatch(r"(?:Wan|AutoencoderKL|UMT5|T5|CLIP)\w*|\w*(?:Pipeline|Model|Scheduler|Tokenizer"
                             r"|Processor|Mixin)", name))


# Frames that only forward a call (decorators, torch's module call machinery, hooks).
_WRAPPER_PATH = re.compile(r"/torch/utils/_contextlib\.py$|/contextlib\.py$|/functools\.py$|"
                           r"/torch/nn/modules/module\.py$|/accelerate/hooks\.py$|/diffusers/hooks/|"
                           r"/huggingface_hub/utils/_validators\.py$|/torch/_dynamo/|/torch/utils/checkpoint\.py$")


# --- evidence: allocator numbers, devices, dtypes, versions -----------------------------------

_SIZE = r"(\d+(?:\.\d+)?)\s*(bytes|[KMGT]i?B|B)\b"
_TRIED = re.compile(r"(?:tried|trying) to allocate\s+" + _SIZE, _I)
_NEW_CAPACITY = re.compile(r"GPU (\d+) has a total capacit(?:y|ies) of\s+" + _SIZE +
                           r"(?:\s+of which\s+" + _SIZE + r"\s+is free)?", _I)
_PROCESS_USE = re.compile(r"this process has\s+" + _SIZE + r" memory in use", _I)
_OTHER_PROCESS = re.compile(r"Process \d+ has\s+" + _SIZE + r" memory in use", _I)
_ALLOC_SPLIT = re.compile(r"Of the allocated memory\s+" + _SIZE + r" is allocated by PyTorch,\s*(?:with\s+"
                          + _SIZE + r" allocated in private pools[^,]*,\s*)?and\s+" + _SIZE
                          + r" is reserved by PyTorch but unallocated", _I)
_OLD_CAPACITY = re.compile(r"\((?:GPU|device) (\d+);\s*" + _SIZE + r" total capacity;\s*" + _SIZE +
                           r" already allocated;\s*" + _SIZE + r" free;\s*(?:" + _SIZE + r" allowed;\s*)?"
                           + _SIZE + r" reserved in total by PyTorch", _I)
_MPS = re.compile(r"MPS allocated:\s*" + _SIZE + r",\s*other allocations:\s*" + _SIZE +
                  r",\s*max allowed:\s*" + _SIZE, _I)
_BUDGET = re.compile(r"budget(?: of| is|:|=)?\s+" + _SIZE, _I)
_EXACT_BYTES = re.compile(r"\s*\((\d+) bytes\)")
_IN_USE = re.compile(r"(?:in use|already (?:allocated|in use)|live)(?: of| is|:|=)?\s+" + _SIZE, _I)
_COMFY_REQUESTED = re.compile(r"Requested\s*:\s*" + _SIZE, _I)
_COMFY_LIMIT = re.compile(r"Device limit\s*:\s*" + _SIZE, _I)
_COMFY_ALLOCATED = re.compile(r"Currently allocated\s*:\s*" + _SIZE, _I)
_CPU_BYTES = re.compile(r"you tried to allocate (\d+) bytes", _I)
_NUMPY_ALLOC = re.compile(r"Unable to allocate\s+" + _SIZE + r" for an array", _I)
_DEVICE_OF_OOM = [
    (re.compile(r"\bHIP out of memory|hipErrorOutOfMemory|HIP error: out of memory", _I), "hip"),
    (re.compile(r"\bMPS backend out of memory|\bMPS\b.*out of memory", _I), "mps"),
    (re.compile(r"\bXPU out of memory", _I), "xpu"),
    (re.compile(r"\bNPU out of memory", _I), "npu"),
    (re.compile(r"budget", _I), "cpu (memory budget)"),
    (re.compile(r"not enough GPU video memory", _I), "directml"),
    (re.compile(r"\bCUDA\b|Allocation on device|CUBLAS|CUDNN|\bGPU\b", _I), "cuda"),
]


def _bytes(number: str, unit: str, *, binary: bool = False) -> int:
    unit = unit.strip()
    if unit.lower() == "bytes":
        return int(float(number))
    if binary and unit[-2:].upper() in ("KB", "MB", "GB", "TB") and "i" not in unit:
        unit = unit[0] + "iB"  # MPS prints binary sizes with decimal names
    try:
        return parse_bytes(f"{number}{unit}")
    except ValueError:
        return 0


def oom_numbers(message: str) -> dict[str, str | int | float]:
    """The allocator's own numbers, in bytes, plus the device it names."""
    facts: dict[str, str | int | float] = {}
    mps = _MPS.search(message)
    m = _TRIED.search(message)
    if m:
        facts["tried_to_allocate"] = _bytes(m[1], m[2], binary=bool(mps))
    if mps:
        facts["allocated_by_pytorch"] = _bytes(mps[1], mps[2], binary=True)
        facts["other_allocations"] = _bytes(mps[3], mps[4], binary=True)
        facts["total_capacity"] = _bytes(mps[5], mps[6], binary=True)
    m = _NEW_CAPACITY.search(message)
    if m:
        facts["device_index"] = int(m[1])
        facts["total_capacity"] = _bytes(m[2], m[3])
        if m[4]:
            facts["free"] = _bytes(m[4], m[5])
    m = _OLD_CAPACITY.search(message)
    if m:
        facts["device_index"] = int(m[1])
        facts["total_capacity"] = _bytes(m[2], m[3])
        facts["allocated_by_pytorch"] = _bytes(m[4], m[5])
        facts["free"] = _bytes(m[6], m[7])
        facts["reserved_by_pytorch"] = _bytes(m[10], m[11])
    m = _PROCESS_USE.search(message)
    if m:
        facts["process_in_use"] = _bytes(m[1], m[2])
    others = [_bytes(a, b) for a, b in _OTHER_PROCESS.findall(message)]
    if others:
        facts["other_processes_in_use"] = sum(others)
    m = _ALLOC_SPLIT.search(message)
    if m:
        facts["allocated_by_pytorch"] = _bytes(m[1], m[2])
        facts["reserved_unallocated"] = _bytes(m[5], m[6])
    m = _BUDGET.search(message)
    if m:
        facts["budget"] = facts["total_capacity"] = _bytes(m[1], m[2])
        exact = _EXACT_BYTES.match(message, m.end())  # wan_nb's budget also prints the exact count
        if exact:
            facts["budget"] = facts["total_capacity"] = int(exact[1])
        m = _IN_USE.search(message)
        if m:
            facts["in_use"] = _bytes(m[1], m[2])
    for pattern, key in ((_COMFY_REQUESTED, "tried_to_allocate"), (_COMFY_LIMIT, "total_capacity"),
                         (_COMFY_ALLOCATED, "allocated_by_pytorch")):
        m = pattern.search(message)
        if m and key not in facts:
            facts[key] = _bytes(m[1], m[2])
    m = _CPU_BYTES.search(message) or _NUMPY_ALLOC.search(message)
    if m and "tried_to_allocate" not in facts:
        facts["tried_to_allocate"] = int(m[1]) if m.re is _CPU_BYTES else _bytes(m[1], m[2])
    for pattern, device in _DEVICE_OF_OOM:
        if pattern.search(message):
            index = facts.get("device_index")
            facts["device"] = f"{device}:{index}" if index is not None and device in ("cuda", "hip") else device
            break
    return facts


_VERSION_LINE = re.compile(r"`?\b(diffusers|transformers|torch|PyTorch|accelerate|huggingface_hub|safetensors)`?"
                           r"(?:\s+version)?\s*(?::|==|=|\s)\s*v?(\d+\.\d+(?:\.\d+)?(?:[.+\-]?\w+)*)", _I)


def versions_in_text(lines: list[str]) -> dict[str, str]:
    """Versions a report states, e.g. diffusers-cli env output: "- `diffusers` version: 0.32.2"."""
    found: dict[str, str] = {}
    for line in lines:
        if "ersion" not in line and "==" not in line:  # "version", "Version"; cheap before the regex
            continue
        for name, version in _VERSION_LINE.findall(line):
            key = "torch" if name.lower() == "pytorch" else name.lower()
            found.setdefault(f"installed_{key}", version)
    return found


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in re.split(r"[.+\-]", version)[:3]:
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits[0]))
    return tuple(parts)


# --- category rules ------------------------------------------------------------------------------

def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, _I | flags)


_CUDA_ERROR_OOM = _rx(r"\b(?:CUDA|HIP|XPU)(?: driver| runtime)?\s+error:?\s*out of memory|hipErrorOutOfMemory|cudaErrorMemoryAllocation"
                      r"|CUDA_ERROR_OUT_OF_MEMORY|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED"
                      r"|CUDNN_STATUS_NOT_ENOUGH_WORKSPACE")
_HOST_OOM = _rx(r"DefaultCPUAllocator|can't allocate memory: you tried|not enough memory: you tried"
                r"|Cannot allocate memory|Unable to allocate [\d.]+ ?[KMGTP]i?B for an array|paging file is too small"
                r"|os error 1455|WinError 1455|std::bad_alloc|out of (?:host|system|cpu|main) memory"
                r"|(?:host|system|cpu) (?:ram|memory) (?:is )?(?:exhausted|full)|not enough (?:system |host )?RAM"
                r"|kernel (?:appears to have|has) died|Kernel Restarting|Signal 9 \(SIGKILL\)|exit ?code\s*:?\s*-9\b"
                r"|\boom-kill|Out of memory: Killed process|\bOOM killer|\bKilled\s*$|^\s*Killed\b|\b\d+ Killed\s", re.M)
_DEVICE_OOM = _rx(r"\b(?:CUDA|HIP|XPU|NPU|MPS backend|MPS|GPU|device)\s+out of memory|Allocation on device"
                  r"|OutOfMemoryError|out of (?:video memory|vram|gpu memory)"
                  r"|(?:insufficient|unsufficient|not enough|ran out of)\s+(?:vram|gpu memory|video memory)"
                  r"|\bVRAM\b[^.\n]{0,40}(?:exhausted|exceeded|full)|Tried to allocate[^\n]*\bbudget\b"
                  r"|Got an OOM|not enough GPU video memory|Ran out of memory when regular VAE (?:de|en)coding")
_ANY_OOM = _rx(r"\bout of memory\b|(?-i:\bOOM\b)")
_UNAVAILABLE = _rx(
    r"not compiled with (?:CUDA|ROCm|HIP|MPS|XPU)|No (?:CUDA|HIP|ROCm) GPUs are available"
    r"|Found no NVIDIA driver|NVIDIA driver on your system is too old|driver version is insufficient"
    r"|requires accelerator, but not found|torch\.(?:cuda|xpu|mps|backends\.mps)\.is_available\(\) is False"
    r"|no ke[rm]n?el image is available|invalid device function|device\(s\) is/are busy or unavailable"
    r"|no CUDA-capable device|invalid device ordinal|CUDA unknown error|CUDA driver initialization failed"
    r"|Cannot access accelerator device when none is available|MPS backend (?:is )?not available"
    r"|not built with MPS|\bMPS (?:device )?(?:is )?not available|not currently implemented for the MPS device"
    r"|is not compatible with the current PyTorch installation|no (?:XPU|NPU|GPU) devices? (?:found|available)"
    r"|CUDA (?:is )?not available|cuda:\d+ (?:is not available|does not exist)"
    r"|(?:GPU|CUDA|accelerator) (?:device )?(?:was )?not (?:found|detected)|only supports \w+ GPUs")
_FAULT = _rx(r"device-side assert|illegal memory access|illegal instruction|misaligned address"
             r"|unspecified launch failure|launch timed out"
             r"|CUBLAS_STATUS_(?:EXECUTION_FAILED|INTERNAL_ERROR|MAPPING_ERROR|ARCH_MISMATCH|NOT_INITIALIZED)"
             r"|CUDNN_STATUS_(?:EXECUTION_FAILED|INTERNAL_ERROR|MAPPING_ERROR)"
             r"|Memory access fault by GPU|hipError\w+|fallen off the bus|\bECC error|uncorrectable ECC"
             r"|\bXid\b|\bNCCL error|\b(?:CUDA|HIP|XPU) error:|cudaError\w+|CUDA kernel errors might be"
             r"|an illegal (?:memory access|instruction)|Native API failed|PI_ERROR_\w+|UR_RESULT_ERROR_\w+")
_DEVICE_MISMATCH = _rx(
    r"Expected all tensors to be on the same(?: device|\s*$)|on the same device|different from other tensors on"
    r"|is on (?:cpu|cuda|mps|xpu|meta)[\w:]*,? but expected|Cannot copy out of meta tensor"
    r"|meta tensors?[^\n]*(?:no data|not supported|cannot)|is not on the expected device"
    r"|Expected a '?\w+'? (?:device )?(?:type )?for generator|Cannot generate a \w+ tensor from a generator of type"
    r"|found at least two devices|Expected (?:tensor|object) .*device|device type (?:mismatch|does not match)"
    r"|tensors? (?:is|are) on (?:different|two) devices|to be on (?:the )?(?:cuda|cpu|same)[\w: ]*device")
_TYPE_PAIR = re.compile(r"Input type \(([\w.:]+)\) and (?:weight|bias) type \(([\w.:]+)\) should be the same", _I)
_DTYPE = _rx(
    r"expected scalar type \w+ but found \w+|expected (?:scalar type|dtype) \w+,? but got|must have the same dtype"
    r"|to have the same dtype|should be the same(?: dtype)?$|Input type \([\w.:]+\) and (?:weight|bias) type"
    r"|not implemented for '(?:Half|BFloat16|Float8\w*|ComplexHalf|Float|Double)'|Got unsupported ScalarType"
    r"|same dtype|dtype mismatch|can't be cast to the desired output type|Unsupported dtype|promote(?:d)? dtype"
    r"|expected (?:both|all) \w+ to have (?:the )?same dtype|should have the same dtype|unsupported scalar type"
    r"|Expected (?:query|key|value)[^\n]*dtype"
    r"|fp8\w* not supported in this architecture|supported fp8 dtypes are|Float8_e\w+ (?:is )?not supported")
_CORRUPT = _rx(
    r"HeaderTooLarge|HeaderTooSmall|InvalidHeader\w*|MetadataIncompleteBuffer|incomplete metadata"
    r"|Error while deserializing|deserializ\w* (?:header|object)|file (?:is |was )?truncated|truncated file"
    r"|invalid load key|failed finding central directory|PytorchStreamReader failed|unexpected EOF"
    r"|Ran out of input|SafetensorError|BadZipFile|is not a zip file|Unable to load weights from"
    r"|not a valid JSON file|checksum|hash mismatch|\bcorrupt(?:ed)?\b|invalid magic|could not deserialize"
    r"|not a valid (?:safetensors|gguf|checkpoint)|MmapError|InvalidOffset|version https://git-lfs"
    r"|without having git-lfs|which is necessary to load this pretrained model"
    r"|Expecting value: line \d+ column \d+"
    # sentencepiece cannot parse the tokenizer file: a damaged, incomplete or wrong-format file.
    r"|could not parse ModelProto|model_proto-(?:>|&gt;)ParseFromArray")
_MISSING_FILE = re.compile(r"no file named (?P<file>.+?) found in directory (?P<path>.+?)\.?\s*$", _I | re.M)
_NO_FILE_NAMED = re.compile(r"(?<!\S)(?P<path>\S+) does not appear to have (?:a file|files?) named (?P<file>[^\s,.]+"
                            r"(?:\.\w+)*)", _I)
_NO_SUCH_FILE = re.compile(r"No such file or directory:?\s*['\"]?(?P<path>[^'\"\n]+?)['\"]?\s*$", _I | re.M)
_COMPONENT_MISSING = _rx(
    r"Can't load (?:the )?(?:tokenizer|config|model|configuration|image processor|feature extractor|processor)"
    r"|is not a local folder and is not a valid model identifier|LocalEntryNotFoundError|EntryNotFoundError"
    r"|Cannot find the requested files in the (?:disk|local) cache|couldn't connect to '?https?://huggingface"
    r"|outgoing traffic has been disabled|RepositoryNotFoundError|Repository Not Found|GatedRepoError|gated repo"
    r"|Access to model [^\n]* is restricted|401 Client Error|expected \{[^}]*\},? but only \{[^}]*\} were passed"
    r"|NotADirectoryError|Could not find (?:the )?(?:model|checkpoint|config)|model_index\.json[^\n]*not (?:found|exist)"
    r"|Value not in list: (?:ckpt|unet|vae|clip|model|lora|clip_vision)\w*_name"
    r"|Value not in list: \w+: '[^'\n]*' not in \[\]|does not contain a valid (?:clip|text encoder|vae)"
    r"|\b(?:clip|vae|model) input is invalid: None"
    r"|(?:folder|directory) (?:does not exist|not found)|missing (?:component|folder|subfolder)s?\b"
    r"|not cached locally|(?:is not|isn't|wasn't) (?:in the )?cache|while trying to fetch metadata from the Hub"
    r"|offline mode")
_MODULE_MISSING = re.compile(r"No module named ['\"]?(?P<module>[\w.]+)['\"]?", _I)
_CANNOT_IMPORT = re.compile(r"cannot import name ['\"]?(?P<name>\w+)['\"]? from ['\"]?(?P<module>[\w.]+)", _I)
_MODULE_NO_ATTR = re.compile(r"module ['\"]?(?P<module>[\w.]+)['\"]? has no attribute ['\"]?(?P<name>\w+)", _I)
_OBJECT_NO_ATTR = re.compile(r"['\"](?P<obj>\w+)['\"] object has no attribute ['\"]?(?P<name>\w+)", _I)
_NAME_UNDEFINED = re.compile(r"name ['\"](?P<name>\w+)['\"] is not defined", _I)
_PIP_INSTALL = re.compile(r"pip3?\s+install\s+(?:-U\s+|--upgrade\s+)?[`'\"]?(?P<pkg>[A-Za-z][\w\-]*)", _I)
_REQUIRES_LIB = re.compile(
    r"requires the (?P<pkg>[\w\-]+) library but it was not found|requires (?:the )?(?P<pkg2>[\w\-]+)"
    r"(?: library| package)? (?:to be installed|but (?:it )?(?:is|was) not (?:installed|found))"
    r"|(?:please|you need to|you must) install\s+(?!via\b|with\b|it\b|them\b|the\b|from\b|using\b)[`'\"]?"
    r"(?P<pkg3>[A-Za-z][\w\-]*)|\b(?P<pkg5>[A-Za-z][\w\-]*) (?:is|are) not installed", _I)
_DEP_MISC = _rx(r"Unable to find a compatible ffmpeg|\bffmpeg\b[^\n]*(?:not found|not installed|No such file"
                r"|could not be found)|No ffmpeg exe could be found|Need ffmpeg exe"
                r"|FLASH_ATTN_2_AVAILABLE|DLL load failed|cannot open shared object file|Library not loaded"
                r"|No such file or directory: '(?:ffmpeg|ffprobe)'|WinError 126|Error loading \S+\.dll"
                r"|packages? that (?:were|was) not found")
_NOT_INSTALLED = _rx(r"\bnot (?:been )?installed\b|\bis not available\b|\bwas not found\b")
_PIPELINE_MISSING = _rx(r"(?:pipeline|model|node) (?:class|type)s? ['\"]?\w+['\"]? (?:not found|does not exist"
                        r"|is not (?:available|defined|supported))|node types were not found|custom code which must be"
                        r"|does not appear to have any custom code|trust_remote_code")
_SIGNATURE = re.compile(r"(?P<func>[\w.]+)\(\) (?:missing \d+ required (?:positional|keyword-only) arguments?"
                        r"|takes (?:from )?\d+ (?:to \d+ )?positional arguments? but \d+ (?:were|was) given)")
_UNEXPECTED_KW = re.compile(r"(?P<func>[\w.]*)\(\)? got an unexpected keyword argument ['\"](?P<kw>\w+)['\"]", _I)
_VERSION = _rx(
    r"size mismatch for|Missing key\(s\) in state_dict|Unexpected key\(s\) in state_dict|expected shape [^\n]* but got"
    r"|the following keys are missing|No operator found for `memory_efficient_attention"
    r"|Trying to set a tensor of shape|does not recognize this architecture|Unrecognized model in"
    r"|compiled using NumPy 1\.x|binary incompatibility|numpy\.dtype size changed|operator \w+::\w+ does not exist"
    r"|undefined symbol|requires (?:diffusers|transformers|torch|accelerate|peft|huggingface.hub)\s*(?:version\s*)?[>=]"
    r"|please (?:upgrade|update)|is too old|not supported (?:in|by) (?:this|your) version|version [\d.]+ or (?:higher|newer)"
    r"|got multiple values for (?:keyword )?argument|has no attribute|_ARRAY_API not found"
    r"|numpy\.core\.multiarray failed to import|compiled (?:using|against) NumPy"
    r"|Expected a value of type '[^']+' for argument '\w+' but instead found type"
    r"|has been incorrectly initialized or .{0,200}is incorrectly implemented")
_INVALID = _rx(
    r"ha(?:ve|s) to be divisible by|must be (?:divisible by|a multiple of)|should be divisible by"
    r"|Provide either `|Cannot forward both `|`\w+` (?:has|have) to be|`\w+` (?:must|should) be|is only supported when"
    r"|list of generators of length|cannot identify image file|Prompt outputs failed validation"
    r"|Required input is missing|Failed to validate prompt|Value (?:smaller than min|bigger than max)"
    r"|(?:height|width|num_frames)[^\n]{0,40}(?:must|should|has to|have to)"
    r"|device type at start of device string|Invalid device string"
    r"|Input is in incorrect format|Invalid image type|image must be passed and be one of"
    r"|is not supported by this node|shape '\[[\d, ]+\]' is invalid for input of size"
    # PIL's fromarray got an array it cannot map to an image (float frames, odd channel counts).
    r"|Cannot handle this data type")
_USER_TYPES = ("NameError", "SyntaxError", "TypeError", "AttributeError", "KeyError", "IndexError",
               "ZeroDivisionError", "UnboundLocalError")


def _name_of_path(path: str) -> str:
    return path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]


_MAX_CLASSIFY = 8000


def classify(err: ParsedError) -> Finding | None:
    """Category of one exception, or None when no rule is sure."""
    msg = err.message
    if not msg.strip() and err.frames and err.frames[-1].code.startswith("assert"):
        msg = err.frames[-1].code  # a bare "assert X" says what failed only in its source line
    text = f"{err.type}: {msg}" if err.type else msg
    if len(text) > _MAX_CLASSIFY:
        # The meaning is at the start of a message (and torch's hints at its end); the
        # middle of a huge one (a list of 2,000 missing keys) only costs time.
        text = text[: _MAX_CLASSIFY - 2000] + "\n" + text[-2000:]

    if _BUDGET_REFUSED.search(text):
        # wan_nb's own budget refused an allocation behind whatever the library raised.
        return Finding("out_of_memory", "wan_nb's memory budget refused an allocation", oom_numbers(text))
    if _CUDA_ERROR_OOM.search(text):
        return Finding("out_of_memory", "the accelerator API reported an allocation failure", oom_numbers(text))
    if is_type(err, "OutOfMemoryError"):
        return Finding("out_of_memory", "the device allocator could not allocate", oom_numbers(text))
    if is_type(err, "MemoryError") or _HOST_OOM.search(text):
        return Finding("host_out_of_memory", "host (CPU) memory was exhausted", oom_numbers(text))
    if _DEVICE_OOM.search(text):
        return Finding("out_of_memory", "the device allocator could not allocate", oom_numbers(text))
    if _UNAVAILABLE.search(text):
        return Finding("accelerator_unavailable", "the requested accelerator is not usable here")
    if _FAULT.search(text):
        if _ANY_OOM.search(text):
            return Finding("out_of_memory", "an accelerator error that reports out of memory", oom_numbers(text))
        return Finding("accelerator_fault", "the accelerator reported a kernel or hardware fault")
    found = _device_or_dtype(text)
    if found:
        return found
    found = _loading(err, text)
    if found:
        return found
    found = _video_writer(err, text)
    if found:
        return found
    found = _imports(err, text)
    if found:
        return found
    if _ANY_OOM.search(text):
        return Finding("out_of_memory", "the message reports out of memory", oom_numbers(text))
    return _code_and_versions(err, text)


_FP8_UNSUPPORTED = _rx(r"fp8\w* not supported in this architecture|supported fp8 dtypes are"
                      r"|not implemented for '(?:Float8\w*)'|Float8_e\w+ (?:is )?not supported")


# The note wan_nb.memory.budget puts on an error leaving a block where it refused an allocation.
_BUDGET_REFUSED = _rx(r"wan_nb\.memory_budget refused an allocation")


def _device_or_dtype(text: str) -> Finding | None:
    pair = _TYPE_PAIR.search(text)
    if pair:
        a, b = pair[1], pair[2]
        facts: dict[str, str | int | float] = {"types": f"{a}, {b}"}
        device = re.compile(r"cuda|mps|xpu|hip", _I)
        da, db = device.search(a), device.search(b)
        if bool(da) != bool(db):
            return Finding("device_mismatch", "the input and the weights are on different devices", facts)
        return Finding("dtype_mismatch", "the input and the weights have different dtypes", facts)
    if _DEVICE_MISMATCH.search(text):
        devices = sorted(set(re.findall(r"\b(cuda:\d+|cuda|cpu|mps|xpu:\d+|xpu|meta)\b", text)))
        facts = {"devices": ", ".join(devices)} if devices else {}
        return Finding("device_mismatch", "tensors on different devices met in one operation", facts)
    if _FP8_UNSUPPORTED.search(text):
        return Finding("dtype_mismatch", "an fp8 dtype this device has no kernels for", {"dtypes": "float8"})
    if _DTYPE.search(text):
        dtypes = re.findall(r"\b(BFloat16|Half|Float8\w*|Float|Double|float16|bfloat16|float32|float|half)\b", text)
        facts = {"dtypes": ", ".join(dict.fromkeys(dtypes))} if dtypes else {}
        return Finding("dtype_mismatch", "tensors of different dtypes met in one operation", facts)
    return None


# diffusers' load_sub_model, for a model_index.json class that is no subclass of its
# LOADABLE_CLASSES (transformers' AutoTokenizer, AutoModel, ...).
_UNLOADABLE = _rx(r"The component <class '(?P<path>[\w.]+)'> of <class '[\w.]+'> cannot be loaded as it does "
                  r"not seem to have any of the loading methods")


def _loading(err: ParsedError, text: str) -> Finding | None:
    m = _UNLOADABLE.search(text)
    if m:
        return Finding("component_missing", "model_index.json names a class diffusers cannot load",
                       {"unloadable_class": m["path"].rsplit(".", 1)[-1]})
    if _CORRUPT.search(text):
        facts: dict[str, str | int | float] = {}
        m = re.search(r"(?:checkpoint file|config file at|file) (?:for )?['\"]([^'\"]+)['\"]", text, _I)
        if m:
            facts["file"] = m[1]
        return Finding("weights_corrupt", "a weight or config file could not be read", facts)
    m = _MISSING_FILE.search(text) or _NO_FILE_NAMED.search(text)
    if m:
        return Finding("component_missing", "a file the loader needs is not there",
                       {"missing_file": m["file"].strip(), "missing_path": m["path"].strip()})
    m = _NO_SUCH_FILE.search(text)
    if m and (is_type(err, "OSError") or not err.type):
        path = m["path"].strip()
        name = _name_of_path(path)
        if name in ("ffmpeg", "ffprobe", "ffmpeg.exe"):
            return Finding("missing_dependency", "a program the export needs is not installed",
                           {"missing_package": "ffmpeg"})
        if re.search(r"\.(?:png|jpe?g|webp|gif|bmp|mp4|mov|avi|mkv|webm)$", name, _I):
            return Finding("invalid_input", "an input file given to the pipeline does not exist", {"missing_path": path})
        return Finding("component_missing", "a file or folder the loader needs is not there",
                       {"missing_path": path, "missing_file": name})
    if _COMPONENT_MISSING.search(text):
        facts = {}
        m = re.search(r"(?:for|at|from|named|identifier)\s+['\"]([^'\"]+)['\"]", text, _I)
        if m:
            facts["missing_path"] = m[1]
        m = re.search(r"expected (\{[^}]*\}),? but only (\{[^}]*\}) were passed", text, _I)
        if m:
            facts["expected_components"], facts["passed_components"] = m[1], m[2]
        m = re.search(r"Value not in list: (\w+): '([^']*)'", text, _I)
        if m:
            facts["missing_file"] = m[2]
        return Finding("component_missing", "a model, component or file could not be found", facts)
    return None


def _imports(err: ParsedError, text: str) -> Finding | None:
    m = _CANNOT_IMPORT.search(text)
    if m:
        facts: dict[str, str | int | float] = {"missing_class": m["name"], "module": m["module"]}
        if m["module"].split(".")[0] == "diffusers" and looks_like_library_class(m["name"]):
            return Finding("pipeline_unavailable", "the installed diffusers lacks this class", facts)
        if m["name"].endswith("Pipeline"):
            # A pipeline class is what the user asked for by name: the installed package (a
            # release, not the source or a fork with that pipeline) does not provide it.
            return Finding("pipeline_unavailable", f"the installed {m['module'].split('.')[0]} lacks this pipeline",
                           facts)
        return Finding("version_mismatch", "an installed library lacks a name another one imports", facts)
    m = _MODULE_NO_ATTR.search(text)
    if m:
        facts = {"missing_class": m["name"], "module": m["module"]}
        if m["module"].split(".")[0] == "diffusers" and looks_like_library_class(m["name"]):
            return Finding("pipeline_unavailable", "the installed diffusers lacks this class", facts)
        if not raised_in_user_code(err) or m["module"].split(".")[0] in ("torch", "diffusers", "transformers"):
            return Finding("version_mismatch", "an installed library lacks an attribute that is used", facts)
    m = _MODULE_MISSING.search(text)
    if m and (is_type(err, "ImportError") or not err.type or "No module named" in text):
        module = m["module"]
        top = module.split(".")[0]
        facts = {"missing_module": module}
        if top == "diffusers" and "." in module:
            if "wan" in module.lower() or ".pipelines." in module:
                return Finding("pipeline_unavailable", "the installed diffusers lacks this module", facts)
            return Finding("version_mismatch", "the installed diffusers lacks a module", facts)
        if top in ("transformers", "torch", "huggingface_hub", "accelerate", "torchvision") and "." in module:
            return Finding("version_mismatch", f"the installed {top} lacks a module", facts)
        facts["missing_package"] = _pip_name(top)
        return Finding("missing_dependency", "a Python package is not installed", facts)
    m = _REQUIRES_LIB.search(text)
    pip = _PIP_INSTALL.search(text)
    if pip and not m and (is_type(err, "ImportError") or _NOT_INSTALLED.search(text)):
        return Finding("missing_dependency", "the error asks for a package to be installed",
                       {"missing_package": pip["pkg"]})
    if m and (is_type(err, "ImportError", "RuntimeError", "AssertionError", "OSError") or not err.type
              or "not found" in text or "install" in text.lower()):
        pkg = pip["pkg"] if pip else next(g for g in m.groups() if g)
        return Finding("missing_dependency", "a package the pipeline needs is not installed",
                       {"missing_package": _pip_name(pkg)})
    if _DEP_MISC.search(text):
        facts = {}
        if re.search(r"ffmpeg", text, _I):
            facts["missing_package"] = "imageio-ffmpeg"
        elif re.search(r"flash.?attn", text, _I):
            facts["missing_package"] = "flash-attn"
        return Finding("missing_dependency", "a library or program the pipeline needs is missing", facts)
    m = _NAME_UNDEFINED.search(text)
    if m and m["name"] in KNOWN_PACKAGES and not raised_in_user_code(err):
        return Finding("missing_dependency", "an optional package the library uses was not installed",
                       {"missing_package": _pip_name(m["name"])})
    if _PIPELINE_MISSING.search(text):
        facts = {}
        m = re.search(r"(?:class|type)s? ['\"]?(\w+)['\"]? (?:not found|does not exist|is not)", text, _I)
        if m:
            facts["missing_class"] = m[1]
        return Finding("pipeline_unavailable", "the pipeline's class or code is not available", facts)
    return None


_FFMPEG_FAILED = _rx(r"error occured in the ffmpeg subprocess|ffmpeg (?:subprocess|process) (?:failed|exited)")
_FFMPEG_TOO_OLD = _rx(r"Unrecognized option '[\w-]+'|Option '[\w-]+' not found|Error splitting the argument list"
                      r"|Unknown encoder|Unrecognized option")
_WRITER_FRAME = re.compile(r"^(?:combine_video|write_frames|export_to_video|save_video|mimwrite|mimsave|append_data"
                           r"|_append_data|_initialize)$")


def _video_writer(err: ParsedError, text: str) -> Finding | None:
    """The program that writes the video (ffmpeg behind imageio or a video node) failed."""
    if _FFMPEG_FAILED.search(text) and _FFMPEG_TOO_OLD.search(text):
        return Finding("version_mismatch", "the installed ffmpeg is older than the options the video writer passes",
                       {"program": "ffmpeg"})
    writing = any(_WRITER_FRAME.match(f.name) for f in err.frames) or "proc.stdin.write" in text
    if writing and (is_type(err, "BrokenPipeError") or re.search(r"\[Errno 32\] Broken pipe", text)):
        # ffmpeg quit while frames were piped to it: typically a build without the encoder asked for.
        return Finding("missing_dependency", "the ffmpeg that writes the video quit (a build without the encoder?)",
                       {"missing_package": "ffmpeg (a build with the codec, e.g. imageio-ffmpeg)"})
    return None


def _pip_name(module: str) -> str:
    return {"cv2": "opencv-python", "PIL": "pillow", "flash_attn": "flash-attn", "imageio_ffmpeg": "imageio-ffmpeg",
            "sklearn": "scikit-learn", "google": "protobuf", "bs4": "beautifulsoup4", "yaml": "pyyaml",
            "sageattention": "sageattention", "easydict": "easydict"}.get(module, module.replace("_", "-"))


_CHANNELS = re.compile(r"expected input\[[^\]]*\] to have (\d+) channels, but got (\d+) channels", _I)
# Plain Python types where a pipeline expects tensors or images: the caller passed the wrong thing.
_WRONG_TYPE_ATTR = re.compile(r"['\"](?:numpy\.ndarray|ndarray|str|list|tuple|dict|int|float|bytes)['\"] object has no "
                              r"attribute", _I)
_PIPELINE_PATH = re.compile(r"/diffusers/pipelines/|/pipelines?/|pipeline_\w+\.py$|/image_processor\.py$"
                            r"|/video_processor\.py$", _I)


# Two tensors whose sizes differ by exactly RGB (3) against RGBA (4) or greyscale (1): an image
# with an alpha channel (a PNG) or one channel met an RGB mean/std or another RGB tensor.
_SIZE_PAIR = re.compile(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)"
                        r"|Sizes of tensors must match except in dimension \d+\. Expected size (\d+) but got size (\d+)",
                        _I)
# An image loader returned None (cv2.imread does for a missing or unreadable path) and the
# caller asked for its shape: the input image was never read.
_NONE_IMAGE = re.compile(r"['\"]NoneType['\"] object has no attribute ['\"]shape['\"]|['\"]NoneType['\"] object is not "
                         r"subscriptable[^\n]*\bimg\b", _I)


def raised_in_installed_code(err: ParsedError) -> bool:
    """The deepest real frame is in an installed package (site-packages), not the user's code."""
    frames = [f for f in err.frames if not _WRAPPER_PATH.search(f.path)]
    return bool(frames) and bool(_LIBRARY_PATH.search(frames[-1].path)) and not frames[-1].is_user


def channel_mismatch(text: str) -> tuple[int, int] | None:
    m = _CHANNELS.search(text)
    if m and {m[1], m[2]} in ({"3", "4"}, {"1", "3"}):
        return int(m[1]), int(m[2])
    m = _SIZE_PAIR.search(text)
    if m:
        a, b = (m[1], m[2]) if m[1] else (m[3], m[4])
        if {a, b} == {"3", "4"}:
            return int(a), int(b)
    return None


def _code_and_versions(err: ParsedError, text: str) -> Finding | None:
    kw = _UNEXPECTED_KW.search(text) if "unexpected keyword" in text else None
    user = raised_in_user_code(err) or (is_type(err, "NameError", "AttributeError") and in_users_script(err))
    if kw:
        facts: dict[str, str | int | float] = {"unexpected_keyword": kw["kw"]}
        if kw["func"]:
            facts["callee"] = kw["func"]
        if kw["kw"] in KWARG_SINCE:
            facts["required_diffusers"] = KWARG_SINCE[kw["kw"]]
        owner = kw["func"].split(".")[0] if kw["func"] else ""
        if kw["kw"] in KWARG_SINCE or not user or looks_like_library_class(owner):
            return Finding("version_mismatch", "a keyword argument this installed version does not accept", facts)
        return Finding("user_code", "a function in the notebook was called with a keyword it does not take", facts)
    sig = _SIGNATURE.search(text) if is_type(err, "TypeError") and not user else None
    if sig:
        # Like an unexpected keyword: code written for another release of the class it calls.
        return Finding("version_mismatch", "a call does not match the signature of the installed version",
                       {"callee": sig["func"]})
    if is_type(err, "SyntaxError") and (user or not err.frames):
        return Finding("user_code", "the cell's code has a syntax error")
    if is_type(err, "AttributeError", "TypeError") and _NONE_IMAGE.search(text):
        return Finding("invalid_input", "an input image was never read (an image loader such as cv2.imread returned "
                       "None: check the path and the file)")
    m = _NAME_UNDEFINED.search(text)
    if m and is_type(err, "NameError") and m["name"] not in KNOWN_PACKAGES and (
            raised_in_installed_code(err) or (not err.frames and re.search(r"\bglobal name ['\"]", text))):
        # Raised inside an installed package or app (Python 2's "global name" is a function's
        # lookup, not a cell's): a bug of that code, which no fallback and no edit of the
        # user's cell can fix; the package's next release or its maintainers can.
        return Finding("unknown", "a name undefined inside an installed package: a bug of that package",
                       {"undefined_name": m["name"]})
    if is_type(err, *_USER_TYPES) and user:
        m = _OBJECT_NO_ATTR.search(text)
        if m and looks_like_library_class(m["obj"]) and is_type(err, "AttributeError"):
            return Finding("version_mismatch", "the installed library's object lacks this attribute",
                           {"missing_attribute": m["name"], "object": m["obj"]})
        return Finding("user_code", "the error was raised by the notebook's own code")
    m = _NAME_UNDEFINED.search(text)
    if m and not err.frames and is_type(err, "NameError"):
        return Finding("user_code", "a name used in the cell was never defined", {"undefined_name": m["name"]})
    channels = channel_mismatch(text)
    if channels:
        # RGBA (4) or greyscale (1) pixels where the model takes RGB (3).
        return Finding("invalid_input", "the image has the wrong number of colour channels (RGBA or greyscale for RGB)",
                       {"expected_channels": channels[0], "got_channels": channels[1]})
    if is_type(err, "ValueError", "TypeError", "AttributeError") and any(
            f.name in ("export_to_video", "export_to_gif") for f in err.frames):
        return Finding("invalid_input", "export_to_video was given something it cannot write (frames, path, fps)")
    if is_type(err, "AttributeError") and _WRONG_TYPE_ATTR.search(text) and any(
            _PIPELINE_PATH.search(f.path) for f in err.frames[-3:]):
        return Finding("invalid_input", "the pipeline was given a value of the wrong type (an array or a string "
                       "where it takes an image or tensor)")
    m = _OBJECT_NO_ATTR.search(text)
    if m and looks_like_library_class(m["obj"]):
        return Finding("version_mismatch", "the installed library's object lacks this attribute",
                       {"missing_attribute": m["name"], "object": m["obj"]})
    if _VERSION.search(text) and not (_OBJECT_NO_ATTR.search(text) and "has no attribute" in text):
        facts = {}
        m = re.search(r"size mismatch for ([\w.]+)", text, _I)
        if m:
            facts["parameter"] = m[1]
        return Finding("version_mismatch", "the checkpoint or code expects another library version", facts)
    if _INVALID.search(text) or (is_type(err, "ValueError", "TypeError")
                                 and any(f.name == "check_inputs" for f in err.frames)):
        return Finding("invalid_input", "the pipeline rejected the arguments it was called with")
    return None


# --- stage -------------------------------------------------------------------------------------------

STRONG, WEAK = 2, 1

_VAEISH = re.compile(r"vae|autoencoder|/comfy/sd\.py$", _I)
_NOT_VAE = re.compile(r"token|/json/|codecs|encodings/|base64|/email/|/http/|/urllib", _I)
_DECODE_FUNC = re.compile(r"^_?(?:tiled_|spatial_tiled_|temporal_tiled_|single_)?decode(?:_\d+|_tiled\w*|_video|_frames"
                          r"|_latents?|_images?)?$|^decode_latents$"
                          r"|^decode_first_stage$", _I)
_ENCODE_FUNC = re.compile(r"^_?(?:tiled_|spatial_tiled_|temporal_tiled_|single_)?encode(?:_\d+|_tiled\w*|_video|_frames"
                          r"|_images?)?$|^encode_first_stage$"
                          r"|^retrieve_latents$", _I)
_TEXT_FUNC = re.compile(r"^_?(?:encode_prompt|get_t5_prompt_embeds|get_\w*prompt_embeds|encode_text|text_encode"
                        r"|encode_from_tokens\w*|encode_token_weights|get_text_embed\w*|encode_image)$", _I)
_TEXT_PATH = re.compile(r"/transformers/models/(?:umt5|t5|mt5|clip|xlm_roberta|siglip\w*|llama|qwen\w*|gemma\w*)/"
                        r"|/modules/t5\.py$|/modules/clip\.py$|/text_encoders/|/comfy/sd1_clip\.py$|/clip_model\.py$"
                        r"|text_encoder", _I)
_DENOISE_PATH = re.compile(r"/diffusers/models/transformers/|transformer_wan|/modules/model\.py$|/comfy/ldm/"
                           r"|wan_video_dit|/diffsynth/models/\w*dit\w*\.py$|hunyuan_video_packed"
                           r"|/comfy/samplers\.py$|/comfy/sample\.py$|/k_diffusion/|/diffusers/schedulers/"
                           r"|/comfy/model_base\.py$|/wanvideo/modules/model|/models/wan/modules/model", _I)
_DENOISE_FUNC = re.compile(r"^(?:sample|sample_\w+|sampling_function|denoise\w*|\w*_denoise|ksampler|common_ksampler"
                           r"|predict_with_cfg|model_fn_wan_video|model_fn\w*"
                           r"|apply_model|calc_cond\w*|predict_noise\w*|_calc_cond_batch)$", _I)
_WEAK_DENOISE_PATH = re.compile(r"/diffusers/models/attention\w*\.py$|/attention\.py$|flash_attn|sageattention"
                                r"|xformers", _I)
_PRE_FUNC = re.compile(r"^(?:preprocess|preprocess_video|preprocess_image|_preprocess\w*|prepare_image\w*|prepare_source"
                       r"|prepare_video\w*|load_image|load_video|resize_image\w*|resize_and_crop\w*|center_crop\w*"
                       r"|get_pixel_values|expand2square)$", _I)
_POST_PATH = re.compile(r"video_processor\.py$|/export_utils\.py$|/imageio/|/av/|/cv2/|/moviepy/", _I)
_POST_FUNC = re.compile(r"^(?:postprocess\w*|export_to_video|save_video|cache_video|write_frame|numpy_to_pil"
                        r"|pt_to_numpy|tensor2vid|combine_video|save_images|save_animated\w*|mimwrite|mimsave)$", _I)
_LOAD_FUNC = re.compile(r"^(?:from_pretrained|from_single_file|from_config|load_sub_model|_?load\w*|\w*_load_\w*"
                        r"|\w*_load|safe_open|hf_hub_download|snapshot_download|cached_file\w*|get_checkpoint_shard_files"
                        r"|_get_model_file|_fetch\w*|fetch_\w+|download\w*|_?get_checkpoint_file|get_model\w*|init_model)$",
                        _I)
# Functions that read weights or configs from disk or the hub.
_DISK_LOAD_FUNC = re.compile(
    r"^(?:from_pretrained|from_single_file|load_sub_model|load_state_dict|_load_state_dict\w*|load_file|safe_open"
    r"|_?load_pretrained_model|load_model_dict_into_meta|_load_from_state_dict|load_torch_file|load_checkpoint\w*"
    r"|load_diffusion_model|load_unet|load_vae|load_clip\w*|load_lora\w*|load_text_encoder\w*|hf_hub_download"
    r"|snapshot_download|cached_files?|get_checkpoint_shard_files|_get_model_file|download|_legacy_load|load_config"
    r"|_dict_from_json_file|_fetch\w*|load_custom_node|load_pipeline\w*)$", _I)
_DEVICE_FUNC = re.compile(r"^(?:to|cuda|xpu|mps|_apply|convert|enable_model_cpu_offload|enable_sequential_cpu_offload"
                          r"|enable_group_offload|apply_group_offloading|cpu_offload\w*|dispatch_model"
                          r"|load_models_gpu|model_load|partially_load|load_model_gpu)$", _I)
_CODE_RULES = [
    (re.compile(r"\bvae\.(?:tiled_)?decode\w*\(|decode_latents\(|decode_first_stage\(|\.decode\(\s*latents", _I),
     "vae_decode"),
    (re.compile(r"\bvae\.(?:tiled_)?encode\w*\(|retrieve_latents\(|encode_first_stage\(", _I), "vae_encode"),
    (re.compile(r"\bself\.transformer(?:_2)?\(|\bcurrent_model\(|\bscheduler\.step\(|\bself\.model\(|"
                r"\bsample(?:_\w+)?\(|\bsampler\.|\bpredict_with_cfg\(|\bnoise_pred\w*\b[^=\n]*=", _I), "denoise"),
    (re.compile(r"\btext_encoder(?:_2)?\(|encode_prompt\(|\bencode_image\(|\bclip\.encode|\bself\.text_encoder\.",
                _I), "text_encode"),
    (re.compile(r"export_to_video\(|postprocess_video\(|video_processor\.|save_video\(|cache_video\(", _I),
     "postprocess"),
    (re.compile(r"from_pretrained\(|from_single_file\(|load_state_dict\(|torch\.load\(|load_file\(|safe_open\(", _I),
     "load"),
    (re.compile(r"\.to\(\s*(?:['\"](?:cuda|mps|xpu|cpu)|device|torch\.device)|\.cuda\(\)|enable_\w*offload\(", _I),
     "to_device"),
]


def frame_stage(frame: Frame) -> tuple[str, int] | None:
    """The stage a frame shows, and how sure (STRONG or WEAK); None if it says nothing."""
    path, name = frame.path, frame.name
    if _PRE_FUNC.match(name) and not _WRAPPER_PATH.search(path):
        return "preprocess", STRONG
    if name == "prepare_latents" and re.search(r"\bimage\b|\bvideo\b", frame.code) and not re.search(
            r"vae|encode|retrieve_latents", frame.code, _I):
        # Image-conditioned pipelines first turn the input image into a tensor here.
        return "preprocess", WEAK
    if "/torch/nn/modules/module.py" in path:
        return ("to_device", WEAK) if name in ("to", "_apply", "convert", "cuda", "xpu") else None
    if "/torchvision/transforms/" in path or re.search(r"/preprocess(?:or|ors|ing)?/", path):
        # torchvision's transforms (resize, to_tensor, normalize) make an input image ready.
        return "preprocess", WEAK
    if _WRAPPER_PATH.search(path):
        return None
    if path.endswith("/pipeline_utils.py") and name in ("to", "cuda"):
        return "to_device", STRONG
    if _DEVICE_FUNC.match(name) and ("model_management" in path or "offload" in name or "dispatch" in name):
        return "to_device", WEAK if "model_management" in path else STRONG
    if "/mmgp/" in path or (_LOAD_FUNC.match(name) and _ONTO_DEVICE.search(name)):
        # Offloaders "load" weights onto the GPU during a stage: that is a move, not a load.
        return "to_device", WEAK
    if _DISK_LOAD_FUNC.match(name) or "/safetensors/" in path or path.endswith("/serialization.py"):
        return "load", STRONG
    if _LOAD_FUNC.match(name) and not _DEVICE_FUNC.match(name):
        # Any other "load_*" (ComfyUI's CLIP.load_model moves a loaded model to the GPU):
        # a stage frame above it says more.
        return "load", WEAK
    if _TEXT_FUNC.match(name):
        return "text_encode", STRONG
    if name.startswith("prepare_") and "latents" in name and _CONDITIONED.search(path):
        # Image/video-conditioned pipelines build the VAE's input here, then encode it.
        return "vae_encode", WEAK
    if not _NOT_VAE.search(path):
        vae = _VAEISH.search(path)
        if _DECODE_FUNC.match(name) and (vae or path.endswith("/nodes.py")):
            return "vae_decode", STRONG
        if _ENCODE_FUNC.match(name) and vae:
            return "vae_encode", STRONG
        if vae and "/comfy/sd.py" not in path:
            return None  # inside a VAE: only its decode/encode frames say which direction
    if _TEXT_FUNC.match(name):
        return "text_encode", STRONG
    if _POST_FUNC.match(name) or _POST_PATH.search(path):
        return "postprocess", STRONG
    if _TEXT_PATH.search(path) and name != "__init__":
        return "text_encode", STRONG
    if _DENOISE_PATH.search(path) and name != "__init__":
        return "denoise", STRONG
    if _DENOISE_FUNC.match(name) and not path.endswith("/nodes.py") or (
            path.endswith("/nodes.py") and name in ("sample", "common_ksampler")):
        return "denoise", STRONG
    if _WEAK_DENOISE_PATH.search(path):
        return "denoise", WEAK
    if frame.code:
        library = bool(_LIBRARY_PATH.search(path))
        for pattern, stage in _CODE_RULES:
            # Libraries call .to(device) and load helpers everywhere; only the user's or the
            # app's own call of them names the stage.
            if library and stage in ("to_device", "load"):
                continue
            if pattern.search(frame.code):
                return stage, STRONG
    return None


_LIBRARY_PATH = re.compile(r"/(?:site|dist)-packages/|/lib/python\d[\d.]*/|/python_embed(?:ed)?/|/Lib/", _I)


_CONDITIONED = re.compile(r"i2v|image2video|image_to_video|video2video|v2v|vace|animate|flf2v|ti2v", _I)
_ONTO_DEVICE = re.compile(r"gpu|cuda|device|vram|onload", _I)


_TEXT_TO_VIDEO = re.compile(r"\bt2v\b|t2v-|text2video|text[_ -]to[_ -]video|\bWanPipeline\b", _I)
_CONDITIONED_RUN = re.compile(r"i2v|image2video|imagetovideo|image[_ -]to[_ -]video|vace|v2v|video2video|animate"
                              r"|flf2v|s2v|first_?last|start_image|--image\b|ti2v|WanImageToVideo", _I)


def vae_direction(parsed: ParsedText, frames: list[Frame]) -> str | None:
    """``vae_decode`` when frames are inside a VAE and the run is text-to-video.

    Which way a VAE ran is told by its decode/encode frames; when a paste shows only its
    layers (``vae.py forward``), a text-to-video run settles it: only image- or
    video-conditioned pipelines encode.
    """
    if not any(_VAEISH.search(f.path) for f in frames):
        return None
    context = "\n".join([*parsed.lines[-200:], *(f.path for f in frames)])
    if _TEXT_TO_VIDEO.search(context) and not _CONDITIONED_RUN.search(context):
        return "vae_decode"
    return None


def stage_from_callee(callee: str) -> str | None:
    """The stage a function named in the message belongs to ("WanVideoModelLoader.loadmodel() got ...")."""
    if not callee:
        return None
    name = callee.rsplit(".", 1)[-1]
    owner = callee.rsplit(".", 1)[0] if "." in callee else ""
    if re.search(r"vae|autoencoder", callee, _I):
        if _DECODE_FUNC.match(name):
            return "vae_decode"
        if _ENCODE_FUNC.match(name):
            return "vae_encode"
    if re.fullmatch(r"_?load\w*|from_pretrained|from_single_file", name, _I) or "Loader" in owner or (
            name == "__init__" and re.search(r"Model|Transformer|Pipeline|VAE|Encoder", owner)):
        return "load"
    return None


def stage_from_frames(frames: list[Frame]) -> tuple[str, Frame] | None:
    """Deepest strong frame wins; otherwise the deepest weak one."""
    weak: tuple[str, Frame] | None = None
    for frame in reversed(frames):
        found = frame_stage(frame)
        if found is None:
            continue
        stage, strength = found
        if strength == STRONG:
            return stage, frame
        if weak is None:
            weak = (stage, frame)
    return weak


_NODE = re.compile(r"(?:Node Type:\**|Error occurred when executing|executing node\s+\d*\s*\(?|class_type['\"]?:)"
                   r"\s*['\"]?(?P<node>[A-Za-z_]\w*)", _I)
# A tqdm bar: "Loading pipeline components...: 60%|██████    | 3/5 [...]". Anchored on "%|" (a
# leading lazy description would make the search quadratic in the line's length).
_PROGRESS = re.compile(r"(?<!\d)\d+%\|[^|\n]*\|\s*(?P<n>\d+)/(?P<total>\d+)")
# SD.Next's bar: "Progress 3.42s/it ██████ 100% 5/5 00:17 00:00 Base"
_SDNEXT_PROGRESS = re.compile(r"^\s*Progress\b[^%\n]{0,200}?(?P<pct>\d+)%\s+(?P<n>\d+)/(?P<total>\d+)")
_PHASES = [
    (re.compile(r"\bexport_to_video\b|\bsave_video\b|\bsaving (?:the )?video\b|\bwriting (?:the )?video\b", _I),
     "postprocess"),
    (re.compile(r"\bvae\b[^\n]{0,20}decod|\bdecoding\b|\bdecode\b", _I), "vae_decode"),
    (re.compile(r"\bvae\b[^\n]{0,20}encod|encoding (?:the )?(?:image|video|frames)", _I), "vae_encode"),
    (re.compile(r"text encod|encoding (?:the )?prompt|prompt encod|\bt5\b|\bumt5\b|^\s*encode:\s*prompt", _I),
     "text_encode"),
    (re.compile(r"denois|sampling|\bsampler\b|\bstep \d+ ?/ ?\d+", _I), "denoise"),
    (re.compile(r"loading (?:the )?(?:model|pipeline|checkpoint|weights|transformer|diffusion)"
                r"|creating (?:the )?\w*\s?(?:pipeline|model)", _I), "load"),
]


def node_stage(node: str) -> str | None:
    n = node.lower()
    if "loader" in n or n.startswith("load"):
        return "load"
    if "decode" in n:
        return "vae_decode"
    if "encode" in n and re.search(r"text|clip|t5|prompt", n):
        return "text_encode"
    if "encode" in n or "tovideo" in n:
        return "vae_encode"
    if "sampler" in n or "sample" in n:
        return "denoise"
    if re.search(r"save|combine|export|createvideo", n):
        return "postprocess"
    return None


# ComfyUI logs "Requested to load <model class>" before each model runs.
_COMFY_LOAD = re.compile(r"Requested to load (\w+)")
_COMFY_KIND = [(re.compile(r"vae", _I), "vae"), (re.compile(r"TE|T5|CLIP|text|umt5", _I), "text"),
               (re.compile(r"wan|unet|model|flux|hunyuan|ltx", _I), "diffusion")]


# A node's name alone on a line (ComfyUI's error popup: "WanVideoSampler" over the message) or
# in front of its message ("WanImageToVideo: HIP error: out of memory").
_NODE_LINE = re.compile(r"^\s*(?P<node>(?:[A-Z][A-Za-z0-9]*_)?[A-Z][A-Za-z0-9]{3,60})\s*(?::\s+\S.*)?$")
_CAMEL = re.compile(r"[a-z0-9][A-Z]|[A-Z]{2,}[a-z]")


def stage_from_text(parsed: ParsedText) -> tuple[str, str] | None:
    """A stage the log names: a ComfyUI node, a phase word, or where progress bars stopped."""
    for line in reversed(parsed.lines):
        m = _NODE.search(line)
        if not m and len(line) < 300 and line[:1] != " " and "%|" not in line:
            m = _NODE_LINE.match(line)
            m = m if m and _CAMEL.search(m["node"]) else None
        if m:
            stage = node_stage(m["node"])
            if stage:
                return stage, f"node {m['node']}"
    # Lines before the traceback: what the program was doing when it failed.
    before: list[str] = []
    for line in parsed.lines:
        if "Traceback (most recent call last)" in line:
            break
        before.append(line)
    # The VAE runs either before sampling (encoding an image) or after it (decoding): a VAE
    # being readied is placed by what the log shows before it.
    vae_next = False
    for line in reversed(before[-25:]):
        m = _COMFY_LOAD.search(line)
        if m:
            kind = next((k for pattern, k in _COMFY_KIND if pattern.search(m[1])), None)
            if kind == "vae" and not vae_next:
                vae_next = True
                continue
            if kind == "text":
                return ("vae_encode" if vae_next else "text_encode"), f"the log loaded {m[1]} last"
            if kind == "diffusion":
                return ("vae_decode" if vae_next else "denoise"), f"the log loaded {m[1]} last"
            continue
        bars = list(_PROGRESS.finditer(line)) if "%|" in line else []
        sdnext = _SDNEXT_PROGRESS.match(line) if "Progress" in line else None
        if bars or sdnext:
            if bars:
                bar = bars[-1]
                start = bars[-2].end() if len(bars) > 1 else 0
                desc = line[start:bar.start()].lower()
            else:
                bar, desc = sdnext, line[sdnext.end():].lower()
            n, total = int(bar["n"]), int(bar["total"])
            if re.search(r"load|fetch|shard|download", desc):
                return ("load", "a loading progress bar stopped") if n < total and not vae_next else None
            if re.search(r"t5|text|encoder|clip|prompt", desc):
                if n < total:
                    return "text_encode", f"the text encoder's progress bar stopped at {n}/{total}"
                continue  # the prompt was encoded; what ran next is told by an earlier line
            if n < total and not vae_next:
                return "denoise", f"the sampling progress bar stopped at {n}/{total}"
            return "vae_decode", "all sampling steps finished before the error"
        for pattern, stage in _PHASES:
            if pattern.search(line) and not _HEADER_OR_EXC.search(line):
                if vae_next and stage in ("denoise", "text_encode"):
                    stage = "vae_decode" if stage == "denoise" else "vae_encode"
                return stage, "the log's last phase before the error"
    return None


_HEADER_OR_EXC = re.compile(r"Error|Exception|Traceback", re.I)


_CLASS_WORD = re.compile(r"\b(AutoencoderKL\w*|\w*Transformer3DModel|\w*T5EncoderModel|CLIPVision\w*"
                         r"|\w*T5Tokenizer\w*|\w*Tokenizer(?:Fast)?|\w+Scheduler)\b")


_COMFY_NAME = re.compile(r"\b(unet|vae|clip_vision|clip|ckpt)_name\b")
_COMPONENT_DIR = re.compile(r"[/\\](transformer_2|transformer|text_encoder|image_encoder|image_processor|tokenizer"
                            r"|scheduler|vae)(?=[/\\'\"\s.,)]|$)")
_FROM_PRETRAINED = re.compile(r"\b(\w+)\.from_(?:pretrained|single_file)\(")


def component_from(err: ParsedError, facts: dict, stage: str) -> str | None:
    """Which pipeline component the error is about, where the evidence says so."""
    for key in ("missing_path", "missing_file", "file"):
        value = str(facts.get(key, ""))
        for part in reversed(value.replace("\\", "/").split("/")):
            if part in COMPONENTS:
                return part
    for key in ("missing_class", "object", "callee", "unexpected_keyword", "node"):
        value = str(facts.get(key, ""))
        if value:
            for pattern, component in _CLASS_TO_COMPONENT:
                if pattern.fullmatch(value) or pattern.search(value):
                    if key == "unexpected_keyword" and component != "transformer_2":
                        continue
                    return component
    message = err.message
    m = _COMFY_NAME.search(message)
    if m and m[1] != "ckpt":
        return {"unet": "transformer", "vae": "vae", "clip": "text_encoder", "clip_vision": "image_encoder"}[m[1]]
    m = _CLASS_WORD.search(message)
    if m:
        for pattern, component in _CLASS_TO_COMPONENT:
            if pattern.fullmatch(m[1]):
                return component
    for f in reversed(err.frames):
        m = _FROM_PRETRAINED.search(f.code) if "from_" in f.code else None
        if m and not m[1].endswith("Pipeline"):
            for pattern, component in _CLASS_TO_COMPONENT:
                if pattern.fullmatch(m[1]):
                    return component
    m = _COMPONENT_DIR.search(message)
    if m:
        return m[1]
    for f in reversed(err.frames):
        if "/vae" in f.path.lower() or "autoencoder" in f.path.lower():
            return "vae"
        if "transformer_2" in f.code:
            return "transformer_2"
        if _DENOISE_PATH.search(f.path) and "/schedulers/" not in f.path:
            return "transformer"
        if "/schedulers/" in f.path:
            return "scheduler"
        if "encode_image(" in f.code or "image_encoder(" in f.code or (
                "/transformers/models/clip" in f.path and "vision" in (f.func + f.code).lower()):
            return "image_encoder"
        if _TEXT_PATH.search(f.path):
            return "text_encoder"
        if "tokeniz" in f.path.lower():
            return "tokenizer"
    return {"vae_decode": "vae", "vae_encode": "vae", "text_encode": "text_encoder",
            "denoise": "transformer"}.get(stage)


_STATE_DICT = _rx(r"size mismatch for|Missing key\(s\)|Unexpected key\(s\)|expected shape [^\n]* but got"
                  r"|has been incorrectly initialized"
                  r"|keys are missing|(?:missing|unexpected) keys?\b"
                  r"|Trying to set a tensor of shape|does not recognize this architecture|Unrecognized model in")


def is_state_dict_mismatch(message: str) -> bool:
    """A checkpoint whose tensors do not fit the class: a loading-time version mismatch."""
    return bool(_STATE_DICT.search(message))
