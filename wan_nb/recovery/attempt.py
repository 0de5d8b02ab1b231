"""Run the user's code once under one strategy, measured, and turn what happened into an :class:`Attempt`."""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wan_nb.recovery.records import Attempt
from wan_nb.recovery.replay import KeptRun, keep_from_error
from wan_nb.recovery.sandbox import Sandbox, Scope, clear_tracebacks
from wan_nb.strategies import Strategy


@dataclass
class Replay:
    """What the recovery may reuse from a failed run; a later failure that leaves more replaces it."""

    enabled: bool = True
    kept: KeptRun | None = None

    def keep(self, error: BaseException, seconds: float | None, stage_seconds: dict[str, float]) -> None:
        if not self.enabled:
            return
        kept = keep_from_error(error, seconds=seconds, stage_seconds=stage_seconds)
        if kept is not None:
            self.kept = kept


@dataclass(frozen=True)
class Trial:
    """What one attempt tries: a strategy (None: the run as it is) and what the plan said of it."""

    name: str
    strategy: Strategy | None = None
    estimate: int | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    keep: bool = False
    reason: str = ""


def run_attempt(scope: Scope, run: Callable[[], Any], trial: Trial, budget: Any = None,
                replay: Replay | None = None) -> tuple[Attempt, Any, bool]:
    """Run ``run`` once under ``trial``; returns (attempt, result, interrupted).

    With ``replay``, the call that matches its kept run reuses it, and a failure that leaves
    latents or embeddings behind is kept for the next attempts. The pipelines are put back
    (unless the trial keeps a success), the error's frames are cleared and memory is freed
    before this returns, so the next attempt starts clean.
    """
    from wan_nb.memory import _accel
    from wan_nb.memory.meter import measure

    sandbox = Sandbox(scope, trial.strategy, dict(trial.changes), replay.kept if replay is not None else None)
    result = None
    error: BaseException | None = None
    interrupted = False
    meter = None
    start = time.perf_counter()
    try:
        sandbox.open()
        with _budget(budget, scope.device), measure(device=scope.device) as meter:
            sandbox.watch(meter)
            result = run()
    except KeyboardInterrupt as exc:
        interrupted = True
        error = exc
    except Exception as exc:  # noqa: BLE001 - every failure of the user's code is recorded, diagnosed and undone
        error = exc
    except BaseException:
        # SystemExit and the like end the engine too, with the pipelines put back.
        sandbox.close()
        raise
    seconds = time.perf_counter() - start
    succeeded = error is None
    problems = sandbox.close(keep=trial.keep and succeeded, succeeded=succeeded)
    measured = None
    if meter is not None:
        with contextlib.suppress(RuntimeError):  # the meter never started
            measured = meter.result
    diagnosis = error_line = error_text = None
    if error is not None and not interrupted:
        from wan_nb.diagnosis import diagnose

        diagnosis = diagnose(error).to_dict()
    if error is not None and not interrupted and replay is not None:
        # Before the frames go: the latents of a failed decode, the embeddings of a failed denoise.
        replay.keep(error, seconds, dict(measured.stage_seconds) if measured else {})
    if error is not None:
        message = str(error).strip().splitlines()
        error_line = f"{type(error).__name__}: {message[0]}" if message else type(error).__name__
        error_text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        clear_tracebacks(error)
    if not succeeded:
        result = None
    replayed, saved, note = sandbox.replayed, sandbox.saved_seconds, sandbox.replay_note
    choices = {k: v for k, v in sandbox.choices.items() if v is not None}
    # The meter and the sandbox hold the attempt's pipelines (a fresh load, a failed load):
    # drop them, and the error, before collecting.
    del error, meter, sandbox
    _accel.free_memory(scope.device)
    status = "success" if succeeded else ("interrupted" if interrupted else "failed")
    attempt = Attempt(
        strategy=trial.name,
        status=status,
        reason=trial.reason,
        diagnosis=diagnosis,
        estimated_peak_bytes=trial.estimate,
        measured_peak_bytes=measured.peak_bytes if measured else None,
        baseline_bytes=measured.baseline_bytes if measured else None,
        by_stage=dict(measured.by_stage) if measured else {},
        seconds=round(seconds, 4),
        error=error_line,
        error_text=error_text,
        changes=dict(trial.changes),
        restore_problems=tuple(problems),
        replayed=replayed,
        saved_seconds=saved,
        replay_note=note,
        stage_seconds=dict(measured.stage_seconds) if measured else {},
        choices=choices,
    )
    return attempt, result, interrupted


def _budget(budget: Any, device: str):
    if budget is None:
        return contextlib.nullcontext()
    from wan_nb.memory.budget import memory_budget

    return memory_budget(budget, device=device)
