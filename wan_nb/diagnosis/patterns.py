"""What the diagnosis rules share: the words they look for, the Finding they return, small tests on an error.

The rules themselves are split by what they decide: :mod:`~wan_nb.diagnosis.categories`
(what went wrong), :mod:`~wan_nb.diagnosis.stages` (where: the stage and the component),
:mod:`~wan_nb.diagnosis.numbers` (the evidence: allocator numbers, versions).

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

from wan_nb.diagnosis.tracetext import ParsedError

_I = re.IGNORECASE
# A frame in an installed library, not in the user's own code.
_LIBRARY_PATH = re.compile(r"/(?:site|dist)-packages/|/lib/python\d[\d.]*/|/python_embed(?:ed)?/|/Lib/", _I)


# Phrases more than one rule reads (the category and the stage of the same message).
# Lip-sync and portrait pipelines find the face in each input frame before anything runs.
FACE_NOT_DETECTED = r"\bface (?:was )?not detected|\bno faces? (?:was |were )?detected"
# An input picture or video that could not be opened ("Failed to load video: input/x.mp4",
# "cannot open image file"), not an extension, a model or a writer of that name ("Failed to load
# image Python extension", "Unable to open video file for writing", "video writer").
INPUT_NOT_OPENED = (r"\b(?:could not|cannot|can't|unable to|failed to) (?:open|read|load|decode) (?:the )?(?:input )?"
                    r"(?:video|image)\b(?!\s*(?:python|extension|encoder|model|processor|vae|projection|preview|writer"
                    r"|window|file for writ|for writ))")
# A package's own check of another's release, with its three-part version ("ComfyUI-nunchaku
# 0.3.4 is not compatible with nunchaku 0.3.1"; not a model family's "Wan 2.2").
PACKAGE_INCOMPATIBLE = r"\bis not compatible with [A-Za-z][\w.-]* v?\d+\.\d+\.\d+"
# A source line that imports ("import x", "from x import y"): the module it runs in is being set up.
IMPORT_STATEMENT = re.compile(r"^(?:from\s+[\w.]+\s+)?import\s")
# A compiled extension built against another torch (an op it registers, a symbol it links).
BINARY_MISMATCH = r"undefined symbol|operator \w+::\w+ does not exist|No such operator \w+::\w+"
# ffmpeg or PyAV built without the encoder asked for (the LGPL builds lack libx264), or
# without the driver it needs (NVENC): the video writer cannot start.
ENCODER_MISSING = r"Unknown encoder ['\"]?\w+|Could not open codec '\w+'"


def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """A case-blind rule pattern (its branches' leading ``\\b`` moved for speed: see _literal_starts)."""
    return re.compile(_literal_starts(pattern), _I | flags)


class Phrases:
    """A case-blind yes/no test for one of the rules' long lists of phrases, about 5x faster.

    Python's ``re`` tries every alternative at every position, and case-blind literals are
    its slow path: a list of forty phrases costs half a millisecond on a 1 kB message. The
    same pattern with its literals lowered, run case-sensitive on the lowered text, says yes
    where the case-blind one does (escapes such as ``\\S`` and group names are kept as
    written; tests/test_diagnose.py checks both agree on every report), at a fifth of the cost. Only for rules that need the answer, not the match:
    positions in the lowered text are not those of the message.
    """

    def __init__(self, pattern: str, flags: int = 0) -> None:
        if "(?-i" in pattern or flags & _I:
            raise ValueError("a case-sensitive part cannot be lowered")
        self.pattern = pattern
        self.flags = flags
        self._lowered = re.compile(_literal_starts(_lower_literals(pattern)), flags)

    def search(self, text: str) -> bool:
        return self._lowered.search(text.lower()) is not None

    def __repr__(self) -> str:
        return f"Phrases({self.pattern[:40]!r}...)"


def _literal_starts(pattern: str) -> str:
    r"""The same pattern with each top-level branch's leading ``\b`` moved behind its first letter.

    At each position ``re`` skips a branch whose first character is a literal that does not
    match, but it must try a ``\b`` branch in full; so ``\bword`` branches make a long list three
    to six times slower. ``\bw`` matches where ``w(?<!\w.)`` does (the letter w with no word
    character before it), and that branch starts with a literal.
    """
    out: list[str] = []
    depth, i, start = 0, 0, True
    in_class = False
    while i < len(pattern):
        c = pattern[i]
        if (start and pattern.startswith("\\b", i) and i + 2 < len(pattern) and pattern[i + 2].isalnum()
                and pattern[i + 3:i + 4] not in ("?", "*", "+", "{")):
            out.append(pattern[i + 2] + "(?<!\\w.)")
            i += 3
            start = False
            continue
        start = False
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            # "[]a]" and "[^]a]": a "]" right after the opening is a member, not the end.
            skip = 2 if pattern.startswith("^]", i + 1) else 1 if pattern.startswith("]", i + 1) else 0
            if skip:
                out.append(pattern[i:i + 1 + skip])
                i += 1 + skip
                continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            start = True
        out.append(c)
        i += 1
    return "".join(out)


def _lower_literals(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            out.append(pattern[i:i + 2])  # \S stays \S, \. stays \.
            i += 2
        elif pattern.startswith(("(?P<", "(?P="), i):
            end = pattern.index(">" if pattern[i + 3] == "<" else ")", i)
            out.append(pattern[i:end + 1])  # a group's name is not text to match
            i = end + 1
        else:
            out.append(pattern[i].lower())
            i += 1
    return "".join(out)



COMPONENTS = ("transformer_2", "transformer", "text_encoder", "image_encoder", "image_processor",
              "tokenizer", "scheduler", "vae")

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


# CPython's own wording names the exception when a paste dropped its type (a ComfyUI popup, an
# issue title, "!!! Exception during processing !!! 'NoneType' object has no attribute ...").
_CANONICAL_MESSAGES = (
    (re.compile(r"^['\"]?[\w.]+['\"]? object has no attribute ['\"]|^module ['\"][\w.]+['\"] has no attribute ['\"]"),
     "AttributeError"),
    (re.compile(r"^name ['\"]\w+['\"] is not defined"), "NameError"),
    (re.compile(r"^cannot import name ['\"]\w+['\"]"), "ImportError"),
    (re.compile(r"^No module named ['\"]"), "ModuleNotFoundError"),
    (re.compile(r"^[\w.]+\(\) (?:got an unexpected keyword argument|missing \d+ required|takes \d+ positional)"),
     "TypeError"),
)


def inferred_type(err: ParsedError) -> str:
    """The exception's short type name, or the one CPython's message names when none was pasted."""
    if err.short_type or not err.message:
        return err.short_type
    # The first lines, not only the first: a pasted message often follows a sentence of the
    # reporter's ("Hi, I get this when I run it:").
    for line in err.message.strip().split("\n")[:3]:
        name = next((name for rx, name in _CANONICAL_MESSAGES if rx.search(line[:300].strip())), "")
        if name:
            return name
    return ""


def is_type(err: ParsedError, *names: str) -> bool:
    short = inferred_type(err)
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
    return bool(re.fullmatch(r"(?:Wan|(?i:AutoencoderKL)|UMT5|T5|CLIP)\w*|\w*(?:Pipeline|Model|Scheduler|Tokenizer"
                             r"|Processor|Mixin)", name))


def looks_like_library_object(name: str) -> bool:
    """A public class of diffusers/transformers by its shape (a pipeline, model, scheduler, ...).

    Stricter than :func:`looks_like_library_class`: a ``Wan`` prefix alone (``WanAttentionBlock``)
    is also how the original Wan code and the wrappers name their own inner modules, so an
    attribute missing there says nothing about an installed library's version.
    """
    return bool(re.fullmatch(r"(?:AutoencoderKL|UMT5|T5|CLIP)\w*|\w*(?:Pipeline|Model|Scheduler|Tokenizer(?:Fast)?"
                             r"|Processor|Mixin)"
                             # diffusers' shared building blocks (models/attention.py, attention_processor.py,
                             # resnet.py), which other projects build their models from.
                             r"|BasicTransformerBlock|FeedForward|AttnProcessor\w*|Resnet(?:Block)?\w*2D"
                             r"|(?:Down|Up)sample[123]D", name))


# Frames that only forward a call (decorators, torch's module call machinery, hooks).
_WRAPPER_PATH = re.compile(r"/torch/utils/_contextlib\.py$|/contextlib\.py$|/functools\.py$|"
                           r"/torch/nn/modules/module\.py$|/accelerate/hooks\.py$|/diffusers/hooks/|"
                           r"/huggingface_hub/utils/_validators\.py$|/torch/_dynamo/|/torch/utils/checkpoint\.py$")


