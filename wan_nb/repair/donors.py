"""Component isolation: which parts of a broken model folder still work, and where to get the rest.

Longer than most modules because isolation and the donor search share one notion of a compatible component (class plus the shape-defining config); split, each half would restate it.

Three strategies answer ``component_missing`` and ``weights_corrupt``:

* isolation — :func:`isolate_components` loads each component on its own (tiny ones for
  real, large ones on the meta device against their safetensors headers) and reports a
  :class:`UsableComponent` per part: does it work, what it weighs, what it depends on.
* ``component_donor`` — :func:`find_donor` looks for the same class with a compatible
  config in other local model folders (the model's siblings, folders you name, the
  Hugging Face cache) and :func:`assemble_with_donors` builds the pipeline with it. The
  donor is loaded from where it lies; nothing is copied into your folder.
* ``redownload`` — :func:`wan_nb.repair.redownload.redownload_instructions`: the exact
  files to fetch again and the ``hf download`` command. wan_nb never downloads anything itself.

"Compatible" means: the same class, and every shape-defining config value that can be
known. When the broken component's own ``config.json`` is still readable, the donor's
config must equal it (bar metadata). When it is gone, the values the other components
imply must hold — e.g. a VAE's ``z_dim`` equals the transformer's ``out_channels``, a
text encoder's ``d_model`` equals the transformer's ``text_dim``, a second expert has the
first one's config.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from wan_nb._records import json_native
from wan_nb.model import ComponentInfo, ComponentReport, analyze_model_components
from wan_nb.model.checkpoint import CheckpointError, read_json
from wan_nb.model.discovery import local_model_folders
from wan_nb.repair._common import SubstitutionError, broken_components
from wan_nb.repair.assemble import ComponentSource, assemble_components, load_component
from wan_nb.repair.redownload import redownload_instructions
from wan_nb.units import format_bytes

# Config keys that describe where or when a file was written, not what it holds.
_META_KEYS = {
    "_class_name", "_diffusers_version", "_name_or_path", "_commit_hash", "_use_default_values",
    "transformers_version", "torch_dtype", "dtype", "architectures", "auto_map",
}  # fmt: skip
# component <- (key, other component, key): values the other components imply.
_IMPLIED: dict[str, tuple[tuple[str, str, str], ...]] = {
    "vae": (("z_dim", "transformer", "out_channels"), ("latent_channels", "transformer", "out_channels")),
    "transformer": (("out_channels", "vae", "z_dim"), ("text_dim", "text_encoder", "d_model")),
    "text_encoder": (("d_model", "transformer", "text_dim"),),
}
# What each component works with: its inputs or outputs must match theirs.
_DEPENDS: dict[str, tuple[str, ...]] = {
    "text_encoder": ("tokenizer",),
    "transformer": ("text_encoder", "vae", "scheduler"),
    "transformer_2": ("transformer", "text_encoder", "vae", "scheduler"),
    "image_encoder": ("image_processor",),
    "text_encoder_2": ("tokenizer_2",),
}
DEFAULT_MAX_LOAD_BYTES = 2 * 1024**3


# --------------------------------------------------------------------------- isolation


@dataclass(frozen=True)
class UsableComponent:
    """One component of a model folder, checked on its own."""

    component_type: str  # its name in model_index.json: transformer, vae, text_encoder, ...
    path: str  # its folder
    class_name: str | None
    library: str | None
    is_functional: bool
    status: str  # ok | missing | corrupt | unavailable | optional (as in the component report)
    checked: str  # loaded | meta | header | skipped: how far the check went
    limitations: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()  # components it works with
    memory_bytes: int | None = None  # weight bytes as stored
    parameters: int | None = None
    dtype: str | None = None
    problems: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.component_type

    @property
    def memory(self) -> str:
        return format_bytes(self.memory_bytes) if self.memory_bytes is not None else "—"

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UsableComponent:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for key in ("limitations", "dependencies", "problems", "files"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)


def _dependencies(name: str, report: ComponentReport) -> tuple[str, ...]:
    if report[name].status == "optional":
        return ()
    present = {c.name for c in report.components if c.status != "optional"}
    return tuple(d for d in _DEPENDS.get(name, ()) if d in present)


def _usable(info: ComponentInfo, report: ComponentReport, *, functional: bool, checked: str,
            problems: tuple[str, ...] = (), limitations: tuple[str, ...] = ()) -> UsableComponent:
    return UsableComponent(
        component_type=info.name,
        path=str(Path(report.path) / info.name),
        class_name=info.class_name,
        library=info.library,
        is_functional=functional,
        status=info.status if functional or info.status != "ok" else "corrupt",
        checked=checked,
        limitations=limitations,
        dependencies=_dependencies(info.name, report),
        memory_bytes=info.bytes,
        parameters=info.parameters,
        dtype=", ".join(info.dtypes) or None,
        problems=info.problems + problems,
        files=info.files,
    )


def check_component(
    report: ComponentReport,
    name: str,
    *,
    load: bool = True,
    max_load_bytes: int = DEFAULT_MAX_LOAD_BYTES,
) -> UsableComponent:
    """Check one component alone: headers always, then a real load (or a meta build if large)."""
    info = report[name]
    root = Path(report.path)
    if info.status == "optional":
        return _usable(info, report, functional=False, checked="skipped",
                       limitations=("model_index.json leaves it empty (null): nothing to load",))
    if info.status != "ok":
        return _usable(info, report, functional=False, checked="header")
    small = info.bytes is None or info.bytes <= max_load_bytes
    if load and small:
        source = ComponentSource(name, info.library or "", info.class_name or "", str(root / name))
        try:
            # strict: a load that leaves weights missing would "work" with random values.
            module = load_component(source, strict=True)
        except SubstitutionError as exc:
            return _usable(info, report, functional=False, checked="loaded", problems=(str(exc),))
        # Dropped here, freed by reference counting (a gc.collect() per component costs ~1 s
        # with transformers' lazy modules loaded, and the weights hold no reference cycles).
        del module
        return _usable(info, report, functional=True, checked="loaded")
    from wan_nb.model.deep import check_functional

    checked = check_functional(root, info)
    limitations = ()
    if load and not small:
        limitations = (
            f"checked on the meta device against its headers, not loaded: {format_bytes(info.bytes)} is above "
            f"`max_load_bytes` ({format_bytes(max_load_bytes)})",
        )
    return _usable(checked, report, functional=bool(checked.functional), checked="meta", limitations=limitations)


def isolate_components(
    path: str | os.PathLike[str] | ComponentReport,
    *,
    load: bool = True,
    max_load_bytes: int = DEFAULT_MAX_LOAD_BYTES,
) -> list[UsableComponent]:
    """Load each component of a model folder on its own and report which work.

    Components up to ``max_load_bytes`` are loaded for real on the CPU (and freed);
    larger ones are built on the meta device and compared with their headers, which
    proves everything but the bytes of the weights. ``load=False`` does only that.
    """
    report = path if isinstance(path, ComponentReport) else analyze_model_components(path)
    checked = [check_component(report, c.name, load=load, max_load_bytes=max_load_bytes) for c in report.components]
    broken = {c.component_type: c.status for c in checked if not c.is_functional and c.status != "optional"}
    result = []
    for component in checked:
        # A part that works alone is still of no use without the parts it works with.
        missing = [f"{d} ({broken[d]})" for d in component.dependencies if d in broken]
        if component.is_functional and missing:
            note = f"works on its own, but the pipeline also needs {', '.join(missing)}"
            component = replace(component, limitations=component.limitations + (note,))
        result.append(component)
    return result


# --------------------------------------------------------------------------- donors


@dataclass(frozen=True)
class Donor:
    """A compatible component found in another local model folder."""

    component: str  # the name it fills in the broken folder
    folder: str  # the component folder to load it from
    model: str  # the model folder it belongs to
    library: str
    class_name: str
    source: str  # "user" | "models_dir" | "hf_cache"
    repo_id: str | None = None
    same_config: bool = False  # identical to the broken component's own config
    matched: dict[str, Any] = field(default_factory=dict)  # the config values that had to match
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Donor:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["notes"] = tuple(data.get("notes") or ())
        return cls(**data)


def _shape_config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _META_KEYS}


def _normalise(value: Any) -> Any:
    # JSON turns tuples into lists; (1, 2, 2) and [1, 2, 2] are the same patch size.
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def donor_requirements(report: ComponentReport, name: str) -> tuple[dict[str, Any], bool]:
    """The config values a donor for ``name`` must have, and whether they are its full config."""
    info = report[name]
    if info.config:
        return {k: _normalise(v) for k, v in _shape_config(info.config).items()}, True
    required: dict[str, Any] = {}
    if name == "transformer_2":
        first = report.component("transformer")
        if first is not None and first.config:
            return {k: _normalise(v) for k, v in _shape_config(first.config).items()}, False
    for key, other, other_key in _IMPLIED.get(name, ()):
        other_info = report.component(other)
        if other_info is not None and other_key in other_info.config:
            required[key] = other_info.config[other_key]
    return required, False


def _component_config(folder: Path) -> dict[str, Any] | None:
    for config_name in ("config.json", "scheduler_config.json", "tokenizer_config.json", "preprocessor_config.json"):
        if (folder / config_name).is_file():
            try:
                return read_json(folder / config_name)
            except CheckpointError:
                return None
    return None


def _check_candidate(
    report: ComponentReport, name: str, model: Path, source: str, repo_id: str | None,
    required: dict[str, Any], full: bool,
) -> tuple[Donor | None, str]:
    """A Donor when ``model``'s component ``name`` fits, else ``(None, why not)``."""
    info = report[name]
    try:
        index = read_json(model / "model_index.json")
    except CheckpointError as exc:
        return None, str(exc)
    entry = index.get(name)
    if not (isinstance(entry, list) and len(entry) == 2 and entry[1] == info.class_name):
        # Fall back to any entry of the same class under another name (e.g. "vae" vs "vae_2").
        entry_name = next((k for k, v in index.items() if isinstance(v, list) and len(v) == 2
                           and v[1] == info.class_name), None)
        if entry_name is None:
            return None, f"has no {info.class_name}"
        entry = index[entry_name]
    else:
        entry_name = name
    folder = model / entry_name
    config = _component_config(folder)
    if config is None:
        return None, f"{entry_name}/ has no readable config"
    have = {k: _normalise(v) for k, v in _shape_config(config).items()}
    if full:
        differ = sorted(k for k in set(required) | set(have) if required.get(k) != have.get(k))
        if differ:
            key = differ[0]
            return None, f"{entry_name} config differs ({key}: {have.get(key)!r}, needed {required.get(key)!r})"
    else:
        for key, value in required.items():
            if key in have and have[key] != _normalise(value):
                return None, f"{entry_name}.{key} is {have[key]!r}, needed {value!r}"
        if name == "vae" and "z_dim" not in have and "latent_channels" not in have and required:
            return None, f"{entry_name} config names no latent channels"
    # The donor's own files must be whole: headers read, and (meta build) shapes fit its config.
    # Only that component is analysed: the rest of the donor model is not our business.
    from wan_nb.model.components import _analyze_component

    donor_info = _analyze_component(model, entry_name, str(entry[0]), str(entry[1]))
    if donor_info.status != "ok":
        why = donor_info.problems[0] if donor_info and donor_info.problems else "not usable"
        return None, f"{entry_name} is damaged there too ({why})"
    from wan_nb.model.deep import check_functional

    checked = check_functional(model, donor_info)
    if not checked.functional:
        return None, f"{entry_name} does not build: {checked.problems[-1]}"
    matched = {k: required[k] for k in sorted(required) if k in have}
    notes = []
    if not full:
        notes.append(
            f"{name}'s own config is gone, so only {', '.join(matched) or 'its class'} could be checked; "
            f"this {entry_name} comes from {repo_id or model.name}."
        )
    if info.class_name and entry[0] != info.library:
        notes.append(f"declared as {entry[0]}.{entry[1]} there")
    return Donor(
        component=name,
        folder=str(folder),
        model=str(model),
        library=str(entry[0]),
        class_name=str(entry[1]),
        source=source,
        repo_id=repo_id,
        same_config=full,
        matched=matched if not full else {},
        notes=tuple(notes),
    ), ""


def find_donors(
    path: str | os.PathLike[str] | ComponentReport,
    component: str,
    search_dirs: list[str | os.PathLike[str]] | None = None,
    *,
    include_siblings: bool = True,
    include_hf_cache: bool = True,
) -> tuple[list[Donor], list[tuple[str, str]]]:
    """Every compatible donor for ``component``, best first, and why the others were not.

    Searched: ``search_dirs`` (folders you name; a model folder or a folder of models),
    the folders next to the model (``include_siblings``) and the Hugging Face cache.
    """
    report = path if isinstance(path, ComponentReport) else analyze_model_components(path)
    if component not in report.names:
        raise KeyError(
            f"`component={component!r}`: {report.path} has no such component; it has {', '.join(report.names)}."
        )
    dirs: list[tuple[str | os.PathLike[str], str]] = [(d, "user") for d in search_dirs or []]
    if include_siblings:
        dirs.append((Path(report.path).parent, "models_dir"))
    own = Path(report.path).resolve()
    required, full = donor_requirements(report, component)
    donors, rejected = [], []
    for model, source, repo_id in local_model_folders(dirs, include_hf_cache=include_hf_cache):
        if model.resolve() == own:
            continue
        donor, why = _check_candidate(report, component, model, source, repo_id, required, full)
        if donor is not None:
            donors.append(donor)
        else:
            rejected.append((str(model), why))
    rank = {"user": 0, "models_dir": 1, "hf_cache": 2}
    donors.sort(key=lambda d: (not d.same_config, rank.get(d.source, 3), d.model))
    return donors, rejected


def find_donor(
    path: str | os.PathLike[str] | ComponentReport,
    component: str,
    search_dirs: list[str | os.PathLike[str]] | None = None,
    **kwargs: Any,
) -> Donor | None:
    """The best compatible donor for ``component``, or None (see :func:`find_donors`)."""
    donors, _ = find_donors(path, component, search_dirs, **kwargs)
    return donors[0] if donors else None


def assemble_with_donors(
    path: str | os.PathLike[str] | ComponentReport,
    search_dirs: list[str | os.PathLike[str]] | None = None,
    *,
    donors: dict[str, Any] | None = None,
    torch_dtype=None,
    **search: Any,
):
    """Find a donor for every broken component and assemble the pipeline with them.

    Returns ``(pipeline, donors)``. Raises SubstitutionError naming the first component
    without a donor, with the files and command to fetch it instead.
    """
    report = path if isinstance(path, ComponentReport) else analyze_model_components(path)
    chosen: dict[str, Any] = dict(donors or {})
    for info in broken_components(report):
        if info.name in chosen:
            continue
        donor = find_donor(report, info.name, search_dirs, **search)
        if donor is None:
            fetch = [r for r in redownload_instructions(report) if r.component == info.name]
            hint = f" Fetch it again: {fetch[0].command}" if fetch else ""
            raise SubstitutionError(
                f"`{info.name}` is {info.status} in {report.path} and no compatible {info.class_name} was found "
                f"in the folders searched.{hint}"
            )
        chosen[info.name] = donor
    pipe = assemble_components(report, donors=chosen, torch_dtype=torch_dtype)
    return pipe, chosen


