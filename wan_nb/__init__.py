"""wan_nb: say why a diffusers video pipeline failed, predict each fallback, recover, measure.

``import wan_nb`` stays light: torch, diffusers and IPython are imported only by the
functions that need them, so ``%load_ext wan_nb`` and ``wan-nb --help`` are fast.
"""

from __future__ import annotations

from typing import Any

from wan_nb._lazy import lazy_exports as _lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first access (PEP 562).
_EXPORTS: dict[str, str] = {
    "GenerationSettings": "wan_nb.settings",
    "parse_bytes": "wan_nb.units",
    "format_bytes": "wan_nb.units",
    "CheckpointError": "wan_nb.model",
    "ComponentAnalyzer": "wan_nb.fallback",
    "ComponentInfo": "wan_nb.model",
    "ComponentReport": "wan_nb.model",
    "analyze_model_components": "wan_nb.model",
    "Measurement": "wan_nb.memory.meter",
    "measure": "wan_nb.memory.meter",
    "memory_budget": "wan_nb.memory.budget",
    "MemoryEstimate": "wan_nb.memory.estimate",
    "estimate_memory": "wan_nb.memory.estimate",
    "Diagnosis": "wan_nb.diagnosis",
    "diagnose": "wan_nb.diagnosis",
    "plan": "wan_nb.planning",
    "Plan": "wan_nb.planning",
    "Candidate": "wan_nb.planning",
    "recover": "wan_nb.recovery",
    "retry_on_failure": "wan_nb.recovery",
    "RecoveryReport": "wan_nb.recovery",
    "RecoveryError": "wan_nb.recovery",
    "Attempt": "wan_nb.recovery",
    "Strategy": "wan_nb.strategies",
    "StrategyContext": "wan_nb.strategies",
    "get_strategy": "wan_nb.strategies",
    "STRATEGIES": "wan_nb.strategies",
    "FallbackHandler": "wan_nb.fallback",
    "FallbackStrategy": "wan_nb.fallback",
    "FallbackResult": "wan_nb.fallback",
    "AlternativeModelSuggester": "wan_nb.fallback",
    "handle_pipeline_failure": "wan_nb.fallback",
    "find_alternative_models": "wan_nb.fallback",
    "UsableComponent": "wan_nb.repair",
    "isolate_components": "wan_nb.repair",
    "find_donor": "wan_nb.repair",
    "redownload_instructions": "wan_nb.repair",
    "AlternativeModel": "wan_nb.alternatives",
    "suggest_alternatives": "wan_nb.alternatives",
    "get_local_alternatives": "wan_nb.alternatives",
    "assemble_components": "wan_nb.repair",
    "generic_pipeline": "wan_nb.repair",
    "upgrade_guidance": "wan_nb.repair",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = _lazy_exports(globals(), _EXPORTS)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext wan_nb``: register the magics and the failed-cell hook."""
    from wan_nb.notebook.magic import load_extension

    load_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext wan_nb``: remove everything ``%load_ext wan_nb`` added."""
    from wan_nb.notebook.magic import unload_extension

    unload_extension(ipython)
