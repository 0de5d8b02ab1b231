"""The seed's API — ``FallbackHandler`` and friends — as a thin layer over wan_nb's modules.

>>> result = handle_pipeline_failure("models/Wan2.1-T2V-1.3B", error)   # doctest: +SKIP
>>> result.success, result.strategy.name, result.pipeline                # doctest: +SKIP

What each name does now:

* :class:`FallbackHandler` — ``create_fallback_strategy(failed_pipeline, error)`` plans the
  structural strategies for the failure (pipeline substitution, component isolation /
  donors / redownload, alternative models; memory failures come from :func:`wan_nb.planning.planner.plan`)
  and returns the best; ``execute_fallback_strategy(strategy, model_path)`` runs one and
  returns a :class:`FallbackResult`; ``handle(model_path, error)`` tries them in order.
* :func:`handle_pipeline_failure`, :func:`analyze_model_components`,
  :func:`find_alternative_models`: the seed's functions, over the same handler.

Success probabilities are not fixed numbers (the seed had 80 %, 70 %, ...). Each is
``p_history × p_fit`` from :mod:`wan_nb.history`: the Laplace-smoothed success rate of
that strategy for that failure category on this machine, times the probability that
the estimated peak stays under the memory available (a log-normal error model learned
from earlier estimate/measurement pairs). Each executed attempt is recorded there, so
the next plan on this machine is reordered by what worked.

Nothing here installs or downloads anything; ``upgrade_library`` and ``redownload`` are
guidance (a command for you to run), ``remote_code`` needs ``allow_remote_code=True``, and
the model folder is never written.
"""

from __future__ import annotations

from wan_nb.alternatives import AlternativeModel
from wan_nb.fallback.handler import FallbackHandler
from wan_nb.fallback.records import AttemptRecord, FallbackResult, FallbackStrategy
from wan_nb.fallback.seed import (
    AlternativeModelSuggester,
    ComponentAnalyzer,
    analyze_model_components,
    find_alternative_models,
    handle_pipeline_failure,
)
from wan_nb.repair import UsableComponent

__all__ = [
    "AlternativeModel",
    "AlternativeModelSuggester",
    "AttemptRecord",
    "ComponentAnalyzer",
    "FallbackHandler",
    "FallbackResult",
    "FallbackStrategy",
    "UsableComponent",
    "analyze_model_components",
    "find_alternative_models",
    "handle_pipeline_failure",
]
