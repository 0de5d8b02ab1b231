"""Say what went wrong and where: an exception, or a pasted traceback, to a ``Diagnosis``.

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

from wan_nb.diagnosis import patterns as P
from wan_nb.diagnosis.tracetext import Frame, ParsedError, ParsedText, parse
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
        )

    def to_text(self) -> str:
        """A short multi-line rendering for terminals, the CLI and the notebook's text fallback."""
        where = self.stage if self.component is None else f"{self.stage} ({self.component})"
        head = f"{self.category} at {where}" + (" — recoverable" if self.recoverable else "")
        lines = [head, self.summary]
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
    outer = P.classify(parsed.errors[-1]) if parsed.errors else None
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
            summary=_summary(diagnosis.category, "load", diagnosis.component, evidence),
            evidence=evidence, component=diagnosis.component, recoverable=True,
            suggested=_suggest(diagnosis.category, "load", evidence),
            next_steps=_next_steps(diagnosis.category, "load", diagnosis.component, evidence))
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
        finding = P.classify(err)
        if finding is not None:
            chosen = err
            break
    if finding is None and parsed.lines:
        # No exception line says what failed: the log around it may (a killed process prints
        # "Killed", NumPy its ABI notice, ComfyUI "Value not in list" before the traceback).
        # Frame and source lines are left out: their words are code, not messages.
        log = [line for line in parsed.lines if line[:1] not in (" ", "\t") and not line.startswith("File ")]
        finding = P.classify(ParsedError(message="\n".join(log)[-8000:]))
        if finding is not None:
            finding.rule += " (read from the log around the error)"
    if finding is not None and finding.category == "user_code" and not chosen.frames and _library_frame_line(parsed):
        # The exception line came without frames, but the traceback pasted with it runs through
        # installed packages: not the user's own code, most likely a bug of that package or app.
        finding = P.Finding("unknown", "an error raised inside installed code (its traceback runs through "
                            "site-packages): a bug there, not the user's code")
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
    component = P.component_from(chosen, evidence, stage)
    if category == "component_missing" and component is None:
        component = _missing_from_folder(evidence)

    if source == "exception":
        _add_installed_versions(category, evidence)
    else:
        evidence.update({k: v for k, v in P.versions_in_text(parsed.lines).items() if k not in evidence})
    _add_required_version(category, evidence)
    if parsed.wrappers:
        evidence["wrapper"] = ", ".join(parsed.wrappers)
    evidence["source"] = source
    if category == "unknown":
        evidence["reason"] = _unknown_reason(chosen)

    return Diagnosis(
        category=category,
        stage=stage,
        summary=_summary(category, stage, component, evidence),
        evidence=evidence,
        component=component,
        recoverable=category not in ("accelerator_fault", "user_code", "unknown"),
        suggested=_suggest(category, stage, evidence),
        next_steps=_next_steps(category, stage, component, evidence),
    )


_FRAME_IN_PACKAGE = re.compile(r'^\s*File "[^"]*[/\\](?:site|dist)-packages[/\\]', re.M)


def _library_frame_line(parsed: ParsedText) -> bool:
    return any(_FRAME_IN_PACKAGE.match(line) for line in parsed.lines[:400])


_EXPORT_CALL = re.compile(r"\b(?:export_to_video|export_to_gif|save_video|cache_video|mimwrite|mimsave)\b")


_IMAGE_CONTEXT = re.compile(r"\bimage_embedder\b|WanImageEmbedding")


def _locate(parsed: ParsedText, chosen: ParsedError, category: str,
            evidence: dict[str, str | int | float]) -> tuple[str, str, Frame | None]:
    """Where it failed: the innermost frame of a known model part, then the message, then the log."""
    order = [chosen, *[e for e in reversed(parsed.errors) if e is not chosen]]
    for err in order:
        frames = err.frames
        if category == "user_code":
            # The cell's own line says what the user meant, not where a pipeline failed.
            frames = [] if P.is_type(err, "SyntaxError") else [f for f in frames if not f.is_user]
        found = P.stage_from_frames(frames)
        if found:
            return found[0], "frame", found[1]
    if category == "user_code":
        # Except when that line was the export: the job had reached writing the video.
        said = [f.code for f in chosen.frames[-1:]] + [line for line in parsed.lines if chosen.first_line
                                                      and chosen.first_line in line]
        if any(_EXPORT_CALL.search(code) for code in said):
            return "postprocess", "the failing line writes the video", None
        return "unknown", "", None
    for err in order:
        direction = P.vae_direction(parsed, err.frames)
        if direction:
            return direction, "frames inside the VAE in a text-to-video run (only conditioned runs encode)", None
    by_callee = P.stage_from_callee(str(evidence.get("callee", "")))
    if by_callee:
        return by_callee, f"the message names {evidence['callee']}", None
    hint = P.stage_from_text(parsed)
    if hint:
        return hint[0], hint[1], None
    if category in ("component_missing", "weights_corrupt", "pipeline_unavailable") or (
            category == "version_mismatch" and P.is_state_dict_mismatch(chosen.message)):
        return "load", "these failures happen while a pipeline is loaded", None
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
    if category == "pipeline_unavailable" and missing in P.CLASS_SINCE:
        evidence["required_diffusers"] = P.CLASS_SINCE[missing]
    installed, required = evidence.get("installed_diffusers"), evidence.get("required_diffusers")
    if installed and required:
        evidence["diffusers_too_old"] = "yes" if P.version_tuple(str(installed)) < P.version_tuple(
            str(required)) else "no"


# --- words: summary, strategies, next steps ----------------------------------------------------------

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


def _summary(category: str, stage: str, component: str | None, ev: dict) -> str:
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
        return f"The checkpoint or code expects a different library version{during}."
    if category == "component_missing" and ev.get("unloadable_class"):
        return (f"model_index.json names {ev['unloadable_class']} for {component or 'a component'}, which diffusers "
                "cannot load: it loads concrete model, tokenizer, scheduler and processor classes, not a factory.")
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


def _suggest(category: str, stage: str, ev: dict) -> tuple[str, ...]:
    if category == "out_of_memory":
        names = _OOM_ORDER.get(stage, _OOM_ORDER["unknown"])
    elif category == "host_out_of_memory":
        names = _HOST_ORDER.get(stage, _SUGGEST["host_out_of_memory"])
    elif category == "pipeline_unavailable" and ev.get("diffusers_too_old") == "yes":
        names = ("upgrade_library", "assemble_components", "generic_pipeline")
    else:
        names = _SUGGEST.get(category, ())
    device = str(ev.get("device", ""))
    dropped = set(_PLAN_SKIPS)
    if device.startswith("cpu"):
        dropped |= _NEEDS_ACCELERATOR  # the failure was on the CPU: the plan skips what needs a GPU
    elif device and not device.startswith(("cuda", "hip")):
        dropped |= _NEEDS_CUDA
    return tuple(n for n in names if n in STRATEGY_NAMES and n not in dropped)


def _next_steps(category: str, stage: str, component: str | None, ev: dict) -> tuple[str, ...]:
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
        else:
            steps.append("Upgrade the libraries named in the error (pip install -U diffusers transformers), then "
                         "restart the kernel.")
        steps.append("Check that the checkpoint matches the model: a Wan 2.2 checkpoint needs Wan 2.2 classes.")
    elif category == "component_missing" and ev.get("unloadable_class"):
        name = component or "the component"
        steps.append(f"In model_index.json, replace {ev['unloadable_class']} for {name} by the concrete class (for a "
                     "tokenizer, the `tokenizer_class` of its tokenizer_config.json, e.g. T5TokenizerFast).")
        steps.append(f"Or load it yourself and pass it: `from_pretrained(path, {name}="
                     f"{ev['unloadable_class']}.from_pretrained(path, subfolder={name!r}))`.")
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
        if "got_channels" in ev:
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


def _unknown(reason: str, *, source: str = "input") -> Diagnosis:
    return Diagnosis(
        category="unknown",
        stage="unknown",
        summary="wan_nb could not tell what this error is.",
        evidence={"reason": reason, "source": source},
        recoverable=False,
        next_steps=("Pass the exception itself (e.g. sys.last_value) or the full traceback text.",),
    )

