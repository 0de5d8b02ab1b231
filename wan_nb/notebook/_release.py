"""Free what a failed cell still holds before it is rerun: its frames and the VAE's decode caches.

Left alone, both count as memory in use: the plan would predict less room than there is, and
on a GPU every retry would run beside the failed run's tensors.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from typing import Any


def is_pipeline(value: Any) -> bool:
    """A diffusers pipeline, by class name (so that checking imports nothing)."""
    return any(c.__name__ == "DiffusionPipeline" for c in type(value).__mro__)


def _clear_frames(error: BaseException) -> None:
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        with contextlib.suppress(RuntimeError):  # a frame still running
            frame.clear()
        if frame.f_code.co_flags & inspect.CO_OPTIMIZED:
            # IPython's traceback display read `f_locals`, which (before Python 3.13) caches a
            # dict of the locals on the frame that `frame.clear()` leaves behind; reading it again
            # after the clear syncs it to the now-empty locals. Module frames are skipped: their
            # `f_locals` is the notebook's namespace.
            _ = frame.f_locals
        tb = tb.tb_next


def release_failed_state(shell: Any) -> None:
    """Clear the last error's traceback frames (``%debug`` can no longer reach them) and VAE caches."""
    from wan_nb.recovery.sandbox import clear_tracebacks

    result = getattr(shell, "last_execution_result", None)
    for error in (getattr(sys, "last_value", None), getattr(result, "error_in_exec", None)):
        if error is not None:
            _clear_frames(error)
            clear_tracebacks(error)
    for value in list(shell.user_ns.values()):
        vae = getattr(value, "vae", None) if is_pipeline(value) else None
        # AutoencoderKLWan keeps the causal-conv feature caches of a decode that failed until the
        # next decode starts: the whole earlier part of the next run would carry them.
        if vae is not None and callable(getattr(vae, "clear_cache", None)):
            with contextlib.suppress(Exception):
                vae.clear_cache()
