"""Run a block as if the device were smaller: ``with memory_budget("12GiB"): pipe(...)``.

Inside the block, a run that would need more than the budget fails with a genuine
``torch.OutOfMemoryError`` — the same exception class, raised from the same place (an
allocation), that a smaller card would raise. Rehearse a 16 GB Colab card on an 80 GB A100,
or on a laptop.

The budget is the device's whole capacity as the run sees it, weights already loaded
included: ``memory_budget("12GiB")`` with 10 GiB of weights on the device leaves 2 GiB for the
run. It can be bytes (``12 * 2**30``), a size string (``"12GiB"``, ``"16GB"``) or a fraction
``0 < x <= 1`` of the device's total memory (CUDA/XPU: ``total_memory``; MPS: the
recommended working-set size; CPU: the machine's RAM). Nested budgets take the smaller.
Leaving the block releases everything it took.

How the cap is made:

- **CPU**: wan_nb's live-storage tracker (``wan_nb.memory._tracker``) checks each op's new
  storages against the budget before registering them; an over-budget op raises
  ``torch.OutOfMemoryError("CPU out of memory under wan_nb.memory_budget: Tried to allocate
  X; budget Y; in use Z.")``. Factory ops (``empty``, ``zeros``, ``randn``...) are refused
  before they allocate; other ops are refused right after, their output dropped.
- **CUDA / XPU**: both of torch's levers, because each covers what the other misses:

  1. a *ballast*: after ``empty_cache()``, wan_nb allocates the device's free memory beyond
     ``budget - in use`` and holds it. ``torch.cuda.mem_get_info()`` (which accelerate's
     ``device_map="auto"`` and other memory-aware code read) then reports the small device,
     and memory taken outside torch's caching allocator (cuBLAS/cuDNN workspaces, other
     libraries) runs out where it would on the small card;
  2. ``set_per_process_memory_fraction(cap / total)``, with the cap at ``budget + ballast``:
     the caching allocator refuses to grow its pool past it, so the limit holds exactly even
     if free memory appears on the device during the run (another process exits) and
     counts the allocator's reserved pool, as a real card does.

  The error is torch's own (``CUDA out of memory. Tried to allocate ...``). The ballast is
  released, the previous fraction restored, and the cache emptied on exit. The ballast
  shows in ``torch.cuda.memory_allocated``; ``wan_nb.measure`` subtracts it.
- **MPS**: only the fraction (``torch.mps.set_per_process_memory_fraction``); a ballast on
  unified memory would take the host's RAM too.

Limits: the CPU tracker is thread-local (see ``wan_nb.memory._tracker``); a CUDA budget
larger than the memory actually free cannot make the device bigger.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from wan_nb.units import format_bytes, parse_bytes

__all__ = ["MemoryBudget", "memory_budget"]

_CHUNK = 1 << 30  # ballast is taken in pieces: one huge block can fail where pieces fit
_ROUND = 2 << 20  # the CUDA allocator rounds large blocks to 2 MiB


@dataclass
class _Entry:
    device: Any
    limit: int
    ballast: list[Any] = field(default_factory=list)
    ballast_bytes: int = 0
    previous_fraction: float | None = None
    refused_before: int = 0  # how many refusals the tracker had recorded at entry


# device string -> effective limits of the budgets active on it, innermost last.
_ACCEL_LIMITS: dict[str, list[int]] = {}


class MemoryBudget(contextlib.ContextDecorator):
    """A device-memory cap for a block (see the module docstring); also a decorator."""

    def __init__(self, budget: str | int | float, device: Any = None) -> None:
        self.budget = budget
        if device is not None:
            from wan_nb.vocabulary import check_device

            check_device(device)
        self._device_arg = device
        self._fraction: float | None = None
        if isinstance(budget, float) and not isinstance(budget, bool):
            if not 0.0 < budget <= 1.0:
                raise ValueError(
                    f"A fractional `budget` must be in (0, 1] (a share of the device's memory), "
                    f"got {budget!r}; give bytes or a size such as '12GiB' otherwise."
                )
            self._fraction = budget
            self._bytes: int | None = None
        else:
            self._bytes = parse_bytes(budget)
            if self._bytes <= 0:
                raise ValueError(f"`budget` must be more than 0 bytes, got {budget!r}.")
        self._entries: list[_Entry] = []
        self.limit_bytes: int | None = self._bytes
        self.device: str | None = None

    def __repr__(self) -> str:
        shown = format_bytes(self.limit_bytes) if self.limit_bytes is not None else f"{self._fraction:.0%}"
        return f"<MemoryBudget {shown} on {self.device or 'the default device'}>"

    def __enter__(self) -> MemoryBudget:
        from wan_nb.memory import _accel

        dev = _accel.normalize(self._device_arg) if self._device_arg is not None else _accel.default_device()
        if dev.type == "meta":
            raise ValueError("`device='meta'` holds no memory to budget.")
        limit = self._bytes if self._fraction is None else int(self._fraction * _accel.device_total_bytes(dev))
        entry = _Entry(device=dev, limit=limit)
        if dev.type == "cpu":
            from wan_nb.memory._tracker import TRACKER

            TRACKER.acquire()
            TRACKER.push_limit(limit)
            entry.refused_before = TRACKER.refused
        else:
            _enter_accelerator(entry)
        self._entries.append(entry)
        self.device = str(dev)
        self.limit_bytes = limit
        return self

    def __exit__(self, *exc: Any) -> None:
        entry = self._entries.pop()
        if entry.device.type == "cpu":
            from wan_nb.memory._tracker import TRACKER

            refused = TRACKER.refusals[-1:] if TRACKER.refused > entry.refused_before else []
            TRACKER.pop_limit(entry.limit)
            TRACKER.release()
            _note_refusal(exc[1] if len(exc) > 1 else None, refused)
        else:
            _exit_accelerator(entry)


# The words diagnosis looks for (wan_nb.diagnosis.patterns._BUDGET_REFUSED).
REFUSAL_NOTE = "wan_nb.memory_budget refused an allocation in this block"


def _note_refusal(error: BaseException | None, refused: list[str]) -> None:
    """Say on the error leaving the block that the budget refused an allocation in it.

    A library may have turned the budget's OOM into something else (an ``OSError``
    "Unable to load weights" that blames a good file); the note, which tracebacks print and
    ``diagnose`` reads, keeps the cause. An OOM error needs no note: it says so itself.
    """
    if error is None or not refused or any(c.__name__ == "OutOfMemoryError" for c in type(error).__mro__):
        return
    note = f"{REFUSAL_NOTE} ({refused[-1]}); the error above is what the code made of that refusal."
    if note in (getattr(error, "__notes__", None) or ()):
        return
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # Python 3.10: no add_note; the same list, which diagnose reads
        error.__notes__ = [*getattr(error, "__notes__", []), note]


def memory_budget(budget: str | int | float, device: Any = None) -> MemoryBudget:
    """Cap device memory inside a ``with`` block (or a decorated function).

    Args:
        budget: bytes, a size string (``"12GiB"``) or a fraction ``0 < x <= 1`` of the
            device's total memory.
        device: the device to cap; default the current accelerator, else the CPU.
    """
    return MemoryBudget(budget, device=device)


def _enter_accelerator(entry: _Entry) -> None:
    import torch

    from wan_nb.memory import _accel

    dev = entry.device
    key = str(dev)
    limits = _ACCEL_LIMITS.setdefault(key, [])
    effective = min([entry.limit, *limits])
    # Fold the meters' peaks with the old ballast before it changes.
    _accel.checkpoint_device(dev)
    _accel.empty_cache(dev)
    held = _accel.BALLAST.get(key, 0)
    in_use = _accel.memory_reserved(dev) - held
    room = max(0, effective - in_use)

    if dev.type == "mps":
        total = _accel.mem_get_info(dev)[1]
        entry.previous_fraction = _mps_fraction()
        # 0 would mean "no limit" to MPS: keep the smallest positive cap instead.
        _accel.set_fraction(dev, max(1e-6, min(entry.previous_fraction, (in_use + room) / total)))
        limits.append(effective)
        return

    free, total = _accel.mem_get_info(dev)
    want = max(0, free - room) // _ROUND * _ROUND
    try:
        while want > 0:
            size = min(_CHUNK, want)
            try:
                entry.ballast.append(torch.empty(size, dtype=torch.uint8, device=dev))
            except torch.OutOfMemoryError:
                # Free memory the driver reports is not always one allocatable piece.
                if size <= _ROUND:
                    break
                want = want // 2 // _ROUND * _ROUND
                continue
            entry.ballast_bytes += size
            want -= size
        _accel.BALLAST[key] = held + entry.ballast_bytes
        entry.previous_fraction = _accel.get_fraction(dev)
        # The fraction is checked against the allocator's pool, which holds the ballast too.
        cap = max(in_use, effective) + held + entry.ballast_bytes
        _accel.set_fraction(dev, min(entry.previous_fraction, cap / total))
    except BaseException:
        # Leave the device as it was found.
        if entry.previous_fraction is not None:
            _accel.set_fraction(dev, entry.previous_fraction)
        entry.ballast.clear()
        _accel.BALLAST[key] = held
        if not held:
            _accel.BALLAST.pop(key, None)
        _accel.empty_cache(dev)
        raise
    limits.append(effective)


def _exit_accelerator(entry: _Entry) -> None:
    from wan_nb.memory import _accel

    dev = entry.device
    key = str(dev)
    limits = _ACCEL_LIMITS.get(key, [])
    if limits:
        limits.pop()
    _accel.checkpoint_device(dev)
    if entry.previous_fraction is not None:
        _accel.set_fraction(dev, entry.previous_fraction)
    entry.ballast.clear()
    remaining = _accel.BALLAST.get(key, 0) - entry.ballast_bytes
    if remaining > 0:
        _accel.BALLAST[key] = remaining
    else:
        _accel.BALLAST.pop(key, None)
    _accel.empty_cache(dev)
    peaks = _accel.AcceleratorPeaks._instances.get(key)
    if peaks is not None and peaks.watchers:
        # The peak statistic still holds the ballast we no longer subtract.
        _accel.reset_peak(dev)


def _mps_fraction() -> float:
    # torch.mps has no getter; its documented default is the high-watermark ratio.
    return float(os.environ.get("PYTORCH_MPS_HIGH_WATERMARK_RATIO", "1.7"))
