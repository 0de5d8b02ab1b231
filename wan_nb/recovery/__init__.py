"""The recovery engine: rerun a failing run under the planned strategies, measured, one sandbox at a time.

- :mod:`~wan_nb.recovery.records`: :class:`Attempt`, :class:`RecoveryReport`, :class:`RecoveryError`;
- :mod:`~wan_nb.recovery.observe`: what a run asks for (its loads, its call's settings, a dry run);
- :mod:`~wan_nb.recovery.patches`: the patches on ``from_pretrained`` and ``__call__``;
- :mod:`~wan_nb.recovery.sandbox`: one attempt's capture, patch, restore and release;
- :mod:`~wan_nb.recovery.attempt`: one measured run under one strategy;
- :mod:`~wan_nb.recovery.engine`: :func:`recover`, the loop over the plan;
- :mod:`~wan_nb.recovery.retry`: :func:`retry_on_failure` for scripts.
"""

from __future__ import annotations

from wan_nb.recovery.engine import recover
from wan_nb.recovery.records import Attempt, RecoveryError, RecoveryReport
from wan_nb.recovery.retry import retry_on_failure

__all__ = ["Attempt", "RecoveryError", "RecoveryReport", "recover", "retry_on_failure"]
