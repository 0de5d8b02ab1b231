"""Pipeline substitution: run a model folder whose pipeline class will not load as named.

Longer than most modules because planning an assembly and building it share the slot-by-slot rules (what a pipeline's constructor accepts); upgrade, remote code and options are apart.

Two of the four strategies answer ``pipeline_unavailable`` and ``version_mismatch``:

* ``generic_pipeline`` — ``DiffusionPipeline.from_pretrained``: let diffusers pick the
  class ``model_index.json`` names (helps when the cell used the wrong class).
* ``assemble_components`` — load each component with its own class and hand them to the
  installed pipeline class whose constructor fits the component set: a folder naming a
  class this diffusers lacks still runs if its parts fit ``WanPipeline``. Built in
  memory; the folder is never written.

``upgrade_library`` is in :mod:`wan_nb.repair.upgrade`, ``remote_code`` in
:mod:`wan_nb.repair.remote_code`, and which of them can run for a folder in
:mod:`wan_nb.repair.options`.

Errors are :class:`SubstitutionError` (or :class:`ConsentRequired`) with a message that
names the folder, the class or component, and what to do.
"""

from __future__ import annotations

import difflib
import inspect
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from wan_nb._records import json_native
from wan_nb.libraries import (
    installed_version,
    version_at_least,
)
from wan_nb.model import ComponentInfo, ComponentReport
from wan_nb.model.checkpoint import read_json
from wan_nb.model.registry import camel_head, inferred_task, task_of
from wan_nb.repair._common import (
    CONSENT_REASON,
    INDEX_META,
    ConsentRequired,
    SubstitutionError,
    as_report,
    import_class,
    is_model_class_name,
    torch_dtype_of,
)
from wan_nb.repair.remote_code import find_remote_code, load_with_remote_code

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
        return json_native(asdict(self))

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
    pipeline_module: str = "diffusers"  # where pipeline_class is imported from (a class passed in)

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

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
            if torch_dtype and is_model_class_name(source.class_name, source.library):
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


# --------------------------------------------------------------------------- helpers


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
    # diffusers' own rule: the constructor registers whatever it is given and from_pretrained
    # only warns when a passed component is not of the annotated type (its Wan tests build
    # WanPipeline with a T5EncoderModel where the annotation says UMT5EncoderModel). What must
    # hold is the kind: a model where a model goes, a processor where a processor goes. For
    # diffusers' own models the class is the architecture (a VACE transformer is not a Wan
    # one), so only transformers' components are taken by kind.
    if _model_library(cls) != "transformers":
        return False
    kind = _class_kind(cls)
    return kind is not None and any(_model_library(t) == "transformers" and _class_kind(t) == kind for t in types)


def _class_kind(cls) -> str | None:
    from wan_nb.model.kinds import library_kind

    return library_kind(_model_library(cls), getattr(cls, "__name__", None))


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
            cls = import_class(library, class_name)
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
        cls = import_class(info.library, info.class_name)
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
        if key in INDEX_META:
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
    candidate_task = task_of(cls.__name__) or "t2v"
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
    pipeline_class: str | type | None = None,
) -> AssemblyPlan:
    """Choose the installed pipeline class for the folder's components (nothing is loaded).

    Args:
        donors: component name -> a :class:`wan_nb.repair.donors.Donor`, or a folder to take that
            component from, for components that are missing or damaged in the folder.
        pipeline_class: force this diffusers class (its name, or the class itself) instead of
            choosing one.

    Raises:
        SubstitutionError: a component is missing without a donor, or no installed class fits.
    """
    report = as_report(path_or_report)
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
            "(wan_nb.repair.donors.find_donor) or fetch it again (wan_nb.repair.donors.redownload_instructions)."
        )
    available = _component_classes(report, donors)
    task = inferred_task(report)

    if isinstance(pipeline_class, type):
        if not hasattr(pipeline_class, "_get_signature_types") or not hasattr(pipeline_class, "from_pretrained"):
            raise SubstitutionError(
                f"`pipeline_class={pipeline_class.__name__}` is not a diffusers pipeline class "
                "(a subclass of DiffusionPipeline); pass one, or its name."
            )
        candidates = [pipeline_class]
    elif pipeline_class:
        cls = import_class("diffusers", pipeline_class)
        if cls is None:
            raise SubstitutionError(
                f"`pipeline_class={pipeline_class!r}` is not a class of diffusers {installed_version('diffusers')}."
            )
        candidates = [cls]
    else:
        heads = {camel_head(report.pipeline_class or "")}
        heads |= {camel_head(c.class_name or "") for c in report.components if c.name.startswith(("transformer", "unet"))}
        heads.discard("")
        names = [n for n in _installed_pipeline_names() if camel_head(n) in heads and n != report.pipeline_class]
        candidates = [c for c in (import_class("diffusers", n) for n in names) if isinstance(c, type)]
        if report.pipeline_importable and report.pipeline_class:
            own = import_class("diffusers", report.pipeline_class)
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
            f"({', '.join(available)}): {tried}. Upgrade diffusers (wan_nb.repair.assemble.upgrade_guidance) "
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
        pipeline_module="diffusers" if import_class("diffusers", cls.__name__) is cls else cls.__module__,
    )


# --------------------------------------------------------------------------- loading


def load_component(source: ComponentSource, torch_dtype=None, *, strict: bool | None = None):
    """Load one component from its folder with its class, on the CPU.

    ``strict`` (default: when the class is a substitute for the declared one) refuses a
    load whose weights do not match the class's parameters, instead of leaving random ones.
    """
    cls = import_class(source.library, source.class_name)
    if cls is None:
        raise SubstitutionError(
            f"`{source.name}` needs {source.library}.{source.class_name}, which is not installed here."
        )
    kwargs: dict[str, Any] = {}
    dtype = torch_dtype_of(torch_dtype)
    is_model = is_model_class_name(source.class_name, source.library) and hasattr(cls, "from_pretrained")
    if dtype is not None and is_model:
        # transformers >= 4.56 renamed torch_dtype to dtype (as diffusers' own loader does).
        newer = source.library == "transformers" and version_at_least(installed_version("transformers"), "4.56.0")
        kwargs["dtype" if newer else "torch_dtype"] = dtype
    strict = source.declared_class is not None if strict is None else strict
    if strict and is_model:
        kwargs["output_loading_info"] = True
    try:
        loaded = cls.from_pretrained(source.folder, **kwargs)
    except Exception as exc:
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
    pipeline_cls = import_class(plan.pipeline_module, plan.pipeline_class)
    if pipeline_cls is None:
        raise SubstitutionError(f"{plan.pipeline_class} is not installed; plan the assembly again.")
    modules = {source.name: load_component(source, torch_dtype) for source in plan.components}
    try:
        pipe = pipeline_cls(**modules, **plan.pipeline_kwargs)
    except Exception as exc:
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
    pipeline_class: str | type | None = None,
    torch_dtype=None,
    allow_remote_code: bool = False,
):
    """Load each component with its own class and build the installed pipeline that fits.

    The folder is read, never written. Components named in ``donors`` are taken from
    there instead (see :func:`wan_nb.repair.donors.find_donor`). A folder whose pipeline needs
    code from the folder is refused unless ``allow_remote_code`` (then see
    :func:`load_with_remote_code`).

    Returns:
        The pipeline, on the CPU, like ``from_pretrained`` would give it.
    """
    report = as_report(path)
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
    report = as_report(path)
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

    dtype = torch_dtype_of(torch_dtype)
    if dtype is not None:
        kwargs["torch_dtype"] = dtype
    return DiffusionPipeline.from_pretrained(report.path, **kwargs)


