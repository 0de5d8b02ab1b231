"""Planning: which strategies to try for a failure, in what order, with what estimate, and why not the others.

:func:`plan` is the one planner; :mod:`wan_nb.fallback` (the seed's API) and the recovery
engine both read its :class:`Plan`.
"""

from __future__ import annotations

from wan_nb.planning.planner import NOT_RETRIED, SAFETY_MARGIN, plan
from wan_nb.planning.records import Candidate, Plan

__all__ = ["NOT_RETRIED", "SAFETY_MARGIN", "Candidate", "Plan", "plan"]
