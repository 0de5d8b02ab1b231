"""Category rules: what went wrong, decided by specific phrases the libraries print, never by a lone word."""

from __future__ import annotations

import re

from wan_nb.diagnosis.numbers import oom_numbers
from wan_nb.diagnosis.patterns import (
    _I,
    _LIBRARY_PATH,
    _WRAPPER_PATH,
    BINARY_MISMATCH,
    ENCODER_MISSING,
    FACE_NOT_DETECTED,
    INPUT_NOT_OPENED,
    KNOWN_PACKAGES,
    KWARG_SINCE,
    PACKAGE_INCOMPATIBLE,
    Finding,
    Phrases,
    _literal_starts,
    _rx,
    in_users_script,
    is_type,
    looks_like_library_class,
    looks_like_library_object,
    raised_in_user_code,
)
from wan_nb.diagnosis.tracetext import ParsedError

# --- category rules ------------------------------------------------------------------------------

_CUDA_ERROR_OOM = _rx(r"\b(?:CUDA|HIP|XPU)(?: driver| runtime)?\s+error:?\s*out of memory|hipErrorOutOfMemory|cudaErrorMemoryAllocation"
                      r"|CUDA_ERROR_OUT_OF_MEMORY|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED"
                      r"|CUDNN_STATUS_NOT_ENOUGH_WORKSPACE")
_HOST_OOM = Phrases(r"DefaultCPUAllocator|is killed by signal: Killed|can't allocate memory: you tried|not enough memory: you tried"
                r"|Cannot allocate memory|Unable to allocate [\d.]+ ?[KMGTP]i?B for an array|paging file is too small"
                # (Windows' error 1455, the paging file too small, also in Chinese; a Chinese shell's
                # "Killed", where the shell prints it or quoted as the message)
                r"|os error 1455|WinError 1455|(?:^|\s|:)(?:Error|错误)\s*1455(?!\d)|页面文件太小"
                r"|^\s*已杀死|已杀死\s*$|(?:\d|\]\+?)\s+已杀死|[\"“「]已杀死[\"”」]|std::bad_alloc|out of (?:host|system|cpu|main) memory"
                r"|(?:host|system|cpu) (?:ram|memory) (?:is )?(?:exhausted|full)|not enough (?:system |host )?RAM"
                r"|kernel (?:appears to have|has) died|Kernel Restarting|Signal 9 \(SIGKILL\)|exit ?code\s*:?\s*-9\b"
                r"|\boom-kill|Out of memory: Killed process|\bOOM killer|\bKilled\s*$|^\s*Killed\b|\b\d+ Killed\s", re.M)
_DEVICE_OOM = Phrases(r"\b(?:CUDA|HIP|XPU|NPU|MPS backend|MPS|GPU|device)\s+out of memory|Allocation on device"
                  r"|OutOfMemoryError|out of (?:video memory|vram|gpu memory)"
                  r"|(?:insufficient|unsufficient|not enough|ran out of)\s+(?:vram|gpu memory|video memory)"
                  r"|\bVRAM\b[^.\n]{0,40}(?:exhausted|exceeded|full)|Tried to allocate[^\n]*\bbudget\b"
                  r"|Got an OOM|not enough GPU video memory|Ran out of memory when regular VAE (?:de|en)coding")
_ANY_OOM = _rx(r"\bout of memory\b|(?-i:\bOOM\b)")
_UNAVAILABLE = Phrases(
    r"not compiled with (?:CUDA|ROCm|HIP|MPS|XPU)|No (?:CUDA|HIP|ROCm) GPUs are available"
    r"|Found no NVIDIA driver|NVIDIA driver on your system is too old|driver version is insufficient"
    r"|requires accelerator, but not found|torch\.(?:cuda|xpu|mps|backends\.mps)\.is_available\(\) is False"
    r"|no ke[rm]n?el image is available|invalid device function|device\(s\) is/are busy or unavailable"
    r"|no CUDA-capable device|invalid device ordinal|CUDA unknown error|CUDA driver initialization failed"
    r"|Cannot access accelerator device when none is available|MPS backend (?:is )?not available"
    r"|not built with MPS|\bMPS (?:device )?(?:is )?not available|not currently implemented for the MPS device"
    r"|is not compatible with the current PyTorch installation|no (?:XPU|NPU|GPU) devices? (?:found|available)"
    r"|CUDA (?:is )?not available|cuda:\d+ (?:is not available|does not exist)"
    r"|(?:GPU|CUDA|accelerator) (?:device )?(?:was )?not (?:found|detected)|only supports \w+ GPUs"
    # cudaErrorNotSupported: the GPU, driver or VM lacks a feature torch asked for (ComfyUI's
    # default cudaMallocAsync allocator on older cards and some VMs): unsupported, not a fault.
    r"|CUDA error: operation not supported|cudaErrorNotSupported"
    # FlashAttention's kernels exist for Ampere (sm8x) and Hopper (sm90) only.
    r"|Expected is_sm\d+\w*(?: \|\| is_sm\d+\w*)* to be true"
    # kernels (SageAttention 2, FlashAttention 2) built for newer GPUs than this one
    r"|Unsupported CUDA architecture"
    # SageAttention's builds name the one GPU generation they have kernels for.
    r"|\bSM\d+ kernel is not available|Make sure you have GPUs with compute capability")
_FAULT = Phrases(r"device-side assert|illegal memory access|illegal instruction|misaligned address"
             r"|unspecified launch failure|launch timed out"
             r"|CUBLAS_STATUS_(?:EXECUTION_FAILED|INTERNAL_ERROR|MAPPING_ERROR|ARCH_MISMATCH|NOT_INITIALIZED)"
             r"|CUDNN_STATUS_(?:EXECUTION_FAILED|INTERNAL_ERROR|MAPPING_ERROR)"
             r"|Memory access fault by GPU|hipError\w+|fallen off the bus|\bECC error|uncorrectable ECC"
             r"|\bXid\b|\bNCCL error|\b(?:CUDA|HIP|XPU) error:|cudaError\w+|CUDA kernel errors might be"
             r"|an illegal (?:memory access|instruction)|Native API failed|PI_ERROR_\w+|UR_RESULT_ERROR_\w+")
_DEVICE_MISMATCH = Phrases(
    r"Expected all tensors(?: to be on the same)?(?: device|(?m:\s*$))|on the same device|different from other tensors on"
    r"|is on (?:cpu|cuda|mps|xpu|meta)[\w:]*,? but expected|Cannot copy out of meta tensor"
    r"|meta tensors?[^\n]*(?:no data|not supported|cannot)|is not on the expected device"
    r"|Expected a '?\w+'? (?:device )?(?:type )?for generator|Cannot generate a \w+ tensor from a generator of type"
    r"|found at least two devices|Expected (?:tensor|object) .*device|device type (?:mismatch|does not match)"
    r"|tensors? (?:is|are) on (?:different|two) devices|to be on (?:the )?(?:cuda|cpu|same)[\w: ]*device")
_TYPE_PAIR = re.compile(r"Input type \(([\w.:]+)\) and (?:weight|bias) type \(([\w.:]+)\) should be the same", _I)
_DTYPE = Phrases(
    r"expected scalar type \w+ but found \w+|expected (?:scalar type|dtype) \w+,? but got|must have the same dtype"
    r"|to have the same dtype|should be the same(?: dtype)?(?m:$)|Input type \([\w.:]+\) and (?:weight|bias) type"
    r"|not implemented for '(?:Half|BFloat16|Float8\w*|ComplexHalf|Float|Double)'|Got unsupported ScalarType"
    r"|same dtype|dtype mismatch|can't be cast to the desired output type|Unsupported dtype|promote(?:d)? dtype"
    r"|expected (?:both|all) \w+ to have (?:the )?same dtype|should have the same dtype|unsupported scalar type"
    r"|Expected (?:query|key|value)[^\n]*dtype"
    r"|fp8\w* not supported in this architecture|supported fp8 dtypes are|Float8_e\w+ (?:is )?not supported"
    # FlashAttention and other fused kernels take half precision only.
    r"|only supports? (?:fp16|half|bf16)(?: and | or |/)(?:fp16|half|bf16)"
    # a compiled kernel (SageAttention's) built for some dtypes only: "failed to dispatch data type Float"
    r"|failed to dispatch data type (?:Float|Double|Half|BFloat16|Float8\w*|Long|Int|Bool|Byte|Char|Short)\b")
_CORRUPT = Phrases(
    r"HeaderTooLarge|HeaderTooSmall|InvalidHeader\w*|MetadataIncompleteBuffer|incomplete metadata"
    r"|Error while deserializing|deserializ\w* (?:header|object)|file (?:is |was )?truncated|truncated file"
    r"|invalid load key|failed finding central directory|PytorchStreamReader failed|unexpected EOF"
    r"|Ran out of input|SafetensorError|BadZipFile|is not a zip file|Unable to load weights from"
    r"|not a valid JSON file|checksum|hash mismatch|invalid magic|could not deserialize"
    r"|not a valid (?:safetensors|gguf|checkpoint)|MmapError|InvalidOffset|version https://git-lfs"
    r"|without having git-lfs|which is necessary to load this pretrained model"
    r"|Expecting value: line \d+ column \d+"
    # sentencepiece cannot parse the tokenizer file: a damaged, incomplete or wrong-format file.
    r"|could not parse ModelProto|model_proto-(?:>|&gt;)ParseFromArray")
# A library saying a file is corrupt (not a reporter wondering whether it is); tried only when
# the word is in the text, since a list of words in front of it is slow to scan for.
_CORRUPT_WORDS = _rx(r"(?:file|archive|checkpoint|data|header|download|zip|model|weights|folder|vocabulary)\s+"
                     r"(?:is |was |seems |appears |might be |may be )?(?:to be )?corrupt(?:ed)?\b"
                     r"|\bcorrupt(?:ed)?\s+(?:file|archive|checkpoint|data|header|download|zip|model|weights)"
                     # transformers' tokenizers: "... is accessible and not corrupted"; huggingface_hub's cache
                     r"|\baccessible and not corrupted|Corrupted\w*Exception")
_MISSING_FILE = re.compile(r"no file named (?P<file>.+?) found in directory (?P<path>.+?)\.?\s*$", _I | re.M)
_NO_FILE_NAMED = re.compile(r"(?<!\S)(?P<path>\S+) does not appear to have (?:a file|files?) named (?P<file>[^\s,.]+"
                            r"(?:\.\w+)*)", _I)
# diffusers' ModelMixin.from_pretrained: no safetensors file, logged before it falls back to .bin.
SAFETENSORS_FALLBACK = re.compile(r"An error occurred while trying to fetch (?P<path>\S+?): \S+ does not appear to "
                                   r"have a file named (?P<file>[\w.-]+\.safetensors)", _I)
_NO_SUCH_FILE = re.compile(r"No such file or directory:?\s*['\"]?(?P<path>[^'\"\n]+?)['\"]?\s*$", _I | re.M)
_COMPONENT_MISSING = Phrases(
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
    r"|cannot find the appropriate snapshot folder"
    r"|offline mode"
    # Forge given a checkpoint without its text encoder or VAE (a GGUF or UNet-only file)
    r"|You do not have (?:CLIP|VAE|T5|text encoder) state dict"
    # ONNX Runtime given a model path with no file there
    r"|\bNO_SUCHFILE\b"
    # A pipeline built without a component its call needs (diffusers' check_inputs says so).
    r"|`\w+`(?: or `\w+`)? component must be set"
    # VideoHelperSuite's Load Video (Path): OpenCV could not open the path given.
    r"|could not be loaded with cv\b"
    # modelscope's downloader finished with files missing (the load then fails on what is there).
    r"|\b[1-9]\d* files?(?:\(s\))? failed to download"
    # the hub has no such file in the repo (the diffusers-format files not merged yet).
    r"|Not Found for url: https?://huggingface\.co/|model_index\.json missing|(?:missing|no) model_index\.json"
    # The hub was unreachable while a file of the model was fetched.
    r"|Max retries exceeded with url: /(?:api/models/)?[\w.-]+/[\w.-]+/(?:resolve|revision|tree)/"
    # huggingface_hub: a path that is no folder here is read as a repo id, and that id is invalid.
    r"|Incorrect path_or_model_id|Repo id must (?:be in the form|use alphanumeric)|HFValidationError"
    r"|404 Client Error|Entry Not Found|Revision Not Found|RevisionNotFoundError"
    r"|(?:model|checkpoint|weights?|lora|vae|safetensors|gguf)(?: file| path)? (?:not found|does not exist|is missing)\b"
    r"|(?:cannot|could not|unable to) (?:find|locate) (?:the )?(?:model|checkpoint|weights?|lora)(?: file)?s?\b"
    # a path the configuration names that is not there ("Invalid path: /workspace/YOURFOLDER/eval")
    r"|\bInvalid path: [/~.][^\s`]*`?(?=\n|$)"
    # pip run where the app's requirements file is not (another folder than the app's).
    r"|Could not open requirements file"
    # a weights or config file named by its path that is not there ("t2v/transformer/config.json does not exist")
    r"|(?:\bconfig|model_index|_config)\.json does not exist(?![a-z])"
    r"|\.(?:safetensors|bin|pth?|ckpt|gguf|onnx) does not exist(?![a-z])")
_MODULE_MISSING = re.compile(r"No module named ['\"]?(?P<module>[\w.-]*\w)", _I)
_CANNOT_IMPORT = re.compile(r"cannot import name ['\"]?(?P<name>\w+)['\"]? from ['\"]?(?P<module>[\w.]+)", _I)
# An issue title's short form, the whole line: "cannot import AutoEncoderKLHunYuanVideo (from diffusers)".
_CANNOT_IMPORT_BARE = re.compile(r"^\s*(?i:cannot import) ['\"]?(?P<name>[A-Z]\w+)['\"]?(?: (?i:from) ['\"]?[\w.]+['\"]?)?\s*$",
                                 re.M)
_MODULE_NO_ATTR = re.compile(r"module ['\"]?(?P<module>[\w.]+)['\"]? has no attribute ['\"]?(?P<name>\w+)", _I)
_OBJECT_NO_ATTR = re.compile(r"['\"](?P<obj>\w+)['\"] object has no attribute ['\"]?(?P<name>\w+)", _I)
_NAME_UNDEFINED = re.compile(r"name ['\"](?P<name>\w+)['\"] is not defined", _I)
_PIP_INSTALL = re.compile(r"pip3?\s+install\s+(?:-U\s+|--upgrade\s+)?[`'\"]?(?P<pkg>[A-Za-z][\w\-]*)", _I)
_REQUIRES_LIB = re.compile(
    r"requires the (?P<pkg>[\w\-]+) library but it was not found|requires (?:the )?(?P<pkg2>[\w\-]+)"
    r"(?: library| package)? (?:to be installed|but (?:it )?(?:is|was) not (?:installed|found))"
    r"|(?:please|you need to|you must) install\s+(?!via\b|with\b|it\b|them\b|the\b|from\b|using\b)[`'\"]?"
    r"(?P<pkg3>[A-Za-z][\w\-]*)|\b(?P<pkg5>[A-Za-z][\w\-]*) (?:is|are) not installed", _I)
_DEP_MISC = Phrases(r"Unable to find a compatible ffmpeg|Could not find a backend to open .{0,300}with iomode|\bffmpeg\b[^\n]*(?:not found|not installed|No such file"
                r"|could not be found)|No ffmpeg exe could be found|Need ffmpeg exe"
                r"|FLASH_ATTN_2_AVAILABLE|DLL load failed|cannot open shared object file|Library not loaded"
                r"|No such file or directory: '(?:ffmpeg|ffprobe)'|WinError 126|Error loading \S+\.dll"
                r"|packages? that (?:were|was) not found"
                # triton compiles its kernels with the system's C compiler.
                r"|Failed to find C compiler"
                # PyAV or ffmpeg built without the encoder asked for (the LGPL builds lack libx264).
                r"|UnknownCodecError|" + ENCODER_MISSING +
                # torch.compile's inductor backend without triton (Windows wheels, CPU-only builds).
                r"|Cannot find a working triton installation"
                # a module a failed import left behind as the ImportError itself (torchvision's av)
                r"|'(?:ImportError|ModuleNotFoundError)' object has no attribute"
                # diffusers' LoRA loaders without the peft package
                r"|PEFT backend is required"
                # llvmlite/numba (or triton's LLVM) without the vector maths library it links (svml)
                r"|LLVM ERROR: Symbol not found")
_DLL_MISMATCH = Phrases(r"specified procedure could not be found|procedure entry point [^\n]{0,200}could not be located")
# "Onnxruntime not found or ...", "... torch.compile disabled. triton not found": a package named
# first in its clause (not "pattern regex not found", not a file's ".gguf not found", not "found in").
_KNOWN_NOT_FOUND = re.compile(r"(?:^|[:;,]\s*|[.!]\s+)(?P<pkg>[A-Za-z]\w*) (?:was |is )?not found\b(?!\s+in\b)", re.M)
_NOT_INSTALLED = _rx(r"\bnot (?:been )?installed\b|\bis not available\b|\bwas not found\b")
_PIPELINE_MISSING = _rx(r"(?:pipeline|model|node) (?:class|type)s? ['\"]?\w+['\"]? (?:not found|does not exist"
                        r"|is not (?:available|defined|supported))|node types were not found|custom code which must be"
                        r"|does not appear to have any custom code|trust_remote_code")
_SIGNATURE = re.compile(r"(?P<func>[\w.]+)\(\) (?:missing \d+ required (?:positional|keyword-only) arguments?"
                        r"|takes (?:from )?\d+ (?:to \d+ )?positional arguments? but \d+ (?:were|was) given)")
_UNEXPECTED_KW = re.compile(r"(?P<func>[\w.]*)\(\)? got an unexpected keyword argument ['\"](?P<kw>\w+)['\"]", _I)
_VERSION = Phrases(
    r"size mismatch for|Missing key\(s\) in state_dict|Unexpected key\(s\) in state_dict|expected shape [^\n]* but got"
    r"|the following keys are missing|No operator found for `memory_efficient_attention"
    r"|Trying to set a tensor of shape|does not recognize this architecture|Unrecognized model in"
    r"|compiled using NumPy 1\.x|binary incompatibility|numpy\.dtype size changed|" + BINARY_MISMATCH +
    r"|requires (?:diffusers|transformers|torch|accelerate|peft|huggingface.hub)\s*(?:version\s*)?[>=]"
    r"|please (?:upgrade|update)|is too old|not supported (?:in|by) (?:this|your) version|version [\d.]+ or (?:higher|newer)"
    r"|got multiple values for (?:keyword )?argument|has no attribute|_ARRAY_API not found"
    r"|numpy\.core\.multiarray failed to import|compiled (?:using|against) NumPy"
    r"|Expected a value of type '[^']+' for argument '\w+' but instead found type"
    r"|has been incorrectly initialized or .{0,200}is incorrectly implemented"
    # diffusers' attention processors change between its releases; a package that patches them
    # (xDiT's xFuser) knows those of the releases it was written for.
    r"|AttnProcessor\w* is not supported by (?!the\b|this\b|your\b)\w+"
    # a package's own check of the release of another ("ComfyUI-nunchaku 0.3.4 is not compatible with nunchaku 0.3.1")
    r"|" + PACKAGE_INCOMPATIBLE +
    # Python 3.11's dataclasses refuse an unhashable default that older Pythons took: code written
    # for an older Python.
    # (list, dict and set defaults were refused before 3.11 too: those are the code's own mistake.)
    r"|mutable default <class '(?!(?:list|dict|set)')[\w.]+'> for field \w+ is not allowed"
    # DiffSynth-Studio identifies a checkpoint by its keys; one it does not know is a model newer
    # than the installed release (or its model config).
    r"|cannot detect the model type"
    # torchvision's or another extension's compiled ops built against another torch.
    r"|No such operator \w+::\w+|Couldn't load custom C\+\+ ops"
    # xformers' own warning: its wheel was built for another torch/CUDA than the installed one.
    r"|xFormers (?:was built for|can't load C\+\+/CUDA extensions)"
    # protobuf 4+ refusing code generated for protobuf 3 (or the reverse).
    r"|Descriptors cannot be created directly|your generated code is out of date"
    # transformers older than the model's tokenizer or config class.
    r"|Tokenizer class \w+ does not exist or is not currently imported|Unrecognized configuration class"
    # accelerate placing a checkpoint's tensor the installed model class does not have
    r"|does not have a parameter or a buffer named"
    # a node pack's or app's own check that a package is recent enough
    r"|\bAn outdated version\b|is not compatible with the current version of"
    # an app's own check of a pinned dependency ("Incorrect version of mmgp (3.5.1), version 3.5.3 is needed")
    r"|Incorrect version of [\w.-]+|is not available in this version of torch|requires torch \d+\.\d+"
    # transformers' and diffusers' check of their own pinned dependencies at import.
    r"|is required for a normal functioning of this module, but found"
    # an op of torchvision (or another extension) built without the backend torch runs it on.
    r"|Could not run '(?!aten::)\w+::[\w.]+' with arguments from the '\w+' backend"
    r"|(?:requires|needs) (?:a |the )?(?:newer|latest) version|newer version of [\w.-]+ is required"
    r"|(?:is|are) (?:only )?(?:supported|available) (?:from|since|starting (?:from|with)) (?:version |v)?\d"
    r"|(?:introduced|added) in (?:version |v)\d+\.\d+|\bis outdated\b"
    r"|update (?:your )?[\w-]+ to (?:the )?(?:latest|newest|v?\d)"
    r"|(?:was|were|has been|have been) (?:deprecated and )?removed in (?:the )?(?:[\w.-]+ )?v?\d"
    r"|requires (?:pytorch|xformers|numpy|gradio|safetensors|tokenizers|triton|bitsandbytes|comfyui)\s*(?:version\s*)?"
    r"(?:[>=]|v?\d)"
    r"|requires `?(?:diffusers|transformers|torch|accelerate|peft|huggingface.hub)`?\s*`?v?\d+(?:\.\d+)+`?"
    r"\s*or (?:higher|newer|later|above)")
_INVALID = Phrases(
    r"ha(?:ve|s) to be divisible by|must be (?:divisible by|a multiple of)|should be divisible by"
    r"|Provide either `|Cannot forward both `|`\w+` (?:has|have) to be|`\w+` (?:must|should) be|is only supported when"
    r"|list of generators of length|cannot identify image file|Prompt outputs failed validation"
    r"|Required input is missing|Failed to validate prompt|Value (?:smaller than min|bigger than max)"
    r"|(?:height|width|num_frames)[^\n]{0,40}(?:must|should|has to|have to)"
    r"|device type at start of device string|Invalid device string"
    r"|Input is in incorrect format|Invalid image type|image must be passed and be one of"
    r"|is not supported by this node|shape '\[[\d, ]+\]' is invalid for input of size"
    # PIL's fromarray got an array it cannot map to an image (float frames, odd channel counts).
    r"|Cannot handle this data type"
    # Pillow cannot save this mode in that format (RGBA as JPEG).
    r"|cannot write mode \w+ as \w+|Unsupported (?:image|video) (?:type|format|mode)"
    r"|" + INPUT_NOT_OPENED +
    # torch's interpolate asked for an empty output (an image or size of zero).
    r"|Input and output sizes should be greater than 0"
    r"|(?:resolution|image size|frame count|\bfps|strength|guidance_scale|num_inference_steps) (?:must|should|has to) be"
    r"|\bimages? (?:must|should) be (?:a |an |of |in |one of )"
    # Wan2GP refusing a LoRA whose keys are of another model, or of a kind it does not read
    # (a DoRA's dora_scale keys, a trainer's own key format)
    r"|it is likely that this Lora is for a different model|\bcontains non Lora keys"
    r"|No compatible weight was found in Lora"
    # Two matrices whose sizes do not fit (77x768 against 4096x320): a model of another family
    # (its text encoder, CLIP vision, ControlNet) wired to this one.
    r"|mat1 and mat2 shapes cannot be multiplied"
    # kijai's wrapper refusing a separate model of another format beside a GGUF one ("With GGUF main
    # model the VACE model must also be a GGUF model").
    r"|\bmodel must (?:also )?be (?:a |in )?GGUF\b|\bmust be with GGUF\b|\bneeds? to be in GGUF format"
    # A tensor size computed from absurd inputs (a seed or a size wired where a size belongs).
    r"|Storage size calculation overflowed"
    # a node or pipeline given a model that lacks the part it needs (a text-only encoder for image prompts)
    r"|\bonly [\w-]+ models? supports? (?:image|video|audio) input"
    # Lip-sync and portrait pipelines need a face in every input frame.
    r"|" + FACE_NOT_DETECTED +
    # a video loader left with no frames by its skip/cap/select settings
    r"|\bNo frames (?:generated|were (?:loaded|read|generated))")
# How diffusers' pipelines word their argument checks (``check_inputs``, read from the installed
# sources: tests/test_diagnose.py runs every such message of the video pipelines, and checks
# that torch's, NumPy's and transformers' own wordings are left alone): two arguments that
# exclude or need each other, lengths and batch sizes that must agree, a value out of its
# range, an argument of an unsupported type or shape. Matched with their case as diffusers
# writes them, and mostly by the argument's name in backticks (torch's internal asserts,
# "Expected len(x) == 1", are left alone).
_ARGUMENT_CHECK = re.compile(_literal_starts(
    r"Cannot (?:pass|forward|provide) both\b|cannot be (?:provided|passed|used) (?:simultaneously|together)"
    r"|must have the same [\w ]{1,30} when passed directly|Mask and image must have the same size"
    r"|batch size:? \d+,? must be|must be (?:the )?same as prompt batch size|Excepted image to have length"
    r"|Expected length of image|should in \[[\d.]+, [\d.]+\]|can't be (?:larger|smaller) than|cannot be larger or equal to"
    r"|but is expected to be \d|Only unpacked \(\d+D\)|Unsupported input type\. Expected|Unsupported output_type"
    r"|is not yet supported\. This may be supported|only supports generating one \w+ at a time"
    r"|batches[^\n]{0,40} must be (?:the )?same size|\bsingle batch of (?:multiple|varying)"
    r"|it must have the same length as the number of"))
# (The same checks naming their arguments in backticks: tried only where a backtick is.)
_ARGUMENT_CHECK_NAMED = re.compile(_literal_starts(
    r"\bOnly one of `|\bPass (?:either|one of|exactly one of) `"
    r"|\bProvide (?:either |only one of |one of |exactly one of |a )?`|\bPlease provide (?:either )?\s*`"
    r"|`[^`\n]{1,40}`, not both\b|`[^`\n]{1,60}` (?:must|should) have the same"
    r"|If (?:any of )?`\w+`[^\n]{0,60}(?:is|are) provided, |\bMust provide `|Cannot (?:provide|forward) `\w+` without"
    r"|\balong with `|`\w+` (?:can only be passed|is required|are required|is missing|cannot be (?:None|undefined|greater))"
    r"|\binput cannot be undefined|Cannot leave (?:both )?`"
    r"|(?:Length|Batch size) of `|`\w+` has batch size \d+|has batch size \d+ and `"
    r"|`\w+` must contain at least one|`\w+` (?:has|have) \d+ elements, but"
    r"|`\w+` (?:has unsupported dimensions|has unexpected shape)|\bUnsupported `\w+"
    r"|`\w+` must have `?\(num_frames|`\w+` must have `1 \+ k|`\w+` has to contain a key|Cannot forward `\w+` when"
    r"|`\w+`: \S+ has \d+ elements|\bOnly [^\n]{1,60} supports? `\w+`"))


def _argument_check(err: ParsedError, text: str) -> bool:
    """The pipeline refused its arguments (its check_inputs, or one of its set phrases)."""
    if is_type(err, "ValueError", "TypeError") and any(f.name == "check_inputs" for f in err.frames):
        return True
    if _PIP_INSTALL.search(text):
        return False  # "`tiktoken` is required ... pip install tiktoken": a package, not an argument
    return bool(_INVALID.search(text) or _ARGUMENT_CHECK.search(text)
                or ("`" in text and _ARGUMENT_CHECK_NAMED.search(text)))
_USER_TYPES = ("NameError", "SyntaxError", "TypeError", "AttributeError", "KeyError", "IndexError",
               "ZeroDivisionError", "UnboundLocalError")


def _name_of_path(path: str) -> str:
    return path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]


_MAX_CLASSIFY = 8000


# diffusers' and transformers' lazy modules wrap whatever failed while importing a submodule.
_FAILED_IMPORT = _rx(r"Failed to import (?P<module>(?:diffusers|transformers)\.[\w.]+) because of the following error"
                     r"[^\n]*\n?(?P<inner>[\s\S]*)")


def classify(err: ParsedError) -> Finding | None:
    """Category of one exception, or None when no rule is sure."""
    m = _FAILED_IMPORT.search(err.message) if "Failed to import" in err.message else None
    if m:
        # The cause is the error inside (the last of a chain of "Failed to import"); whatever
        # it is, a library module that cannot be imported here is set up against other
        # versions of what it imports (torch, transformers, ...) unless the cause says more.
        inner = m["inner"].strip().rsplit("(look up to see its traceback):", 1)[-1].strip()
        inner_err = ParsedError(message=inner)
        found = classify(inner_err) if inner and "Failed to import" not in inner else None
        if found is not None and found.category not in ("user_code", "unknown"):
            return found
        return Finding("version_mismatch", f"{m['module']} could not be imported with the libraries installed here",
                       {"module": m["module"]})
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
                      r"|not implemented for '(?:Float8\w*)'|Float8_e\w+ (?:is )?not supported"
                      # torch's fp8 matmul (the wrappers' "fp8 fast" modes) needs Ada/Hopper (8.9+).
                      r"|_scaled_mm is only supported on CUDA devices with compute capability"
                      # torchao's fp8 per-row scaling likewise (Hopper or MI300)
                      r"|PerRow quantization only works for CUDA>=9\.0")


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


# ComfyUI's own text encode node handed no CLIP (older releases; newer ones say "clip input is
# invalid: None ... your checkpoint does not contain a valid clip or text encoder model").
_NO_CLIP = re.compile(r"['\"]NoneType['\"] object has no attribute ['\"](?:tokenize|encode_from_tokens\w*)['\"]", _I)
_CORE_NODES = re.compile(r"/ComfyUI/nodes\.py$|^nodes\.py$", _I)
# What a ComfyUI node calls on the model wired into it (CLIP_VISION.encode_image, VAE.decode,
# MODEL.clone, a wrapper's clip_vision.model): None there means the loader before it gave nothing.
_NO_MODEL = re.compile(r"['\"]NoneType['\"] object has no attribute ['\"](?:encode_image|first_stage_model|patcher"
                       r"|model|clone|model_options|get_model_object|decode_tiled|encode_tiled)['\"]", _I)
# The node named in ComfyUI's popup or report (an issue title repeats it): one that runs a model.
_MODEL_NODE = re.compile(r"\b(?:[A-Z][A-Za-z0-9]*)?(?:ClipVisionEncode|CLIPVisionEncode|TextEncode|VAEDecode|VAEEncode"
                         r"|VideoDecode|VideoEncode|Sampler)\b")


_WEIGHTS_ONLY = Phrases(r"Weights only load failed|WeightsUnpickler error|Unsupported global: GLOBAL")


_PACKAGE_DIR = re.compile(r"[/\\](?:site|dist)-packages[/\\]", _I)
# (Sources and compiled parts of the package; a model file or folder kept there is a model's.)
_SOURCE_NAME = re.compile(r"\.(?:py|pyi|pyx|c|cc|cpp|cu|cuh|h|hpp|so|pyd|dll)$", _I)


def _loading(err: ParsedError, text: str) -> Finding | None:
    if _NO_CLIP.search(text) and (any(_CORE_NODES.search(f.path) for f in err.frames[-1:]) or (
            not err.frames and re.search(r"\bCLIPTextEncode\b", text))):
        return Finding("component_missing", "the text encode node got no CLIP: the loaded checkpoint carries no text "
                       "encoder (load one with a CLIP loader node)")
    if _NO_MODEL.search(text) and (any(_CORE_NODES.search(f.path) for f in err.frames[-1:]) or (
            not err.frames and _MODEL_NODE.search(text))):
        # (Inside a node pack's own code the None may be the pack's bug; only ComfyUI's own
        # nodes, or a bare popup naming the node, say the input itself was empty.)
        return Finding("component_missing", "the node got no model: the loader node before it loaded nothing (a "
                       "missing file or one of another kind); pick the model file again in its loader")
    m = _UNLOADABLE.search(text)
    if m:
        return Finding("component_missing", "model_index.json names a class diffusers cannot load",
                       {"unloadable_class": m["path"].rsplit(".", 1)[-1]})
    if _WEIGHTS_ONLY.search(text):
        # torch 2.6 made torch.load(weights_only=True) the default: a checkpoint pickled with
        # other objects (numpy scalars, argparse) loads with the code's torch, not this one.
        return Finding("version_mismatch", "this torch (2.6+) loads checkpoints weights-only by default; the code "
                       "that loads this file was written for an older torch")
    if _CORRUPT.search(text) or ("orrupt" in text.lower() and _CORRUPT_WORDS.search(text)):
        facts: dict[str, str | int | float] = {}
        m = re.search(r"(?:checkpoint file|config file at|file) (?:for )?['\"]([^'\"]+)['\"]", text, _I)
        if m:
            facts["file"] = m[1]
        return Finding("weights_corrupt", "a weight or config file could not be read", facts)
    m = SAFETENSORS_FALLBACK.search(text)
    if m:
        # diffusers logs this and then loads the pickle (.bin) weights instead: the folder holds
        # weights in the layout an older diffusers saved, which the installed one no longer
        # mixes with safetensors components; the file is not missing.
        return Finding("version_mismatch", "the checkpoint's weights are in a layout (.bin, not .safetensors) that "
                       "another diffusers release wrote", {"missing_file": m["file"], "missing_path": m["path"]})
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
        if _PACKAGE_DIR.search(path) and _SOURCE_NAME.search(name):
            # A source or data file inside an installed package (colossalai's kernel sources):
            # the install is not the release the code expects, not a model part left out.
            return Finding("version_mismatch", "a file inside an installed package is not there: the installed "
                           "release is not the one the code was written for", {"missing_path": path})
        return Finding("component_missing", "a file or folder the loader needs is not there",
                       {"missing_path": path, "missing_file": name})
    if _COMPONENT_MISSING.search(text) and not _CANNOT_IMPORT.search(text):
        # (An import of huggingface_hub's LocalEntryNotFoundError that fails names the class, not
        # a file the hub lacks: _imports reads it.)
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


# Helpers diffusers exports from diffusers.utils only (diffusers/utils/__init__.py).
_DIFFUSERS_UTILS = frozenset({"export_to_video", "export_to_gif", "export_to_ply", "export_to_obj", "load_image",
                              "load_video", "make_image_grid", "numpy_to_pil", "pt_to_pil"})


# ComfyUI's top-level modules (its repository root), imported by custom node packs.
_COMFYUI_MODULES = frozenset({"comfy", "comfy_extras", "comfy_api", "comfy_execution", "comfy_config", "node_helpers",
                              "folder_paths", "latent_preview", "comfy_api_nodes"})
# "diffusers>=0.25.0 requirement not satisfied": the package is there, at another version.
_REQUIREMENT_UNMET = re.compile(r"\b(?P<pkg>[A-Za-z][\w\-]*)\s*(?P<spec>(?:>=|==|<=|~=|>|<)\s*\d[\w.]*)\s*(?:requirement\s+)?"
                                r"(?:is\s+)?not\s+(?:satisfied|met)", _I)


# Libraries whose releases add and remove modules that others import by name.
_STEP_LIBRARIES = ("transformers", "torch", "huggingface_hub", "accelerate", "torchvision")
# Namespace packages that separate distributions share ("google.protobuf", "nvidia.cudnn"):
# "No module named 'google.protobuf'" is a distribution not installed.
_NAMESPACE_PACKAGES = frozenset({"google", "nvidia", "azure", "backports", "mpl_toolkits", "jaraco", "zope",
                                 "sphinxcontrib", "ruamel", "opentelemetry", "pyannote", "llama_index", "cuda"})
# Packages whose parts come in another distribution of the same import name: cv2.ximgproc is in
# opencv-contrib-python, mmcv._ext in mmcv-full (mmcv-lite lacks the compiled ops).
_VARIANT_PACKAGES = {"cv2": "opencv-contrib-python", "mmcv": "mmcv-full"}
# Folders an app imports its own modules from by path (utils.x, models.x), never pip packages.
_APP_FOLDERS = frozenset({"utils", "models", "modules", "src", "lib", "core", "common", "shared",
                          "scripts", "tools", "app", "transformers_modules"})


def _imports(err: ParsedError, text: str) -> Finding | None:
    m = _CANNOT_IMPORT.search(text)
    if m:
        facts: dict[str, str | int | float] = {"missing_class": m["name"], "module": m["module"]}
        if m["module"] == "diffusers" and m["name"] in _DIFFUSERS_UTILS:
            return Finding("user_code", f"{m['name']} is imported from diffusers.utils, not from diffusers", facts)
        from_diffusers = m["module"].split(".")[0] == "diffusers"
        if from_diffusers and m["name"].endswith("Scheduler"):
            # (A scheduler is no pipeline or model to substitute: the diffusers release is too old.)
            return Finding("version_mismatch", "the installed diffusers lacks this scheduler (a newer release has it)",
                           facts)
        if from_diffusers and looks_like_library_class(m["name"]):
            return Finding("pipeline_unavailable", "the installed diffusers lacks this class", facts)
        if m["name"].endswith("Pipeline"):
            # A pipeline class is what the user asked for by name: the installed package (a
            # release, not the source or a fork with that pipeline) does not provide it.
            return Finding("pipeline_unavailable", f"the installed {m['module'].split('.')[0]} lacks this pipeline",
                           facts)
        return Finding("version_mismatch", "an installed library lacks a name another one imports", facts)
    m = _CANNOT_IMPORT_BARE.search(text)
    if m and m["name"].endswith("Scheduler"):
        return Finding("version_mismatch", "the installed library lacks this scheduler (a newer release has it)",
                       {"missing_class": m["name"]})
    if m and looks_like_library_class(m["name"]):
        # A diffusers class by its shape, named without its module.
        return Finding("pipeline_unavailable", "the installed library lacks this class", {"missing_class": m["name"]})
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
        if "." in module and top in ("diffusers", *_STEP_LIBRARIES):
            facts["package"] = top
        if top == "diffusers" and "." in module:
            if "wan" in module.lower() or ".pipelines." in module:
                return Finding("pipeline_unavailable", "the installed diffusers lacks this module", facts)
            return Finding("version_mismatch", "the installed diffusers lacks a module", facts)
        if top in _STEP_LIBRARIES and "." in module:
            return Finding("version_mismatch", f"the installed {top} lacks a module", facts)
        if "-" in top and "." in module and re.search(r"[/\\]" + re.escape(top) + r"(?:[/\\\s'\"]|$)", text):
            # No pip package is imported by a name with a hyphen: a part of the node pack being
            # imported ("ComfyUI-Easy-Use.py.libs.fluxai" while custom_nodes/ComfyUI-Easy-Use
            # loads): its own files are incomplete.
            return Finding("unknown", "a module of the app or node pack itself is missing (its own files, not a "
                           "package to install): a bug or an incomplete update of that code", facts)
        if top in _COMFYUI_MODULES:
            # ComfyUI's own modules, which node packs import: one missing is a ComfyUI older
            # than the node pack (no pip package provides it).
            return Finding("version_mismatch", "the installed ComfyUI lacks a module a node pack imports", facts)
        parts = module.split(".")
        # A namespace package ("google", "nvidia") is shared by distributions named by its
        # first two parts: google.protobuf is one to install, google.protobuf.internal a part of it.
        dist = ".".join(parts[:2]) if top in _NAMESPACE_PACKAGES else top
        if top == "custom_nodes" and len(parts) > 1:
            # One ComfyUI node pack importing another by its folder: that pack is not installed.
            facts["node_pack"] = parts[1]
            return Finding("missing_dependency", f"the node pack {parts[1]} that this one imports is not installed",
                           facts)
        if top in _APP_FOLDERS:
            # utils.x, models.x: a folder of the app imported by its path, not a package of pip's.
            return Finding("component_missing", f"{module} is a module of the app itself, not a package to install: "
                           "that code is missing or not where it is imported from", facts)
        if len(parts) > dist.count(".") + 1 and top not in _VARIANT_PACKAGES and "is not a package" not in text:
            # Python names the first part it cannot find: "No module named 'a.b'" means that
            # `a` was found and lacks `b`, so nothing is missing to install, the installed `a`
            # is another release than the code was written for (or its own files are incomplete).
            facts["package"] = dist
            return Finding("version_mismatch", f"{dist} is installed but has no module {module}: a release of it "
                           "other than the code was written for, or its files are incomplete", facts)
        facts["missing_package"] = _VARIANT_PACKAGES.get(top) or _pip_name(dist)
        return Finding("missing_dependency", "a Python package is not installed", facts)
    m = next((k for k in _KNOWN_NOT_FOUND.finditer(text) if k["pkg"].lower() in KNOWN_PACKAGES), None)
    if m:
        # A package the rules know, named as not found ("Onnxruntime not found or doesn't come
        # with acceleration providers, switch to OpenCV"): not installed in this environment.
        return Finding("missing_dependency", f"{m['pkg']} is not installed here",
                       {"missing_package": _pip_name(m["pkg"].lower())})
    m = _REQUIREMENT_UNMET.search(text)
    if m:
        return Finding("version_mismatch", "an installed package is not at the version that is required",
                       {"package": m["pkg"], "required": m["spec"]})
    m = _REQUIRES_LIB.search(text)
    pip = _PIP_INSTALL.search(text)
    if pip and not m and (is_type(err, "ImportError") or _NOT_INSTALLED.search(text) or " is required " in text):
        return Finding("missing_dependency", "the error asks for a package to be installed",
                       {"missing_package": pip["pkg"]})
    if m and (is_type(err, "ImportError", "RuntimeError", "AssertionError", "OSError") or not err.type
              or "not found" in text or "install" in text.lower()):
        pkg = pip["pkg"] if pip else next(g for g in m.groups() if g)
        return Finding("missing_dependency", "a package the pipeline needs is not installed",
                       {"missing_package": _pip_name(pkg)})
    if _DLL_MISMATCH.search(text):
        # (The DLL is there; "the specified module could not be found" is the missing one.)
        return Finding("version_mismatch", "a compiled library was built against another release of a DLL it loads")
    if _DEP_MISC.search(text):
        facts = {}
        if re.search(r"ffmpeg|backend to open \S*\.(?:mp4|mov|avi|mkv|webm|gif)\b", text, _I):
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
            "sageattention": "sageattention", "easydict": "easydict", "google.protobuf": "protobuf",
            "google.colab": "google-colab",
            "mpl_toolkits.mplot3d": "matplotlib"}.get(module, module.replace("_", "-").replace(".", "-"))


_CHANNELS = re.compile(r"expected input\[[^\]]*\] to have (\d+) channels, but got (\d+) channels", _I)
# Plain Python types where a pipeline expects tensors or images: the caller passed the wrong thing.
# Methods of tensors and PIL images: an array or a string has none of them.
_TENSOR_OR_IMAGE_ATTR = re.compile(r"has no attribute ['\"](?:to|cpu|cuda|half|float|unsqueeze|permute|convert|resize"
                                   r"|mode|getchannel|split)['\"]", _I)
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
# ... and the failing line (or the paste) shows an image being read or used: any other None
# with no shape (an audio prompt, a latent) is not an unread image.
_IMAGE_READ = re.compile(r"\b(?:img|image|im|frame|photo|pic)\w*\.shape\b|\bimread\b|Image\.open|load_image", _I)


def raised_in_installed_code(err: ParsedError) -> bool:
    """The deepest real frame is in an installed package (site-packages), not the user's code."""
    frames = [f for f in err.frames if not _WRAPPER_PATH.search(f.path)]
    return bool(frames) and bool(_LIBRARY_PATH.search(frames[-1].path)) and not frames[-1].is_user


def latent_channel_mismatch(text: str) -> tuple[int, int] | None:
    """A model's first layer takes N latent channels and got M (both latent widths, not pixels).

    Wan and CogVideoX text-to-video models take 16 channels; their image-to-video models take
    the image's latents and mask too (Wan 2.1 I2V 36, CogVideoX I2V 32, Fun-Control 48): a
    text-to-video checkpoint in an image-to-video workflow, or the reverse.
    """
    m = _CHANNELS.search(text)
    # (4 against 16 is Stable Diffusion's 4-channel latents where a 16-channel VAE or model
    # reads, or the reverse; 3 against 4 is RGBA pixels, channel_mismatch's.)
    if m and m[1] != m[2] and min(int(m[1]), int(m[2])) >= 4 and max(int(m[1]), int(m[2])) >= 8:
        return int(m[1]), int(m[2])
    return None


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


def off_by_one_size(text: str) -> tuple[int, int] | None:
    """Two tensors whose sizes differ by exactly one (both past channel counts such as RGB/RGBA)."""
    m = _SIZE_PAIR.search(text)
    if m:
        a, b = (int(m[1]), int(m[2])) if m[1] else (int(m[3]), int(m[4]))
        if abs(a - b) == 1 and min(a, b) >= 5:
            return a, b
    return None


# ComfyUI's core classes (comfy/model_patcher.py, sd.py, model_base.py, model_sampling.py,
# samplers.py, latent_formats.py, controlnet.py, clip_vision.py) that node packs are written against.
_COMFY_CORE_CLASS = re.compile(r"ModelPatcher\w*|CLIP|VAE|ModelSampling\w*|CFGGuider|Guider_\w+|KSAMPLER|KSampler"
                               r"|LatentFormat|WAN2\d\w*|ControlNet\w*|ClipVisionModel|BaseModel|LoadedModel")
_IN_COMFYUI = re.compile(r"/custom_nodes/|[/\\]comfy[/\\]|\bComfyUI\b|!!! Exception during processing", _I)


_MISSING_TENSOR = re.compile(r"(?:KeyError: |^)['\"]([\w.]+\.(?:weight|bias|scale|scale_weight))['\"]")
_LOADING_FRAME = re.compile(r"\bload\w*|__init__|state_dict\[|sd\[", _I)


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
    # (A bare line, an issue title, carries no type: CPython's wording says TypeError.)
    sig = _SIGNATURE.search(text) if (is_type(err, "TypeError") or not err.type) and not user else None
    if sig:
        # Like an unexpected keyword: code written for another release of the class it calls.
        return Finding("version_mismatch", "a call does not match the signature of the installed version",
                       {"callee": sig["func"]})
    if is_type(err, "SyntaxError") and (user or not err.frames):
        return Finding("user_code", "the cell's code has a syntax error")
    if is_type(err, "AttributeError", "TypeError") and _NONE_IMAGE.search(text) and (
            not err.frames or any(_IMAGE_READ.search(f.code) for f in err.frames[-2:])):
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
        if m and looks_like_library_object(m["obj"]) and is_type(err, "AttributeError"):
            return Finding("version_mismatch", "the installed library's object lacks this attribute",
                           {"missing_attribute": m["name"], "object": m["obj"]})
        return Finding("user_code", "the error was raised by the notebook's own code")
    m = _NAME_UNDEFINED.search(text)
    if m and not err.frames and is_type(err, "NameError"):
        return Finding("user_code", "a name used in the cell was never defined", {"undefined_name": m["name"]})
    if is_type(err, "KeyError") and any("/models/auto/configuration_auto" in f.path or "CONFIG_MAPPING[" in f.code
                                        for f in err.frames):
        # transformers maps a config's model_type to its class; a type it lacks is a model
        # newer than the installed release.
        return Finding("version_mismatch", "the installed transformers does not know this model type (a newer "
                       "release does)", {"model_type": err.first_line.strip("'\"`")})
    if is_type(err, "KeyError") and any(f.path.endswith("/folder_paths.py") for f in err.frames[-2:]):
        # ComfyUI's model folders ("text_encoders", "diffusion_models") arrive with its releases:
        # a node pack asking for one the installed ComfyUI lacks was written for a newer one.
        return Finding("version_mismatch", "the installed ComfyUI has no model folder of this name (a newer release "
                       "does)", {"folder": err.first_line.strip("'\"`")})
    m = _MISSING_TENSOR.search(text) if is_type(err, "KeyError") else None
    loading = [f for f in err.frames[-3:] if _LOADING_FRAME.search(f"{f.name} {f.code}")]
    if m and loading:
        if _LIBRARY_PATH.search(loading[-1].path):
            # The library's own loader names the checkpoint's tensors another way: the
            # checkpoint and the installed release disagree.
            return Finding("version_mismatch", "the installed library reads this checkpoint's tensors under other "
                           "names (another release)", {"missing_tensor": m[1]})
        # An app's or node's loader indexes the file by the names of the format it reads (a
        # ComfyUI node given the file made for another loader, a checkpoint of another model).
        return Finding("invalid_input", "the model file chosen lacks a tensor this loader reads: a file of another "
                       "format or model", {"missing_tensor": m[1]})
    channels = channel_mismatch(text)
    if channels:
        # RGBA (4) or greyscale (1) pixels where the model takes RGB (3).
        return Finding("invalid_input", "the image has the wrong number of colour channels (RGBA or greyscale for RGB)",
                       {"expected_channels": channels[0], "got_channels": channels[1]})
    odd = off_by_one_size(text)
    if odd:
        # 340 against 339, 15 against 14: a U-Net or a patchify halved an odd size and the skip
        # connection (or the un-patchify) no longer lines up: the input's height, width or
        # frame count is not a multiple of what the model divides it by.
        return Finding("invalid_input", "the input's size is not a multiple of what the model downsamples it by "
                       "(two feature maps differ by one)", {"sizes": f"{odd[0]}, {odd[1]}"})
    latents = latent_channel_mismatch(text)
    if latents:
        return Finding("invalid_input", "the model's input layer takes another number of latent channels than it got: "
                       "a text-to-video model given an image-conditioned input (or the reverse), or latents made by "
                       "another model's VAE",
                       {"expected_channels": latents[0], "latent_channels": latents[1]})
    if is_type(err, "ValueError", "TypeError", "AttributeError") and any(
            f.name in ("export_to_video", "export_to_gif") for f in err.frames):
        return Finding("invalid_input", "export_to_video was given something it cannot write (frames, path, fps)")
    if is_type(err, "AttributeError") and _WRONG_TYPE_ATTR.search(text) and (any(
            _PIPELINE_PATH.search(f.path) for f in err.frames[-3:]) or (not err.frames and _TENSOR_OR_IMAGE_ATTR.search(text))):
        return Finding("invalid_input", "the pipeline was given a value of the wrong type (an array or a string "
                       "where it takes an image or tensor)")
    m = _OBJECT_NO_ATTR.search(text)
    if m and looks_like_library_object(m["obj"]):
        return Finding("version_mismatch", "the installed library's object lacks this attribute",
                       {"missing_attribute": m["name"], "object": m["obj"]})
    if m and _COMFY_CORE_CLASS.fullmatch(m["obj"]) and (
            _IN_COMFYUI.search(text) or any(_IN_COMFYUI.search(f.path) for f in err.frames)):
        # ComfyUI's own classes (its ModelPatcher, CLIP, VAE, model_base models, samplers) lacking
        # what a node pack calls on them: the pack and the installed ComfyUI are of other releases.
        return Finding("version_mismatch", "ComfyUI's object lacks what a node pack uses (ComfyUI and the pack are "
                       "out of step)", {"missing_attribute": m["name"], "object": m["obj"]})
    if _VERSION.search(text) and not ((_OBJECT_NO_ATTR.search(text) or _WRONG_TYPE_ATTR.search(text))
                                      and "has no attribute" in text):
        # (A plain Python or NumPy value lacking an attribute says the value is of the wrong type,
        # not that a library is of another version.)
        facts = {}
        m = re.search(r"size mismatch for ([\w.]+)", text, _I)
        if m:
            facts["parameter"] = m[1]
        return Finding("version_mismatch", "the checkpoint or code expects another library version", facts)
    if _argument_check(err, text):
        return Finding("invalid_input", "the pipeline rejected the arguments it was called with")
    return None
