"""The records of a model folder's analysis: :class:`ComponentInfo` per component, the :class:`ComponentReport`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from wan_nb._records import json_native
from wan_nb.model.checkpoint import CheckpointError
from wan_nb.model.kinds import component_kind, holds_weights
from wan_nb.units import format_bytes


class ModelFolderError(CheckpointError):
    """The path is not a diffusers model folder wan_nb can analyse at all."""


@dataclass(frozen=True)
class ComponentInfo:
    """One entry of ``model_index.json`` and what its folder holds."""

    name: str
    library: str | None
    class_name: str | None
    status: str  # ok | missing | corrupt | unavailable | optional
    importable: bool = False
    introduced_in: str | None = None  # diffusers version that added the class (Wan classes)
    files: tuple[str, ...] = ()  # relative to the model folder
    parameters: int | None = None
    bytes: int | None = None  # weight bytes, from the safetensors headers
    dtypes: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    functional: bool | None = None  # set by deep analysis only
    # model | tokenizer | scheduler | image_processor | feature_extractor | processor (model.kinds):
    # from the class's place in its library and the folder's files, never from the name.
    kind: str | None = None
    # Elements of the persistent buffers stored in the weight files (deep analysis tells them
    # from parameters by building the class; until then ``parameters`` counts every tensor).
    buffers: int | None = None

    @property
    def has_weights(self) -> bool:
        return holds_weights(self.kind or component_kind(self.library, self.class_name, self.files))

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComponentInfo:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for key in ("files", "dtypes", "problems"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)


@dataclass(frozen=True)
class ComponentReport:
    """Everything the analysis found about one model folder."""

    path: str
    pipeline_class: str | None
    pipeline_importable: bool
    diffusers_version: str | None  # installed
    saved_with: str | None  # model_index.json's _diffusers_version
    components: tuple[ComponentInfo, ...]
    pipeline_config: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    deep: bool = False

    def component(self, name: str) -> ComponentInfo | None:
        return next((c for c in self.components if c.name == name), None)

    def __getitem__(self, name: str) -> ComponentInfo:
        found = self.component(name)
        if found is None:
            raise KeyError(f"{self.path} has no component {name!r}; it has {', '.join(self.names)}.")
        return found

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components)

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.status in ("ok", "optional") for c in self.components)

    @property
    def total_parameters(self) -> int:
        return sum(c.parameters or 0 for c in self.components)

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes or 0 for c in self.components)

    @property
    def all_problems(self) -> tuple[str, ...]:
        return self.problems + tuple(f"{c.name}: {p}" for c in self.components for p in c.problems)

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComponentReport:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["components"] = tuple(ComponentInfo.from_dict(c) for c in data.get("components") or ())
        data["problems"] = tuple(data.get("problems") or ())
        return cls(**data)

    def to_frame(self):
        """One row per component, as a pandas DataFrame."""
        import pandas as pd

        rows = [
            {
                "component": c.name,
                "status": c.status,
                "class": c.class_name,
                "library": c.library,
                "importable": c.importable,
                "introduced_in": c.introduced_in,
                "parameters": c.parameters,
                "dtype": ", ".join(c.dtypes),
                "bytes": c.bytes,
                "size": format_bytes(c.bytes) if c.bytes is not None else "",
                "files": len(c.files),
                "problems": "; ".join(c.problems),
            }
            for c in self.components
        ]
        return pd.DataFrame(rows).set_index("component")

    def to_text(self) -> str:
        """A plain table for terminals, logs and nbval."""
        head = f"{self.pipeline_class or '?'} at {self.path}"
        head += f" (diffusers {self.diffusers_version or 'not installed'}"
        head += f", saved with {self.saved_with})" if self.saved_with else ")"
        rows = [("component", "status", "class", "parameters", "dtype", "size")]
        for c in self.components:
            rows.append((
                c.name,
                c.status,
                c.class_name or "-",
                f"{c.parameters:,}" if c.parameters is not None else "-",
                ",".join(c.dtypes) or "-",
                format_bytes(c.bytes) if c.bytes is not None else "-",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [head, *("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)]
        lines.append(f"total: {self.total_parameters:,} parameters, {format_bytes(self.total_bytes)}")
        lines += [f"problem: {p}" for p in self.all_problems]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()
