"""Say what went wrong and where: an exception, or a pasted traceback, to a ``Diagnosis``.

Longer than most modules because it is the one path from an exception or text to a Diagnosis (parse, classify, locate, evidence); the rules and the wording live in their own modules.

>>> d = diagnose("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.")
>>> d.category, d.suggested[0]
('out_of_memory', 'model_cpu_offload')

``diagnose`` reads the exception's type first, then its message, then its frames (the
deepest frame that belongs to a known stage locates the failure), then what the log around
it says (ComfyUI node names, where the progress bar stopped). When the evidence is not
there it says ``unknown`` and why, rather than guess. It never raises and never keeps the
exception or its traceback: a Diagnosis holds strings and numbers only, because a kept
traceback keeps its frames and so their CUDA tensors alive. (With ``WAN_NB_STRICT_DIAGNOSE=1``
an error inside wan_nb's own rules is raised instead of reported as ``unknown``: the tests
run that way.)

The stage: the innermost frame of a known model part (diffusers, the original Wan code,
ComfyUI, kijai's wrappers, Wan2GP, DiffSynth-Studio), then a function the message names
(``WanVideoModelLoader.loadmodel() got ...``), then the log: a node's name, the last phase
or progress bar before the error. ``Try:`` lists only strategies ``wan_nb.plan()`` would run
for the same failure; what the plan leaves to the user is in the next steps.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from wan_nb.diagnosis import advice, categories, lookalikes, numbers, stages
from wan_nb.diagnosis import patterns as P
from wan_nb.diagnosis.tracetext import Frame, ParsedError, ParsedText, parse
from wan_nb.libraries import WAN_CLASS_INTRODUCED, version_tuple
from wan_nb.units import format_bytes
from wan_nb.vocabulary import CATEGORIES, STAGES, STRATEGY_NAMES

__all__ = ["Diagnosis", "diagnose", "diagnose_text", "diagnose_file"]

# Evidence keys that hold byte counts (printed as sizes by to_text).
BYTE_KEYS = frozenset({
    "tried_to_allocate", "total_capacity", "free", "allocated_by_pytorch", "reserved_unallocated",
    "reserved_by_pytorch", "process_in_use", "other_processes_in_use", "other_allocations", "budget", "in_use",
})
_MAX_FRAMES = 300
# Tests set this so that an error inside wan_nb's own rules fails the test instead of being
# turned into an "unknown" diagnosis (which is what users get: one failure is enough).
STRICT_ENV = "WAN_NB_STRICT_DIAGNOSE"


def _strict() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


@dataclass(frozen=True)
class Diagnosis:
    """What failed (``category``), where (``stage``, ``component``), the facts, and what to try."""

    category: str
    stage: str
    summary: str
    evidence: dict[str, str | int | float] = field(default_factory=dict, hash=False)
    component: str | None = None
    recoverable: bool = False
    suggested: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()
    # Other categories the same text is printed for (a package's bug and packages out of step
    # raise the same AttributeError): the text cannot tell them apart, the next steps say what to check.
    could_also_be: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The same rules as from_dict: a Diagnosis built by hand is checked as one read from JSON.
        if self.category not in CATEGORIES:
            raise ValueError(f"`category` must be one of {', '.join(CATEGORIES)}, got {self.category!r}.")
        if self.stage not in STAGES:
            raise ValueError(f"`stage` must be one of {', '.join(STAGES)}, got {self.stage!r}.")
        if not isinstance(self.summary, str):
            raise TypeError(f"`summary` must be a string, got {type(self.summary).__name__}.")
        unknown = [s for s in self.suggested if s not in STRATEGY_NAMES]
        if isinstance(self.suggested, str) or unknown:
            raise ValueError(f"`suggested` must be a tuple of strategy names ({', '.join(STRATEGY_NAMES)}), "
                             f"got {self.suggested!r}.")
        if isinstance(self.could_also_be, str) or any(
                c not in CATEGORIES or c == self.category for c in self.could_also_be):
            raise ValueError(f"`could_also_be` must be a tuple of categories other than {self.category!r}, "
                             f"got {self.could_also_be!r}.")
        for name in ("suggested", "next_steps", "could_also_be"):
            # Lists (JSON's, a caller's) become tuples: the frozen record stays hashable.
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [k for k, v in self.evidence.items() if not isinstance(k, str) or not isinstance(v, (str, int, float))]
        if bad:
            raise TypeError(f"`evidence` maps names to strings or numbers; {bad[0]!r} does not.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; ``Diagnosis.from_dict(d.to_dict()) == d``."""
        return {
            "category": self.category,
            "stage": self.stage,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "component": self.component,
            "recoverable": self.recoverable,
            "suggested": list(self.suggested),
            "next_steps": list(self.next_steps),
            "could_also_be": list(self.could_also_be),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        """Rebuild from :meth:`to_dict` output (e.g. ``wan-nb diagnose --json``)."""
        if data.get("category") not in CATEGORIES or data.get("stage") not in STAGES:
            raise ValueError(
                f"Not a diagnosis: `category` must be one of {', '.join(CATEGORIES)} and `stage` one of "
                f"{', '.join(STAGES)}; got {data.get('category')!r} and {data.get('stage')!r}."
            )
        return cls(
            category=str(data["category"]),
            stage=str(data["stage"]),
            summary=str(data.get("summary", "")),
            evidence=dict(data.get("evidence") or {}),
            component=data.get("component"),
            recoverable=bool(data.get("recoverable", False)),
            suggested=tuple(data.get("suggested") or ()),
            next_steps=tuple(data.get("next_steps") or ()),
            could_also_be=tuple(data.get("could_also_be") or ()),
        )

    def to_text(self) -> str:
        """A short multi-line rendering for terminals, the CLI and the notebook's text fallback."""
        where = self.stage if self.component is None else f"{self.stage} ({self.component})"
        head = f"{self.category} at {where}" + (" — recoverable" if self.recoverable else "")
        lines = [head, self.summary]
        if self.could_also_be:
            lines.append("Could also be: " + lookalikes.described(self.could_also_be))
        if self.evidence:
            lines.append("Evidence:")
            for key, value in self.evidence.items():
                shown = format_bytes(value) if key in BYTE_KEYS and isinstance(value, (int, float)) else value
                lines.append(f"  {key}: {shown}")
        if self.suggested:
            lines.append("Try: " + ", ".join(self.suggested))
        if self.next_steps:
            lines.append("Next steps:")
            lines.extend(f"  - {step}" for step in self.next_steps)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # IPython's text/plain: the readable rendering, not the dataclass's field dump.
        printer.text(self.to_text())


# --- entry points ---------------------------------------------------------------------------------


def diagnose(error: object) -> Diagnosis:
    """Diagnose an exception (with its traceback) or the text of a traceback or log.

    Args:
        error: an exception (``sys.last_value`` in a notebook), ``sys.exc_info()``, or the
            text (``str`` or ``bytes``) of a traceback or log.

    Never raises: input it cannot read gives an ``unknown`` diagnosis whose evidence says why.
    """
    try:
        if isinstance(error, tuple) and len(error) == 3 and isinstance(error[1], BaseException):
            error = error[1]  # sys.exc_info()
        if isinstance(error, BaseException):
            return _from_exception(error)
        if isinstance(error, (bytes, bytearray, memoryview)):
            return diagnose_text(_decode(bytes(error)))
        if isinstance(error, str):
            return diagnose_text(error)
        if error is None:
            return _unknown("nothing to diagnose: pass the exception, or the traceback's text")
        if isinstance(error, Path):
            return _unknown("got a path: use diagnose_file(path) to read a log file")
        return _unknown(f"cannot diagnose a {type(error).__name__}: pass an exception or a traceback's text")
    except Exception as exc:  # a diagnosis tool must not add a second failure to the first; the Diagnosis says it could not read the error
        if _strict():
            raise
        return _unknown(f"wan_nb could not read this error ({type(exc).__name__} inside wan_nb.diagnosis)")


def diagnose_text(text: str) -> Diagnosis:
    """Diagnose the text of a traceback or log (a colleague's output, a GitHub issue)."""
    try:
        if not isinstance(text, str):
            return diagnose(text)
        if not text.strip():
            return _unknown("the text is empty")
        return _from_parsed(parse(text), source="text")
    except Exception as exc:  # as above, for text: the Diagnosis says it could not read it
        if _strict():
            raise
        return _unknown(f"wan_nb could not read this text ({type(exc).__name__} inside wan_nb.diagnosis)")


def diagnose_file(path: str | Path) -> Diagnosis:
    """Diagnose a saved log; ``"-"`` reads standard input (for ``wan-nb diagnose -``)."""
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        else:
            data = Path(path).read_bytes()
    except OSError as exc:
        return _unknown(f"could not read {path}: {exc.strerror or exc}")
    return diagnose(data)


def _decode(data: bytes) -> str:
    # PowerShell's ">" writes UTF-16 with a BOM; everything else is UTF-8 or close to it.
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


# --- live exceptions -----------------------------------------------------------------------------


def _oom_link(exc: BaseException) -> BaseException | None:
    """An out-of-memory error anywhere in the chain (``__cause__`` and ``__context__``), by type name.

    A CPU-budget OOM inside ``from_pretrained`` surfaces as ``OSError("Unable to load
    weights ...")`` from a ``ValueError`` from the ``torch.OutOfMemoryError``: the memory
    ran out, the weights are fine. Matched by name so torch need not be imported.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 32:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if any(c.__name__ == "OutOfMemoryError" for c in type(current).__mro__):
            return current
        todo += [e for e in (current.__cause__, current.__context__) if isinstance(e, BaseException)]
    return None


def _from_exception(exc: BaseException) -> Diagnosis:
    parsed = _parse_exception(exc)
    oom = _oom_link(exc)
    if oom is None or oom is exc:
        return _from_parsed(parsed, source="exception")
    outer = categories.classify(parsed.errors[-1]) if parsed.errors else None
    if outer is not None and outer.category in ("out_of_memory", "host_out_of_memory"):
        return _from_parsed(parsed, source="exception")
    # Diagnose the OOM itself, with the raised error's frames to locate it; an OOM that
    # surfaced as a failed load happened while loading.
    oom_err = _error_of(oom)
    others = [e for e in parsed.errors if not (e.type == oom_err.type and e.message == oom_err.message)]
    diagnosis = _from_parsed(ParsedText(errors=[*others, oom_err], lines=[], wrappers=parsed.wrappers),
                             source="exception")
    loading = outer is not None and outer.category in ("weights_corrupt", "component_missing", "unknown")
    if diagnosis.category in ("out_of_memory", "host_out_of_memory") and (loading or diagnosis.stage == "unknown"):
        evidence = {**diagnosis.evidence, "stage_from": "the out-of-memory error behind a failed load",
                    "raised_as": parsed.errors[-1].first_line[:300] if parsed.errors else ""}
        diagnosis = Diagnosis(
            category=diagnosis.category, stage="load",
            summary=advice.summary(diagnosis.category, "load", diagnosis.component, evidence),
            evidence=evidence, component=diagnosis.component, recoverable=True,
            suggested=advice.suggest(diagnosis.category, "load", evidence),
            next_steps=advice.next_steps(diagnosis.category, "load", diagnosis.component, evidence))
    return diagnosis


def _parse_exception(exc: BaseException) -> ParsedText:
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < 8:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    errors = [_error_of(e) for e in reversed(chain)]  # printed order: the cause first
    group = getattr(exc, "exceptions", None)  # an ExceptionGroup: its first failure says most
    if isinstance(group, tuple) and group and isinstance(group[0], BaseException):
        errors.append(_error_of(group[0]))
    return ParsedText(errors=errors, lines=[], wrappers=())


def _error_of(exc: BaseException) -> ParsedError:
    cls = type(exc)
    module = cls.__module__
    name = cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ can raise anything and must not hide the type
        message = ""
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        message = "\n".join([message, *map(str, notes)])
    if isinstance(exc, ImportError) and exc.name and exc.name not in message:
        message += f"\nNo module named '{exc.name}'" if isinstance(exc, ModuleNotFoundError) else ""
    bases = tuple(c.__name__ for c in cls.__mro__)
    return ParsedError(type=name, message=message, frames=_frames_of(exc.__traceback__), bases=bases)


def _frames_of(tb: Any) -> list[Frame]:
    import linecache

    frames: list[Frame] = []
    while tb is not None:
        code = tb.tb_frame.f_code
        filename = code.co_filename
        lineno = tb.tb_lineno
        line = linecache.getline(filename, lineno).strip() if lineno else ""
        func = getattr(code, "co_qualname", code.co_name)
        frames.append(Frame(filename.replace("\\", "/"), lineno, func, line))
        tb = tb.tb_next
    return frames[-_MAX_FRAMES:]


@lru_cache(maxsize=8)
def _installed(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# --- building the diagnosis ---------------------------------------------------------------------


def _from_parsed(parsed: ParsedText, *, source: str) -> Diagnosis:
    errors = parsed.errors
    if not errors:
        return _unknown("no error message or traceback found in the input", source=source)
    chosen, finding = errors[-1], None
    for err in reversed(errors):  # the raised exception first, then what caused it
        finding = categories.classify(err)
        if finding is not None:
            chosen = err
            break
    # A paste with no exception line at all is one typeless error holding the whole paste (up to
    # 4,000 characters): classified already, it need not be read again as its own log.
    whole = len(errors) == 1 and not errors[0].type and len(errors[0].message) < 3900
    if finding is None and parsed.lines and not whole:
        # No exception line says what failed: the log around it may (a killed process prints
        # "Killed", NumPy its ABI notice, ComfyUI "Value not in list" before the traceback).
        # Frame and source lines are left out: their words are code, not messages.
        log = [line for line in parsed.lines if line[:1] not in (" ", "\t") and not line.startswith("File ")]
        finding = categories.classify(ParsedError(message="\n".join(log)[-8000:]))
        if finding is not None:
            finding.rule += " (read from the log around the error)"
    if finding is not None and finding.category == "user_code" and not chosen.frames and _library_frame_line(parsed):
        # The exception line came without frames, but the traceback pasted with it runs through
        # installed packages: not the user's own code, most likely a bug of that package or app.
        finding = P.Finding("unknown", "an error raised inside installed code (its traceback runs through "
                            "site-packages): a bug there, not the user's code")
    elif (source == "text" and finding is not None and finding.category == "user_code" and not chosen.frames
          and P.is_type(chosen, "NameError") and not _users_code_shown(parsed)):
        # A pasted bare "NameError: name 'x' is not defined" is printed the same by a cell and
        # by a package that forgot an import or has a typo; without the cell, the script line
        # or the call that used the name, whose code it is is not shown: say so, do not guess.
        # (A live exception keeps its frames; one without any was made or raised by hand.)
        finding = P.Finding("unknown", "a NameError pasted without the code that raised it: a notebook's or a "
                            "package's, the text does not show", finding.facts)
    category = finding.category if finding else "unknown"
    evidence: dict[str, str | int | float] = {}
    if chosen.type:
        evidence["exception_type"] = chosen.type
    if chosen.type and chosen.first_line:
        evidence["message"] = chosen.first_line[:500]
    elif chosen.message.strip():
        # No exception line: the log's last line is what the user saw last ("Killed").
        evidence["message"] = chosen.message.strip().rsplit("\n", 1)[-1].strip()[:500]
    if finding:
        evidence["rule"] = finding.rule
        evidence.update({k: v for k, v in finding.facts.items() if v not in ("", None)})

    stage, located_by, frame = _locate(parsed, chosen, category, evidence)
    if frame is not None:
        evidence["frame"] = frame.describe()
    if located_by:
        evidence["stage_from"] = located_by
    if category in ("out_of_memory", "host_out_of_memory") and any(
            _IMAGE_CONTEXT.search(f"{f.name} {f.code}") for f in chosen.frames[-3:]):
        # An I2V transformer's projection of the image embedding: one image whatever the
        # frames, so a plan can tell that fewer frames would not change this allocation.
        evidence["allocation_in"] = "image_context"
    component = stages.component_from(chosen, evidence, stage)
    if category == "component_missing" and component is None:
        component = _missing_from_folder(evidence)

    if source == "exception":
        _add_installed_versions(category, evidence)
    else:
        evidence.update({k: v for k, v in numbers.versions_in_text(parsed.lines).items() if k not in evidence})
    _add_required_version(category, evidence)
    if parsed.wrappers:
        evidence["wrapper"] = ", ".join(parsed.wrappers)
    evidence["source"] = source
    if category == "unknown":
        # A rule that decided "unknown" (a package's own bug, a NameError without its code) says why.
        evidence["reason"] = finding.rule if finding else _unknown_reason(chosen)

    others = lookalikes.could_also_be(category, chosen, evidence)
    return Diagnosis(
        category=category,
        stage=stage,
        summary=advice.summary(category, stage, component, evidence),
        evidence=evidence,
        component=component,
        recoverable=category not in ("accelerator_fault", "user_code", "unknown"),
        suggested=advice.suggest(category, stage, evidence),
        next_steps=advice.next_steps(category, stage, component, evidence) + tuple(other.step for other in others),
        could_also_be=tuple(other.category for other in others),
    )


_FRAME_IN_PACKAGE = re.compile(r'^\s*File "[^"]*[/\\](?:site|dist)-packages[/\\]', re.M)


def _library_frame_line(parsed: ParsedText) -> bool:
    return any(_FRAME_IN_PACKAGE.match(line) for line in parsed.lines[:400])


# Signs that the pasted text shows the user's own code: IPython's cell markers and arrows, a
# script's top level, or a call a user's script makes (the pipeline, its export, its loading).
_USERS_CODE = re.compile(r"^-+> ?\d+ |Cell In ?\[\d+\]|<ipython-input-|ipykernel_\d+|<module>|^\s*In \[\d+\]:"
                         r"|\b(?:export_to_video|export_to_gif|load_image|from_pretrained)\b|\bpipe(?:line)?\(", re.M)


def _users_code_shown(parsed: ParsedText) -> bool:
    return any(_USERS_CODE.search(line) for line in parsed.lines[:400])


_EXPORT_CALL = re.compile(r"\b(?:export_to_video|export_to_gif|save_video|cache_video|mimwrite|mimsave)\b")


# diffusers' placement calls, named in messages such as "`enable_model_cpu_offload` requires accelerator".
_MOVE_CALL = re.compile(r"\benable_(?:model|sequential)_cpu_offload\b|\benable_group_offload\b"
                        r"|\.to\(\s*['\"](?:cuda|mps|xpu)"
                        # transformers refuses to move a bitsandbytes-quantized model itself.
                        r"|`\.to` is not supported for `?[48]-bit|Calling `(?:to|cuda)\(\)` is not supported for `?[48]-bit")
# An attribute missing on the object a step calls names the step ('None' has no 'tokenize').
# (ComfyUI's CLIPTextEncode calls clip.tokenize, then encode_from_tokens_scheduled since late 2024.)
_ATTR_STEP = re.compile(r"has no attribute ['\"](tokenize|encode_from_tokens\w*|encode_token_weights|encode_prompt"
                        r"|encode_text)['\"]")
# Pillow's Image methods that make an input picture ready (a numpy array or a tensor has none).
_IMAGE_METHOD = re.compile(r"has no attribute ['\"](convert|getchannel|thumbnail|resize)['\"]")
# Messages about the input picture itself (Pillow cannot read the file; diffusers' image
# processor cannot convert what it got; an RGBA/greyscale image met RGB): the input was being
# made ready. (A pipeline's check_inputs refusing an argument's type says no stage.)
# (Lip-sync and portrait pipelines find the face in every input frame before anything runs.)
_INPUT_IMAGE_MSG = re.compile(r"cannot identify image file|Input is in incorrect format|" + P.FACE_NOT_DETECTED, re.I)
# A compiled extension built against another torch: found out when it is loaded.
_BINARY_MISMATCH = re.compile(P.BINARY_MISMATCH)
# A GGUF file's header and tensors are read as the model is loaded ("Unexpected architecture type in GGUF file").
_GGUF_FILE = re.compile(r"\bin (?:the )?GGUF file\b|\bGGUF magic\b|\bGGUF file\b[^\n]{0,80}\b(?:architecture|tensor|header|magic|version)",
                        re.I)
# A LoRA read and applied to the model ("Error while loading Loras: ...", "this Lora is for a
# different model"): part of setting the model up.
_LORA_LOADING = re.compile(r"\b(?:while|when|could not|failed to) load(?:ing)? (?:the )?loras?\b"
                           r"|\bLora\b[^\n]{0,200}\bfor a different model", re.I)
# diffusers' pipeline constructor refusing a component of another class ("PeftModel() is of type:
# <class 'peft...'>, but should be <class '...ModelMixin'>").
_COMPONENT_TYPE_CHECK = re.compile(r"is of type: <class '[\w.]+'>, but should be <class")
# imageio's "Could not find a backend to open X with iomode r": a file being read, not written.
_READ_MODE = re.compile(r"\bwith iomode r[IiVv?]?\b")
# An app's or library's own check of the versions it needs, run as it starts.
_VERSION_CHECK = re.compile(r"Incorrect version of [\w.-]+|is required for a normal functioning of this module|"
                            + P.PACKAGE_INCOMPATIBLE)
# The video writer's encoder, named in its own error (ffmpeg): the frames were being written.
_CODEC_MSG = re.compile(P.ENCODER_MISSING, re.I)
# Import failures: Python's, diffusers' lazy modules', ComfyUI's loading of node packs at start-up.
_IMPORT_NAME = re.compile(r"cannot import name ['\"]?\w+['\"]? from|Failed to import [\w.]+ because of the following"
                          r"|\bmodule for custom nodes:|\(IMPORT FAILED\)")


_IMAGE_CONTEXT = re.compile(r"\bimage_embedder\b|WanImageEmbedding")


# ComfyUI's execution.py runs a node (execute -> get_output_data -> _map_node_over_list); its
# nodes.py load_custom_node imports node packs at start-up.
_NODE_RUN_FRAME = re.compile(r"^(?:recursive_execute|execute|get_output_data|_?map_node_over_list|process_inputs"
                             r"|_async_map_node_over_list)$")
_NODE_REPORT = re.compile(r"Node Type:|Error occurred when executing|!!! Exception during processing")


def _inside_running_node(parsed: ParsedText, err: ParsedError) -> bool:
    """An import that failed inside a ComfyUI node while it ran (imported lazily by the node).

    Such an import fails in the node's own stage (a sampler importing a latent format when it
    samples), not while anything is set up; a node pack imported at start-up shows
    load_custom_node instead.
    """
    if any(f.name == "load_custom_node" for f in err.frames) or any(
            "IMPORT FAILED" in line or "load_custom_node" in line for line in parsed.lines[-200:]):
        return False
    running = any(f.path.endswith("/execution.py") and _NODE_RUN_FRAME.match(f.name) for f in err.frames)
    return running or any(_NODE_REPORT.search(line) for line in parsed.lines[:200]) or _popup_node(parsed)


def _popup_node(parsed: ParsedText) -> bool:
    """ComfyUI's error popup pasted: the node's type alone on a line over the message ("KSamplerAdvanced")."""
    return any(stages.is_node_line(line) for line in parsed.lines[:3])


def _locate(parsed: ParsedText, chosen: ParsedError, category: str,
            evidence: dict[str, str | int | float]) -> tuple[str, str, Frame | None]:
    """Where it failed: the innermost frame of a known model part, then the message, then the log.

    Two messages come before the frames, where the frames alone mislead: imageio's read mode
    (its reader and writer share frames) and a package's own import of one of its parts (a
    flash_attn frame is not attention running).
    """
    order = [chosen, *[e for e in reversed(parsed.errors) if e is not chosen]]
    if _READ_MODE.search(chosen.message[:500]):
        # imageio writes and reads through the same frames; its mode says which.
        return "preprocess", "imageio was opening a file to read", None
    last = chosen.frames[-1] if chosen.frames else None
    # A package's own import of one of its parts failing (flash_attn importing its compiled
    # extension), as the innermost frame: nothing ran yet, whatever the package is for.
    if last is not None and last.name == "<module>" and not last.is_user and P.IMPORT_STATEMENT.match(last.code):
        return "load", "the failing line is a package importing one of its parts", last
    for err in order:
        frames = err.frames
        if category == "user_code":
            # The cell's own line says what the user meant, not where a pipeline failed.
            frames = [] if P.is_type(err, "SyntaxError") else [f for f in frames if not f.is_user]
        found = stages.stage_from_frames(frames)
        if found:
            return found[0], "frame", found[1]
    if category == "user_code":
        # Except when that line was the export: the job had reached writing the video.
        said = [f.code for f in chosen.frames[-1:]] + [line for line in parsed.lines if chosen.first_line
                                                      and chosen.first_line in line]
        if any(_EXPORT_CALL.search(code) for code in said) and not _IMPORT_NAME.search(chosen.message):
            return "postprocess", "the failing line writes the video", None
        return "unknown", "", None
    for err in order:
        direction = stages.vae_direction(parsed, err.frames)
        if direction:
            return direction, "frames inside the VAE in a text-to-video run (only conditioned runs encode)", None
    by_callee = stages.stage_from_callee(str(evidence.get("callee", "")))
    if by_callee:
        return by_callee, f"the message names {evidence['callee']}", None
    m = _ATTR_STEP.search(chosen.message[:2000])
    if m:
        return "text_encode", f"the failing call is .{m[1]}(), a step of encoding the prompt", None
    m = _IMAGE_METHOD.search(chosen.message[:2000])
    if m:
        return "preprocess", f"the failing call is .{m[1]}(), Pillow's, on the input image", None
    if _MOVE_CALL.search(chosen.first_line):
        return "to_device", "the message names the call that moves or offloads the pipeline", None
    if category == "invalid_input" and ("got_channels" in evidence or _INPUT_IMAGE_MSG.search(chosen.message[:2000])):
        return "preprocess", "the message is about the input image, read and converted before anything runs", None
    if _CODEC_MSG.search(f"{chosen.type}: {chosen.message[:500]}"):
        return "postprocess", "the message names the video writer's codec", None
    if (_IMPORT_NAME.search(chosen.message) or any(_IMPORT_NAME.search(line) for line in parsed.lines[-40:])) and not any(
            stages.frame_stage(f) for f in chosen.frames) and not _inside_running_node(parsed, chosen):
        # A name imported at the top of a script or module: nothing had run yet, whatever the
        # name is (an import of export_to_video fails before any video exists).
        return "load", "imports run before anything else, while the pipeline is set up", None
    hint = stages.stage_from_text(parsed)
    if hint:
        return hint[0], hint[1], None
    if category in ("component_missing", "weights_corrupt", "pipeline_unavailable") or (
            category == "version_mismatch" and (stages.is_state_dict_mismatch(chosen.message)
                                                or categories.SAFETENSORS_FALLBACK.search(chosen.message))):
        return "load", "these failures happen while a pipeline is loaded", None
    if category == "version_mismatch" and _BINARY_MISMATCH.search(chosen.message[:2000]):
        return "load", "a compiled extension that does not match fails as it is imported", None
    if _GGUF_FILE.search(chosen.message[:2000]):
        return "load", "the message is about a GGUF file being read", None
    if _LORA_LOADING.search(chosen.message[:2000]):
        return "load", "the message is about a LoRA being loaded", None
    if _COMPONENT_TYPE_CHECK.search(chosen.message[:2000]):
        return "load", "diffusers checks each component's class as the pipeline is built", None
    if category == "version_mismatch" and _VERSION_CHECK.search(chosen.message[:2000]):
        return "load", "the code checks the versions it needs as it starts", None
    if P.is_type(chosen, "ImportError") and category in ("missing_dependency", "version_mismatch"):
        return "load", "imports run before anything else, while the pipeline is set up", None
    return "unknown", "", None


def _missing_from_folder(evidence: dict[str, str | int | float]) -> str | None:
    """Which components a model folder named in the error lacks, when that folder is here.

    diffusers names the model root, not the component, when a component's folder is gone;
    model_index.json says which folders should be there.
    """
    named = str(evidence.get("missing_path", "")).strip()
    if not named:
        return None
    try:
        root = Path(named).expanduser()
        index = root / "model_index.json"
        if not index.is_file():
            return None
        entries = json.loads(index.read_text(encoding="utf-8"))
        missing = [name for name, value in entries.items() if not name.startswith("_")
                   and isinstance(value, list) and value and value[0] is not None and not (root / name).is_dir()]
    except (OSError, ValueError, AttributeError):
        return None
    if not missing:
        return None
    evidence["missing_components"] = ", ".join(missing)
    return missing[0]


def _unknown_reason(err: ParsedError) -> str:
    if P.is_type(err, "KeyboardInterrupt"):
        return "the run was interrupted (KeyboardInterrupt): that is not a failure to diagnose"
    if not err.type and not err.frames:
        return "no exception line or traceback frame was recognised in the input"
    return f"no rule matched {err.type or 'this message'}; wan_nb does not guess"


def _add_installed_versions(category: str, evidence: dict[str, str | int | float]) -> None:
    if category not in ("pipeline_unavailable", "version_mismatch", "missing_dependency"):
        return
    for package in ("diffusers", "transformers", "torch"):
        if package in sys.modules or package == "diffusers":
            version = _installed(package)
            if version:
                evidence[f"installed_{package}"] = version


def _add_required_version(category: str, evidence: dict[str, str | int | float]) -> None:
    missing = str(evidence.get("missing_class", ""))
    if category == "pipeline_unavailable" and missing in WAN_CLASS_INTRODUCED:
        evidence["required_diffusers"] = WAN_CLASS_INTRODUCED[missing]
    installed, required = evidence.get("installed_diffusers"), evidence.get("required_diffusers")
    if installed and required:
        evidence["diffusers_too_old"] = "yes" if version_tuple(str(installed)) < version_tuple(
            str(required)) else "no"


def _unknown(reason: str, *, source: str = "input") -> Diagnosis:
    return Diagnosis(
        category="unknown",
        stage="unknown",
        summary="wan_nb could not tell what this error is.",
        evidence={"reason": reason, "source": source},
        recoverable=False,
        next_steps=("Pass the exception itself (e.g. sys.last_value) or the full traceback text.",),
    )

