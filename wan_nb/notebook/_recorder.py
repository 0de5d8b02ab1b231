"""Remember the last failed cell: its source and its diagnosis, never the exception.

The exception and its traceback frames would keep the failed run's tensors (and so its
GPU memory) alive for as long as they were held; a :class:`FailedCell` holds strings,
numbers and, for replay, host copies of what the failed pipeline call made (its latents or
prompt embeddings: :mod:`wan_nb.recovery.replay`). The frames are read once, in the
``post_run_cell`` hook, and the reference is dropped before the hook returns.
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

# Cells that call the extension's own magics are never recorded: rerunning them would rerun
# the magic (a `%wan_recover` whose recovery failed would recover itself).
_OWN_MAGIC = re.compile(r"^\s*%{1,2}wan_\w+|get_ipython\(\)\.run_(?:line|cell)_magic\(\s*['\"]wan_", re.MULTILINE)


@dataclass(frozen=True)
class FailedCell:
    """A cell that failed: what it ran, what went wrong (as data), and whether it was recovered."""

    source: str
    diagnosis: Any  # wan_nb.diagnosis.core.Diagnosis
    error: str  # "OutOfMemoryError: CPU out of memory ..." (one line)
    execution_count: int | None = None
    recovered_by: str | None = None
    kept: Any = None  # wan_nb.recovery.replay.KeptRun: host tensors only, dropped once recovered

    @property
    def label(self) -> str:
        return f"In [{self.execution_count}]" if self.execution_count else "the last failed cell"


def uses_own_magic(source: str) -> bool:
    return bool(_OWN_MAGIC.search(source or ""))


def error_line(error: BaseException) -> str:
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__


class FailureRecorder:
    """The ``post_run_cell`` callback: keeps :attr:`last`, the most recent failed cell."""

    def __init__(self) -> None:
        self.last: FailedCell | None = None
        self._paused = 0
        self._warned = False
        self._started: float | None = None

    def started(self, info: Any = None) -> None:
        """The ``pre_run_cell`` callback: when the cell began (the failed run's time up to the failure)."""
        self._started = time.perf_counter()

    def __call__(self, result: Any) -> None:
        if self._paused:
            return
        error = getattr(result, "error_in_exec", None)
        if error is None or isinstance(error, KeyboardInterrupt):
            return
        try:
            info = getattr(result, "info", None)
            source = getattr(info, "raw_cell", None) or ""
            if uses_own_magic(source):
                return
            from wan_nb.diagnosis import diagnose
            from wan_nb.recovery.replay import keep_from_error

            seconds = time.perf_counter() - self._started if self._started is not None else None
            self.last = FailedCell(
                source=source,
                diagnosis=diagnose(error),
                error=error_line(error),
                execution_count=getattr(result, "execution_count", None),
                kept=keep_from_error(error, seconds=seconds),
            )
        except Exception as exc:  # noqa: BLE001 - a hook must never break the user's notebook
            if not self._warned:
                self._warned = True
                warnings.warn(f"wan_nb could not record the failed cell: {exc}", RuntimeWarning, stacklevel=2)
        finally:
            del error

    def remember(self, source: str, diagnosis: Any, error: str, execution_count: int | None = None) -> None:
        """Record a failure the hook did not see (the body of a ``%%wan_recover`` cell)."""
        self.last = FailedCell(source, diagnosis, error, execution_count)

    def mark_recovered(self, strategy: str) -> None:
        if self.last is not None:
            self.last = replace(self.last, recovered_by=strategy, kept=None)

    def drop_kept(self) -> None:
        """A recovery ran: what the failed run made is not held any longer."""
        if self.last is not None and self.last.kept is not None:
            self.last = replace(self.last, kept=None)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Record nothing meanwhile: code run by the magics themselves is not the user's cell."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1
