"""Pipeline substitution: run a model folder whose pipeline class will not load as named.

Four strategies answer ``pipeline_unavailable`` and ``version_mismatch``:

* ``generic_pipeline`` — ``DiffusionPipeline.from_pretrained``: let diffusers pick the
  class ``model_index.json`` names (helps when the cell used the wrong class).
* ``assemble_components`` — load each component with its own class and hand them to the
  installed pipeline class whose constructor fits the component set: a folder naming a
  class this diffusers lacks still runs if its parts fit ``WanPipeline``. Built in
  memory; the folder is never written.
* ``upgrade_library`` — guidance only: the release that introduced the class and the pip
  command. wan_nb never installs anything.
* ``remote_code`` — ``trust_remote_code`` for code shipped *in the model folder*, and only
  with ``allow_remote_code=True``; without it the strategy is skipped with
  :data:`CONSENT_REASON`. Code that would have to be downloaded is never run.

Errors are :class:`SubstitutionError` (or :class:`ConsentRequired`) with a message that
names the folder, the class or component, and what to do.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError, read_json
from .components import ComponentInfo, ComponentReport, analyze_model_components
from .libraries import (
    WAN22_INTRODUCED,
    WAN_CLASS_INTRODUCED,
    installed_version,
    version_at_least,
    version_tuple,
)

CONSENT_REASON = "needs your consent: runs code from the model folder"
_TASK_WORDS = (
    ("ImageToVideo", "i2v"),
    ("I2V", "i2v"),
    ("VideoToVideo", "v2v"),
    ("V2V", "v2v"),
    ("VACE", "vace"),
    ("Animate", "animate"),
)
# model_index.json keys that are metadata, not constructor arguments.
_INDEX_META = {"_class_name", "_diffusers_version", "_name_or_path"}


class SubstitutionError(Exception):
    """A substitution strategy cannot run for this folder; the message says why and what to do."""


class ConsentRequired(SubstitutionError):
    """Running the folder's own code needs ``allow_remote_code=True``."""


# --------------------------------------------------------------------------- plan data


@dataclass(frozen=True)
class ComponentSource:
    """Where one component of an assembled pipeline comes from and which class loads it."""

    name: str
    library: str
    class_name: str  # the class that loads it (may differ from the folder's, see note)
    folder: str  # absolute folder handed to from_pretrained
    origin: str = "model"  # "model" or "donor"
    declared_class: str | None = None  # what model_index.json names, when it differs
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComponentSource:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class AssemblyPlan:
    """Which installed pipeline class gets which components, and what that gives up."""

    path: str
    requested_class: str | None
    pipeline_class: str
    components: tuple[ComponentSource, ...]
    pipeline_kwargs: dict[str, Any] = field(default_factory=dict)
    limitations: tuple[str, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()  # (class, why it does not fit)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AssemblyPlan:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["components"] = tuple(ComponentSource.from_dict(c) for c in data.get("components") or ())
        data["limitations"] = tuple(data.get("limitations") or ())
        data["rejected"] = tuple(tuple(r) for r in data.get("rejected") or ())
        return cls(**data)

    def snippet(self, torch_dtype: str | None = None) -> str:
        """The code that builds the same pipeline by hand."""
        by_library: dict[str, list[str]] = {}
        for source in self.components:
            by_library.setdefault(source.library, []).append(source.class_name)
        by_library.setdefault("diffusers", []).append(self.pipeline_class)
        lines = ["import torch"] if torch_dtype else []
        for library in sorted(by_library):
            lines.append(f"from {library} import {', '.join(sorted(set(by_library[library])))}")
        lines.append("")
        for source in self.components:
            kwargs = ""
            if torch_dtype and _is_model_class_name(source.class_name):
                key = "torch_dtype" if source.library == "diffusers" else "dtype"
                kwargs = f", {key}=torch.{torch_dtype}"
            comment = f"  # from {source.origin}" if source.origin != "model" else ""
            lines.append(f"{source.name} = {source.class_name}.from_pretrained({source.folder!r}{kwargs}){comment}")
        args = [f"{s.name}={s.name}" for s in self.components]
        args += [f"{k}={v!r}" for k, v in self.pipeline_kwargs.items()]
        lines.append(f"pipe = {self.pipeline_class}({', '.join(args)})")
        return "\n".join(lines)

    def describe(self) -> str:
        donors = [s for s in self.components if s.origin != "model"]
        text = f"{self.pipeline_class} assembled from the components of {self.path}"
        if self.requested_class and self.requested_class != self.pipeline_class:
            text += f" (model_index.json names {self.requested_class})"
        if donors:
            text += "; " + "; ".join(f"{s.name} from {s.folder}" for s in donors)
        return text


def _is_model_class_name(class_name: str) -> bool:
    return not class_name.endswith(("Tokenizer", "TokenizerFast", "Scheduler", "Processor", "FeatureExtractor"))


# --------------------------------------------------------------------------- helpers


def _report(path_or_report: str | os.PathLike[str] | ComponentReport) -> ComponentReport:
    if isinstance(path_or_report, ComponentReport):
        return path_or_report
    return analyze_model_components(path_or_report)


def _import_class(library: str | None, class_name: str | None):
    if not library or not class_name:
        return None
    try:
        module = importlib.import_module(library)
        return getattr(module, class_name, None)
    except Exception:  # noqa: BLE001 - any import failure: the class is not usable here
        return None


def _camel_head(name: str) -> str:
    """``"Wan3Pipeline"`` -> ``"Wan"``; ``"LTXVideoTransformer3DModel"`` -> ``"LTX"``."""
    match = re.match(r"[A-Z]+(?=[A-Z][a-z])|[A-Z][a-z]+|[A-Z]+", name or "")
    return match.group() if match else ""


def _task_of(name: str | None) -> str | None:
    for word, task in _TASK_WORDS:
        if word in (name or ""):
            return task
    return None


def _installed_pipeline_names() -> list[str]:
    import diffusers

    structure = getattr(diffusers, "_import_structure", None)
    names: set[str] = set()
    if isinstance(structure, dict):
        for values in structure.values():
            names.update(v for v in values if isinstance(v, str))
    names.update(dir(diffusers))
    return sorted(n for n in names if n.endswith("Pipeline") and n[:1].isupper())


def _model_library(cls) -> str:
    return (cls.__module__ or "").split(".", 1)[0]


def _is_scheduler(cls) -> bool:
    from diffusers import SchedulerMixin

    return isinstance(cls, type) and issubclass(cls, SchedulerMixin)


def _inferred_task(report: ComponentReport) -> str:
    named = _task_of(report.pipeline_class)
    if named:
        return named
    present = {c.name for c in report.components if c.status != "optional"}
    if "image_encoder" in present:
        return "i2v"
    transformer = report.component("transformer")
    config = transformer.config if transformer else {}
    expand = bool(report.pipeline_config.get("expand_timesteps"))
    if not expand and config.get("in_channels") and config.get("out_channels"):
        if config["in_channels"] > config["out_channels"]:
            return "i2v"  # image latents and a mask are concatenated to the noise
    return "t2v"


def _slot_accepts(slot: str, annotation: tuple, cls) -> bool:
    """Whether a component of class ``cls`` may fill constructor argument ``slot``."""
    # diffusers itself skips type checks for schedulers and tokenizers (too many variants).
    if "scheduler" in slot:
        return _is_scheduler(cls)
    if "tokenizer" in slot:
        return True
    types = [t for t in annotation if isinstance(t, type) and t is not type(None) and t is not inspect.Signature.empty]
    if not types:
        return True
    for expected in types:
        if expected.__name__.startswith("Auto") or issubclass(cls, expected):
            return True
    return False


def _slot_class(annotation: tuple):
    types = [t for t in annotation if isinstance(t, type) and t is not type(None) and t is not inspect.Signature.empty]
    concrete = [t for t in types if not t.__name__.startswith("Auto")]
    return concrete[0] if concrete else None


# --------------------------------------------------------------------------- planning


def _component_classes(report: ComponentReport, donors: dict[str, Any]) -> dict[str, tuple[Any, ComponentSource]]:
    """Each usable component's loading class and source; missing ones are left out."""
    root = Path(report.path)
    result: dict[str, tuple[Any, ComponentSource]] = {}
    for info in report.components:
        if info.status == "optional":
            continue
        donor = donors.get(info.name)
        if donor is not None:
            folder, library, class_name = _donor_location(donor, info)
            cls = _import_class(library, class_name)
            if cls is None:
                raise SubstitutionError(
                    f"The donor for `{info.name}` ({folder}) needs {library}.{class_name}, which is not "
                    "installed here; pick another donor."
                )
            result[info.name] = (
                cls,
                ComponentSource(info.name, library, class_name, folder, origin="donor",
                                note=f"{info.name} taken from {folder}"),
            )
            continue
        if info.status in ("missing", "corrupt"):
            continue
        cls = _import_class(info.library, info.class_name)
        result[info.name] = (
            cls,
            ComponentSource(info.name, info.library or "", info.class_name or "", str(root / info.name)),
        )
    return result


def _donor_location(donor: Any, info: ComponentInfo) -> tuple[str, str, str]:
    """``(folder, library, class)`` of a donor given as a Donor object, a path or a dict."""
    if hasattr(donor, "folder") and hasattr(donor, "class_name"):
        return str(donor.folder), donor.library, donor.class_name
    if isinstance(donor, dict):
        return str(donor["folder"]), donor["library"], donor["class_name"]
    folder = Path(donor).expanduser()
    if (folder / info.name).is_dir() and not (folder / "config.json").is_file():
        folder = folder / info.name  # a whole model folder: take its component of that name
    config_file = next((folder / n for n in ("config.json", "scheduler_config.json", "tokenizer_config.json")
                        if (folder / n).is_file()), None)
    if config_file is None:
        raise SubstitutionError(
            f"The donor for `{info.name}` ({folder}) has no config.json; give a component folder "
            f"(e.g. other_model/{info.name}) or a model folder that has one."
        )
    config = read_json(config_file)
    class_name = config.get("_class_name") or (config.get("architectures") or [None])[0] or info.class_name
    return str(folder), info.library or "diffusers", class_name


def _score_candidate(
    cls, report: ComponentReport, available: dict[str, tuple[Any, ComponentSource]], task: str
) -> tuple[tuple | None, str, dict[str, Any], list[str], dict[str, Any]]:
    """``(score or None, why rejected, pipeline kwargs, limitations, slot classes)``."""
    params = inspect.signature(cls.__init__).parameters
    names = [n for n in params if n != "self" and params[n].kind not in (inspect.Parameter.VAR_KEYWORD,
                                                                            inspect.Parameter.VAR_POSITIONAL)]
    types = cls._get_signature_types() if hasattr(cls, "_get_signature_types") else {}
    optional = set(getattr(cls, "_optional_components", []) or [])
    limitations: list[str] = []
    substitutes: dict[str, Any] = {}

    extra = [n for n in available if n not in names]
    if extra:
        return None, f"has no place for {', '.join(extra)}", {}, [], {}
    required = [
        n for n in names
        if params[n].default is inspect.Parameter.empty and n not in optional and n not in report.pipeline_config
    ]
    missing = [n for n in required if n not in available]
    if missing:
        return None, f"needs {', '.join(missing)}, which the folder does not provide", {}, [], {}
    for slot, (component_cls, source) in available.items():
        annotation = types.get(slot, (inspect.Signature.empty,))
        if component_cls is None:
            fallback = _slot_class(annotation)
            if fallback is None:
                return None, f"`{slot}` ({source.class_name}) is not installed and has no typed slot", {}, [], {}
            substitutes[slot] = fallback
            continue
        if not _slot_accepts(slot, annotation, component_cls):
            expected = " or ".join(t.__name__ for t in annotation if isinstance(t, type) and t is not type(None))
            return None, f"expects {expected} for `{slot}`, the folder has {source.class_name}", {}, [], {}

    kwargs: dict[str, Any] = {}
    dropped = 0
    for key, value in report.pipeline_config.items():
        if key in _INDEX_META:
            continue
        if key in names:
            kwargs[key] = value
        elif value not in (None, False):
            dropped += 1
            limitations.append(f"{cls.__name__} has no `{key}` argument: model_index.json's {key}={value!r} is not used.")
    for slot, fallback in substitutes.items():
        limitations.append(
            f"`{slot}` is loaded with {fallback.__name__}: the folder names {available[slot][1].class_name}, "
            "which this installation lacks."
        )
    candidate_task = _task_of(cls.__name__) or "t2v"
    unused = sum(1 for n in names if n not in available and n not in kwargs and n in optional)
    similarity = difflib.SequenceMatcher(None, report.pipeline_class or "", cls.__name__).ratio()
    # Lower is better: a matching task first, then fewer dropped settings and substituted
    # classes, then fewer unused optional slots, then the name closest to the requested one.
    score = (candidate_task != task, dropped, len(substitutes), unused, -similarity)
    return score, "", kwargs, limitations, substitutes


def plan_assembly(
    path_or_report: str | os.PathLike[str] | ComponentReport,
    *,
    donors: dict[str, Any] | None = None,
    pipeline_class: str | None = None,
) -> AssemblyPlan:
    """Choose the installed pipeline class for the folder's components (nothing is loaded).

    Args:
        donors: component name -> a :class:`wan_nb.donors.Donor`, or a folder to take that
            component from, for components that are missing or damaged in the folder.
        pipeline_class: force this diffusers class instead of choosing one.

    Raises:
        SubstitutionError: a component is missing without a donor, or no installed class fits.
    """
    report = _report(path_or_report)
    donors = dict(donors or {})
    unknown = [n for n in donors if n not in report.names]
    if unknown:
        raise SubstitutionError(
            f"`donors` names {', '.join(unknown)}, which {report.path} does not have; its components are "
            f"{', '.join(report.names)}."
        )
    broken = [c for c in report.components if c.status in ("missing", "corrupt") and c.name not in donors]
    if broken:
        first = broken[0]
        raise SubstitutionError(
            f"`{first.name}` is {first.status} in {report.path}, so the pipeline cannot be assembled from "
            f"this folder alone: {first.problems[0] if first.problems else ''} Find a donor "
            "(wan_nb.donors.find_donor) or fetch it again (wan_nb.donors.redownload_instructions)."
        )
    available = _component_classes(report, donors)
    task = _inferred_task(report)

    if pipeline_class:
        cls = _import_class("diffusers", pipeline_class)
        if cls is None:
            raise SubstitutionError(
                f"`pipeline_class={pipeline_class!r}` is not a class of diffusers {installed_version('diffusers')}."
            )
        candidates = [cls]
    else:
        heads = {_camel_head(report.pipeline_class or "")}
        heads |= {_camel_head(c.class_name or "") for c in report.components if c.name.startswith(("transformer", "unet"))}
        heads.discard("")
        names = [n for n in _installed_pipeline_names() if _camel_head(n) in heads and n != report.pipeline_class]
        candidates = [c for c in (_import_class("diffusers", n) for n in names) if isinstance(c, type)]
        if report.pipeline_importable and report.pipeline_class:
            own = _import_class("diffusers", report.pipeline_class)
            candidates = ([own] if own is not None else []) + candidates

    scored, rejected = [], []
    for cls in candidates:
        score, why, kwargs, limitations, substitutes = _score_candidate(cls, report, available, task)
        if score is None:
            rejected.append((cls.__name__, why))
        else:
            scored.append((score, cls, kwargs, limitations, substitutes))
    if not scored:
        tried = "; ".join(f"{name} {why}" for name, why in rejected) or "no installed pipeline of the same family"
        raise SubstitutionError(
            f"No installed diffusers pipeline class fits the components of {report.path} "
            f"({', '.join(available)}): {tried}. Upgrade diffusers (wan_nb.substitution.upgrade_guidance) "
            "or pass `pipeline_class=` yourself."
        )
    scored.sort(key=lambda item: item[0])
    _, cls, kwargs, limitations, substitutes = scored[0]

    sources = []
    for name, (_component_cls, source) in available.items():
        if name in substitutes:
            fallback = substitutes[name]
            source = ComponentSource(
                name, _model_library(fallback), fallback.__name__, source.folder, source.origin,
                declared_class=source.class_name, note=f"{source.class_name} is not installed",
            )
        sources.append(source)
    remote = find_remote_code(report.path)
    if remote is not None and remote.class_name:
        limitations.insert(0, f"the folder's own pipeline class {remote.class_name} ({remote.pipeline_file}) is not "
                              f"run: {cls.__name__} from diffusers is used in its place.")
    elif report.pipeline_class and not report.pipeline_importable and cls.__name__ != report.pipeline_class:
        limitations.insert(
            0,
            f"{report.pipeline_class}'s own code is not installed: {cls.__name__}'s is used, so any behaviour "
            f"{report.pipeline_class} adds on top of it is missing.",
        )
    for source in sources:
        if source.origin == "donor":
            limitations.append(f"`{source.name}` comes from another model ({source.folder}).")
    return AssemblyPlan(
        path=report.path,
        requested_class=report.pipeline_class,
        pipeline_class=cls.__name__,
        components=tuple(sources),
        pipeline_kwargs=kwargs,
        limitations=tuple(limitations),
        rejected=tuple(rejected),
    )


# --------------------------------------------------------------------------- loading


def _dtype(torch_dtype):
    if torch_dtype is None or not isinstance(torch_dtype, str):
        return torch_dtype
    import torch

    value = getattr(torch, torch_dtype, None)
    if not isinstance(value, torch.dtype):
        raise SubstitutionError(f"`torch_dtype={torch_dtype!r}` is not a torch dtype; use e.g. 'bfloat16'.")
    return value


def load_component(source: ComponentSource, torch_dtype=None, *, strict: bool | None = None):
    """Load one component from its folder with its class, on the CPU.

    ``strict`` (default: when the class is a substitute for the declared one) refuses a
    load whose weights do not match the class's parameters, instead of leaving random ones.
    """
    cls = _import_class(source.library, source.class_name)
    if cls is None:
        raise SubstitutionError(
            f"`{source.name}` needs {source.library}.{source.class_name}, which is not installed here."
        )
    kwargs: dict[str, Any] = {}
    dtype = _dtype(torch_dtype)
    is_model = _is_model_class_name(source.class_name) and hasattr(cls, "from_pretrained")
    if dtype is not None and is_model:
        # transformers >= 4.56 renamed torch_dtype to dtype (as diffusers' own loader does).
        newer = source.library == "transformers" and version_at_least(installed_version("transformers"), "4.56.0")
        kwargs["dtype" if newer else "torch_dtype"] = dtype
    strict = source.declared_class is not None if strict is None else strict
    if strict and is_model:
        kwargs["output_loading_info"] = True
    try:
        loaded = cls.from_pretrained(source.folder, **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported with the component and folder named
        raise SubstitutionError(
            f"`{source.name}` could not be loaded with {source.class_name} from {source.folder}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if kwargs.get("output_loading_info"):
        loaded, info = loaded
        bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
        if bad:
            key, names = next(iter(bad.items()))
            raise SubstitutionError(
                f"`{source.name}` does not fit {source.class_name}: {len(names)} {key.replace('_', ' ')} "
                f"(first: {list(names)[0]}); this class cannot stand in for {source.declared_class}."
            )
    return loaded


def build_from_plan(plan: AssemblyPlan, *, torch_dtype=None):
    """Load every component of ``plan`` and construct its pipeline (in memory only)."""
    pipeline_cls = _import_class("diffusers", plan.pipeline_class)
    if pipeline_cls is None:
        raise SubstitutionError(f"{plan.pipeline_class} is not installed; plan the assembly again.")
    modules = {source.name: load_component(source, torch_dtype) for source in plan.components}
    try:
        pipe = pipeline_cls(**modules, **plan.pipeline_kwargs)
    except Exception as exc:  # noqa: BLE001
        raise SubstitutionError(
            f"{plan.pipeline_class} refused the components of {plan.path}: {type(exc).__name__}: {exc}"
        ) from exc
    # As from_pretrained does, so pipe.name_or_path (and a later save) points at the source.
    pipe.register_to_config(_name_or_path=plan.path)
    return pipe


def assemble_components(
    path: str | os.PathLike[str] | ComponentReport,
    *,
    donors: dict[str, Any] | None = None,
    pipeline_class: str | None = None,
    torch_dtype=None,
    allow_remote_code: bool = False,
):
    """Load each component with its own class and build the installed pipeline that fits.

    The folder is read, never written. Components named in ``donors`` are taken from
    there instead (see :func:`wan_nb.donors.find_donor`). A folder whose pipeline needs
    code from the folder is refused unless ``allow_remote_code`` (then see
    :func:`load_with_remote_code`).

    Returns:
        The pipeline, on the CPU, like ``from_pretrained`` would give it.
    """
    report = _report(path)
    remote = find_remote_code(report.path)
    if remote is not None and remote.components and allow_remote_code and not donors:
        # Components defined by the folder's own code: only diffusers' loader can import them.
        return load_with_remote_code(report.path, allow_remote_code=True, torch_dtype=torch_dtype)
    if remote is not None and remote.components:
        raise ConsentRequired(
            f"{report.path}: components {', '.join(remote.components)} are defined by code in the folder "
            f"({', '.join(remote.files)}); {CONSENT_REASON}. Pass `allow_remote_code=True` after reading it."
        )
    plan = plan_assembly(report, donors=donors, pipeline_class=pipeline_class)
    return build_from_plan(plan, torch_dtype=torch_dtype)


def generic_pipeline(path: str | os.PathLike[str] | ComponentReport, *, torch_dtype=None, **kwargs):
    """``DiffusionPipeline.from_pretrained(path)``: the class ``model_index.json`` names.

    Raises SubstitutionError when that class is not installed (assembly or an upgrade is
    the way then) or the folder needs its own code.
    """
    report = _report(path)
    if not report.pipeline_class:
        raise SubstitutionError(
            f"{report.path}: model_index.json names no pipeline class a generic load could use; "
            "try assemble_components."
        )
    if not report.pipeline_importable:
        raise SubstitutionError(
            f"{report.path}: model_index.json names {report.pipeline_class}, which diffusers "
            f"{report.diffusers_version} lacks, so DiffusionPipeline cannot load it either; try "
            "assemble_components, or upgrade diffusers (upgrade_guidance)."
        )
    from diffusers import DiffusionPipeline

    dtype = _dtype(torch_dtype)
    if dtype is not None:
        kwargs["torch_dtype"] = dtype
    return DiffusionPipeline.from_pretrained(report.path, **kwargs)


# --------------------------------------------------------------------------- upgrade


@dataclass(frozen=True)
class UpgradeGuidance:
    """What to install for the folder's pipeline class (advice only: nothing is installed)."""

    library: str
    class_name: str | None
    installed: str | None
    required: str | None  # the release that introduced it; None when wan_nb does not know one
    command: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UpgradeGuidance:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _known_introduced(class_name: str | None) -> str | None:
    if not class_name:
        return None
    if class_name in WAN_CLASS_INTRODUCED:
        return WAN_CLASS_INTRODUCED[class_name]
    try:
        from .alternatives import min_diffusers_for

        return min_diffusers_for(class_name)
    except Exception:  # noqa: BLE001 - the registry is a bonus here, not a requirement
        return None


def upgrade_guidance(path_or_report: str | os.PathLike[str] | ComponentReport) -> UpgradeGuidance:
    """The exact diffusers version and pip command the folder's pipeline needs."""
    report = _report(path_or_report)
    installed = report.diffusers_version
    name = report.pipeline_class
    required = _known_introduced(name)
    uses_wan22 = "boundary_ratio" in report.pipeline_config or bool(report.pipeline_config.get("expand_timesteps"))
    uses_wan22 = uses_wan22 or any(c.name == "transformer_2" and c.status != "optional" for c in report.components)
    label = name or "the pipeline class"
    if uses_wan22 and (required is None or version_tuple(required) < version_tuple(WAN22_INTRODUCED)) and (
        required is not None or report.pipeline_importable
    ):
        required = WAN22_INTRODUCED
    for info in report.components:  # a component class newer than the pipeline's
        needed = _known_introduced(info.class_name)
        if needed and (required is None or version_tuple(needed) > version_tuple(required)):
            if not info.importable:
                required = needed
    saved = report.saved_with
    if required:
        command = f'pip install -U "diffusers>={required}"'
        if version_at_least(installed, required):
            message = (
                f"diffusers {installed} is already >= {required}, which introduced {label}; an upgrade "
                "is not what this folder needs."
            )
        else:
            message = f"{label} needs diffusers >= {required} (it was introduced there); {installed} is installed."
    elif saved and version_tuple(saved) > version_tuple(installed):
        dev = "dev" in saved
        command = ('pip install -U "git+https://github.com/huggingface/diffusers"' if dev
                   else f'pip install -U "diffusers>={saved}"')
        message = (
            f"{label} is not in diffusers {installed}, and wan_nb knows no release that introduced it; the folder "
            f"was saved with diffusers {saved}, so that version (or newer) should have it."
        )
    else:
        command = 'pip install -U diffusers'
        message = (
            f"{label} is not in diffusers {installed} and wan_nb knows no release that has it; it may come from a "
            "newer release, a fork or custom code. Check the model card before upgrading."
        )
    message += " wan_nb does not install anything itself: run the command, then restart the kernel."
    return UpgradeGuidance("diffusers", name, installed, required, command, message)


# --------------------------------------------------------------------------- remote code


@dataclass(frozen=True)
class RemoteCode:
    """Code in (or referenced by) a model folder that loading it would run."""

    path: str
    files: tuple[str, ...]  # .py files that would run, relative to the folder
    class_name: str | None  # the custom pipeline class, when the pipeline is custom
    pipeline_file: str | None  # relative path of the pipeline's module
    components: tuple[str, ...] = ()  # components whose class is defined in the folder
    local: bool = True  # False: the code would have to be downloaded (wan_nb never does)
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RemoteCode:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for key in ("files", "components", "missing"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)


def _defines_class(py: Path, name: str | None) -> bool:
    try:
        text = py.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if name:
        return re.search(rf"^class\s+{re.escape(name)}\b", text, re.MULTILINE) is not None
    return re.search(r"^class\s+\w+\(.*Pipeline.*\)", text, re.MULTILINE) is not None


def find_remote_code(path: str | os.PathLike[str]) -> RemoteCode | None:
    """The folder's own code that ``trust_remote_code`` would run, or None when there is none."""
    root = Path(path).expanduser()
    try:
        index = read_json(root / "model_index.json")
    except CheckpointError:
        return None
    files: list[str] = []
    missing: list[str] = []
    class_name = pipeline_file = None
    declared = index.get("_class_name")
    if isinstance(declared, list) and len(declared) == 2 and all(isinstance(v, str) for v in declared):
        # diffusers' convention for custom pipelines: ["<module in the repo>", "<class>"].
        pipeline_file, class_name = f"{declared[0]}.py", declared[1]
        (files if (root / pipeline_file).is_file() else missing).append(pipeline_file)
    elif isinstance(declared, str) and _import_class("diffusers", declared) is None:
        for py in sorted(root.glob("*.py")):
            if _defines_class(py, declared):
                pipeline_file, class_name = py.name, declared
                files.append(py.name)
                break
    if pipeline_file is None and (root / "pipeline.py").is_file() and _defines_class(root / "pipeline.py", None):
        pipeline_file = "pipeline.py"  # diffusers' default custom pipeline file name
        files.append(pipeline_file)
    components = []
    for key, value in index.items():
        if key in _INDEX_META or not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)):
            continue
        module = root / key / f"{value[0]}.py"
        if module.is_file():
            components.append(key)
            files.append(f"{key}/{value[0]}.py")
    if not files and not missing:
        return None
    return RemoteCode(
        path=str(root),
        files=tuple(files),
        class_name=class_name,
        pipeline_file=pipeline_file,
        components=tuple(components),
        local=not missing,
        missing=tuple(missing),
    )


def load_with_remote_code(
    path: str | os.PathLike[str], *, allow_remote_code: bool = False, torch_dtype=None, **kwargs
):
    """Load a folder whose pipeline (or components) is defined by code inside it.

    Runs that code only with ``allow_remote_code=True``, and only when it is all in the
    folder: wan_nb never downloads code.

    Raises:
        ConsentRequired: the code would run and consent was not given.
        SubstitutionError: the folder has no such code, or the code is not local.
    """
    root = Path(path).expanduser()
    remote = find_remote_code(root)
    if remote is None:
        raise SubstitutionError(
            f"{root} holds no pipeline or component code of its own, so `remote_code` has nothing to run; "
            "try assemble_components or upgrade_guidance."
        )
    if not remote.local:
        raise SubstitutionError(
            f"{root}: model_index.json refers to code that is not in the folder ({', '.join(remote.missing)}); "
            "wan_nb runs code only from the model folder and never downloads it. Put the file there after "
            "reading it, or load the pipeline yourself."
        )
    if not allow_remote_code:
        raise ConsentRequired(
            f"{root}: loading it runs {', '.join(remote.files)} from the model folder; {CONSENT_REASON}. "
            "Read the file(s), then pass `allow_remote_code=True`."
        )
    from diffusers import DiffusionPipeline

    dtype = _dtype(torch_dtype)
    if dtype is not None:
        kwargs["torch_dtype"] = dtype
    declared = read_json(root / "model_index.json").get("_class_name")
    if remote.pipeline_file and not isinstance(declared, list):
        # A class name diffusers lacks, defined in a file of the folder: point at the file.
        kwargs.setdefault("custom_pipeline", str(root / remote.pipeline_file))
    try:
        return DiffusionPipeline.from_pretrained(str(root), trust_remote_code=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the folder's own code failed: say whose
        raise SubstitutionError(
            f"The code in {root} ({', '.join(remote.files)}) ran but loading failed: {type(exc).__name__}: {exc}"
        ) from exc


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class SubstitutionOption:
    """One structural strategy for a folder: can it run, and if not, why not."""

    name: str  # generic_pipeline | assemble_components | upgrade_library | remote_code
    applicable: bool
    reason: str  # why it may help, or why it is skipped
    needs_consent: bool = False
    runs: bool = True  # False: guidance only (upgrade_library)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubstitutionOption:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def substitution_options(
    path_or_report: str | os.PathLike[str] | ComponentReport, *, allow_remote_code: bool = False
) -> list[SubstitutionOption]:
    """The four substitution strategies for this folder, in the order worth trying."""
    report = _report(path_or_report)
    remote = find_remote_code(report.path)
    guidance = upgrade_guidance(report)
    too_old = bool(guidance.required and not version_at_least(report.diffusers_version, guidance.required))
    options: list[SubstitutionOption] = []

    if report.pipeline_importable and too_old:
        # The class loads, but lacks what the checkpoint needs (Wan 2.2 on diffusers 0.34).
        options.append(SubstitutionOption(
            "generic_pipeline", False, f"{report.pipeline_class} loads, but diffusers {report.diffusers_version} "
            f"predates {guidance.required}, which this checkpoint needs"))
    elif report.pipeline_importable:
        options.append(SubstitutionOption(
            "generic_pipeline", True, f"DiffusionPipeline loads the class the folder names ({report.pipeline_class})"))
    else:
        options.append(SubstitutionOption(
            "generic_pipeline", False, f"{report.pipeline_class or 'the pipeline class'} is not installed, so "
            "DiffusionPipeline cannot load it either"))
    try:
        options.append(SubstitutionOption("assemble_components", True, plan_assembly(report).describe()))
    except SubstitutionError as exc:
        options.append(SubstitutionOption("assemble_components", False, str(exc)))

    if remote is not None and remote.local:
        reason = f"runs {', '.join(remote.files)} from the folder (consent given)" if allow_remote_code else CONSENT_REASON
        options.append(SubstitutionOption("remote_code", allow_remote_code, reason, needs_consent=True))
    elif remote is not None:
        options.append(SubstitutionOption(
            "remote_code", False, f"the code ({', '.join(remote.missing)}) is not in the folder; wan_nb never "
            "downloads code", needs_consent=True))
    else:
        options.append(SubstitutionOption("remote_code", False, "the folder holds no code of its own",
                                          needs_consent=True))

    if remote is not None and remote.class_name:
        options.append(SubstitutionOption(
            "upgrade_library", False, f"{remote.class_name} is defined by the folder's own code "
            f"({remote.pipeline_file}), not by a diffusers release", runs=False))
    else:
        options.append(SubstitutionOption("upgrade_library", not report.pipeline_importable or too_old,
                                          f"{guidance.message} `{guidance.command}`", runs=False))
    # With consent, the author's own code is the faithful way to run the folder; without
    # it, assembly from installed classes is the safe one and remote_code is listed, skipped.
    order = ["generic_pipeline", "assemble_components", "remote_code", "upgrade_library"]
    if allow_remote_code:
        order = ["generic_pipeline", "remote_code", "assemble_components", "upgrade_library"]
    return sorted(options, key=lambda o: order.index(o.name))
