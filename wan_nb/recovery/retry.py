"""``retry_on_failure``: the script entry point, in the spirit of accelerate's ``find_executable_batch_size``."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

from wan_nb.planning import NOT_RETRIED
from wan_nb.recovery.checks import check_arguments
from wan_nb.recovery.engine import recover
from wan_nb.recovery.records import RecoveryError
from wan_nb.recovery.replay import keep_from_error
from wan_nb.recovery.sandbox import clear_tracebacks

__all__ = ["retry_on_failure"]

_DEFAULTS = {name: p.default for name, p in inspect.signature(recover).parameters.items() if name != "run"}
_SUPPLIED = ("run", "error", "diagnosis", "kept")  # retry_on_failure passes these itself


def retry_on_failure(function: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Run ``function``; when it fails in a way a strategy can fix, rerun it under the plan.

    In the spirit of accelerate's ``find_executable_batch_size``, for scripts::

        @retry_on_failure                      # or @retry_on_failure(budget="12GiB", allow_degraded=True)
        def generate(prompt):
            return pipe(prompt, num_frames=81).frames[0]

        video = generate("a cat")              # the winner's result; generate.last_report says how

    ``options`` are :func:`recover`'s keyword arguments. The first call runs as it is (under
    ``budget`` when given). An error no strategy answers (a bug in the function, a broken
    accelerator) is re-raised unchanged; when every strategy fails, :class:`RecoveryError`
    carries the report; Ctrl-C restores the pipelines and re-raises ``KeyboardInterrupt``.
    """
    unknown = set(options) - set(inspect.signature(recover).parameters) - {"run"}
    if unknown:
        raise TypeError(f"retry_on_failure() got unknown option(s) {', '.join(sorted(unknown))}; "
                        "it accepts recover()'s keyword arguments.")
    given = [name for name in _SUPPLIED if name in options]
    if given:
        raise TypeError(f"retry_on_failure() supplies `run`, the error and what it left itself; do not pass "
                        f"`{given[0]}`.")
    # Bad options fail here, at decoration, not after the first failure of a long run.
    check_arguments(lambda: None, {**_DEFAULTS, **options})
    if function is None:
        return functools.partial(retry_on_failure, **options)
    if not callable(function):
        raise TypeError(f"retry_on_failure() decorates a function, got {type(function).__name__}.")

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        budget = options.get("budget")
        start = time.perf_counter()
        try:
            if budget is not None:
                from wan_nb.memory.budget import memory_budget

                with memory_budget(budget, device=options.get("device")):
                    return function(*args, **kwargs)
            return function(*args, **kwargs)
        except Exception as exc:
            from wan_nb.diagnosis import diagnose

            found = diagnose(exc)
            if found.category in NOT_RETRIED or not _answerable(found.category):
                raise
            # What the failed call made (its latents, its embeddings) is read before its frames go.
            kept = keep_from_error(exc, seconds=time.perf_counter() - start) if options.get("replay", True) else None
            clear_tracebacks(exc)
            del exc
        report = recover(lambda: function(*args, **kwargs), diagnosis=found, kept=kept,
                         pipeline=options.get("pipeline"), **{k: v for k, v in options.items() if k != "pipeline"})
        wrapper.last_report = report  # type: ignore[attr-defined]
        if report.interrupted:
            raise KeyboardInterrupt("wan_nb recovery interrupted; the pipelines were restored.")
        if not report.succeeded:
            raise RecoveryError(report)
        return report.result

    wrapper.last_report = None  # type: ignore[attr-defined]
    return wrapper


def _answerable(category: str) -> bool:
    from wan_nb.strategies import STRATEGIES

    return any(category in s.answers for s in STRATEGIES.values())
