"""The seed's analyzer, suggester and functions, over the handler and wan_nb's modules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from wan_nb.alternatives import AlternativeModel, get_local_alternatives, suggest_alternatives
from wan_nb.fallback.handler import FallbackHandler
from wan_nb.fallback.records import FallbackResult
from wan_nb.model import components as _components
from wan_nb.repair import UsableComponent, isolate_components

__all__ = ["AlternativeModelSuggester", "ComponentAnalyzer", "analyze_model_components", "find_alternative_models",
           "handle_pipeline_failure"]


class ComponentAnalyzer:
    """The seed's analyzer: ``analyze`` gives the whole report, ``analyze_component`` one part.

    ``analyze_component`` returns a :class:`UsableComponent` (the seed's
    ``component_type`` / ``is_functional``), checked on its own.
    """

    def __init__(self, *, deep: bool = False):
        self.deep = deep

    def analyze(self, model_path: str | os.PathLike[str]) -> _components.ComponentReport:
        return _components.analyze_model_components(model_path, deep=self.deep)

    def analyze_component(self, model_path: str | os.PathLike[str], component: str | None = None) -> UsableComponent:
        """Check one component alone; ``model_path`` may be the component's own folder."""
        path = Path(model_path).expanduser()
        if component is None:
            if not (path.parent / "model_index.json").is_file():
                raise ValueError(
                    f"`component` is needed: {path} is not a component folder of a diffusers model "
                    "(its parent has no model_index.json)."
                )
            path, component = path.parent, path.name
        from wan_nb.repair.donors import check_component

        return check_component(self.analyze(path), component)


class AlternativeModelSuggester:
    """The seed's suggester, over :func:`wan_nb.alternatives.suggest_alternatives`."""

    def __init__(self, *, models_dir: str | os.PathLike[str] | None = None, available_memory: int | str | None = None):
        self.models_dir = models_dir
        self.available_memory = available_memory

    def suggest(self, target_architecture: Any, available_memory: int | str | None = None) -> list[AlternativeModel]:
        memory = available_memory if available_memory is not None else self.available_memory
        return suggest_alternatives(target_architecture, memory, models_dir=self.models_dir)

    def local(self) -> list[AlternativeModel]:
        return get_local_alternatives(self.models_dir)


# --------------------------------------------------------------------------- functions


def handle_pipeline_failure(model_path: Any, error: Any, context: dict[str, Any] | None = None) -> FallbackResult:
    """Diagnose ``error``, try the fallbacks for ``model_path`` and return what worked.

    ``context`` holds :class:`FallbackHandler`'s options (``allow_remote_code``,
    ``models_dir``, ``available_memory``, ``call_kwargs``, ...).
    """
    return FallbackHandler.from_context(context).handle(model_path, error)


def analyze_model_components(path: str | os.PathLike[str]) -> list[UsableComponent]:
    """Each component of the folder checked on its own (the seed's name; see isolate_components)."""
    return isolate_components(path)


def find_alternative_models(
    architecture: Any, models_dir: str | os.PathLike[str] | None = None, available_memory: int | str | None = None
) -> list[AlternativeModel]:
    """Alternatives for ``architecture``, the ones already in ``models_dir`` marked with their path."""
    return suggest_alternatives(architecture, available_memory, models_dir=models_dir)
