"""Accelerator memory statistics (CUDA, XPU, MPS) behind one small interface.

Each backend module (``torch.cuda``, ``torch.xpu``, ``torch.mps``) is asked first, because
those functions exist in every torch wan_nb supports; ``torch.accelerator`` (newer torch) is
the fallback. Nothing here guesses: a statistic the installed torch does not offer raises,
so the meter never reports an estimate as a measurement.

The budget's ballast is allocated through the same caching allocator the run uses, so it
shows up in ``memory_allocated``. ``BALLAST`` records it per device and the peak source
subtracts it, so a meter inside (or around) a budget reports the run, not the ballast.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import torch

from wan_nb.memory._tracker import Watcher

# device string ("cuda:0") -> bytes of ballast that wan_nb.memory_budget holds there.
BALLAST: dict[str, int] = {}


def normalize(device: Any) -> torch.device:
    """``"cuda"`` -> ``cuda:<current index>`` so that statistics and keys agree."""
    dev = torch.device(device)
    if dev.type in ("cpu", "meta") or dev.index is not None:
        return dev
    module = getattr(torch, dev.type, None)
    current = getattr(module, "current_device", None)
    if callable(current):
        try:
            return torch.device(dev.type, current())
        except (RuntimeError, AssertionError):  # backend without a device: caller decides
            return torch.device(dev.type, 0)
    return torch.device(dev.type, 0)


def default_device() -> torch.device:
    """The current accelerator if torch has one, else the CPU."""
    accel = getattr(torch, "accelerator", None)
    if accel is not None and accel.is_available():
        return normalize(accel.current_accelerator())
    if torch.cuda.is_available():
        return normalize("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps", 0)
    return torch.device("cpu")


def _fn(dev: torch.device, *names: str) -> Callable[..., Any] | None:
    module = getattr(torch, dev.type, None)
    for name in names:
        fn = getattr(module, name, None)
        if callable(fn):
            return fn
    return None


def _accel_fn(name: str) -> Callable[..., Any] | None:
    accel = getattr(torch, "accelerator", None)
    fn = getattr(accel, name, None)
    return fn if callable(fn) else None


def _call(dev: torch.device, names: tuple[str, ...], what: str) -> Any:
    fn = _fn(dev, *names)
    if fn is not None:
        # torch.mps functions take no device argument (there is one MPS device).
        return fn() if dev.type == "mps" else fn(dev)
    fn = _accel_fn(names[0])
    if fn is not None:
        return fn(dev.index or 0)
    raise RuntimeError(
        f"torch {torch.__version__} offers no `{what}` for {dev.type!r}: wan_nb cannot measure "
        f"memory there. Upgrade torch (torch.accelerator has it in recent releases)."
    )


def memory_allocated(dev: torch.device) -> int:
    return int(_call(dev, ("memory_allocated", "current_allocated_memory"), "memory_allocated"))


def max_memory_allocated(dev: torch.device) -> int:
    return int(_call(dev, ("max_memory_allocated",), "max_memory_allocated"))


def reset_peak(dev: torch.device) -> None:
    _call(dev, ("reset_peak_memory_stats",), "reset_peak_memory_stats")


def memory_reserved(dev: torch.device) -> int:
    # MPS has no pool statistic; the driver's figure is the closest (it includes the pool).
    return int(_call(dev, ("memory_reserved", "driver_allocated_memory"), "memory_reserved"))


def mem_get_info(dev: torch.device) -> tuple[int, int]:
    """(free, total) bytes on the device, as the driver reports them."""
    fn = _fn(dev, "mem_get_info")
    if fn is not None:
        free, total = fn(dev)
        return int(free), int(total)
    if dev.type == "mps":
        total = int(torch.mps.recommended_max_memory())
        return max(0, total - int(torch.mps.driver_allocated_memory())), total
    fn = _accel_fn("get_memory_info")
    if fn is not None:
        free, total = fn(dev.index or 0)
        return int(free), int(total)
    raise RuntimeError(f"torch {torch.__version__} cannot report free memory on {dev.type!r}.")


def total_memory(dev: torch.device) -> int:
    props = _fn(dev, "get_device_properties")
    if props is not None and dev.type != "mps":
        return int(props(dev).total_memory)
    return mem_get_info(dev)[1]


def empty_cache(dev: torch.device) -> None:
    gc.collect()
    fn = _fn(dev, "empty_cache") or _accel_fn("empty_cache")
    if fn is not None:
        fn()


def synchronize(dev: torch.device) -> None:
    fn = _fn(dev, "synchronize")
    if fn is not None:
        fn() if dev.type == "mps" else fn(dev)


def get_fraction(dev: torch.device) -> float:
    fn = _fn(dev, "get_per_process_memory_fraction")
    # Older torch has no getter; 1.0 is the allocator's default.
    return float(fn(dev)) if fn is not None and dev.type != "mps" else 1.0


def set_fraction(dev: torch.device, fraction: float) -> bool:
    """Cap the caching allocator; False where the backend has no such cap."""
    fn = _fn(dev, "set_per_process_memory_fraction")
    if fn is None:
        return False
    fraction = min(1.0, max(0.0, fraction))
    fn(fraction) if dev.type == "mps" else fn(fraction, dev)
    return True


class AcceleratorPeaks:
    """The accelerator's counterpart of the CPU tracker's peak bookkeeping.

    ``max_memory_allocated`` is one high-water mark per device, so nested meters and stages
    share it: a checkpoint reads it (less the ballast), folds it into every active watcher,
    and resets it.
    """

    _instances: dict[str, AcceleratorPeaks] = {}

    def __init__(self, dev: torch.device) -> None:
        self.dev = dev
        self.watchers: list[Watcher] = []

    @classmethod
    def for_device(cls, dev: torch.device) -> AcceleratorPeaks:
        key = str(dev)
        if key not in cls._instances:
            cls._instances[key] = cls(dev)
        return cls._instances[key]

    def level(self) -> int:
        return memory_allocated(self.dev) - BALLAST.get(str(self.dev), 0)

    def high(self) -> int:
        return max_memory_allocated(self.dev) - BALLAST.get(str(self.dev), 0)

    def checkpoint(self) -> int:
        high = self.high()
        for w in self.watchers:
            if high > w.peak:
                w.peak = high
        reset_peak(self.dev)
        return high

    def add(self, watcher: Watcher) -> None:
        self.checkpoint()
        watcher.peak = self.level()
        self.watchers.append(watcher)

    def remove(self, watcher: Watcher) -> None:
        self.checkpoint()
        watcher.active = False
        if watcher in self.watchers:
            self.watchers.remove(watcher)


def checkpoint_device(dev: torch.device) -> None:
    """Fold peaks before the ballast changes, so no reading mixes two ballast sizes."""
    peaks = AcceleratorPeaks._instances.get(str(dev))
    if peaks is not None and peaks.watchers:
        peaks.checkpoint()


# -- what the planner and the recovery engine ask of a device (one place for the dispatch) --
def accelerator_count(device: str) -> int:
    """How many devices of ``device``'s kind this machine has (0 for the CPU)."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return 0
    if dev.type == "mps":
        return 1 if torch.backends.mps.is_available() else 0
    available = _fn(dev, "is_available")
    if available is None or not available():
        return 0  # a torch built without this backend, or no such device here
    count = _fn(dev, "device_count")
    return int(count()) if count is not None else 0


def has_any_accelerator() -> bool:
    accel = getattr(torch, "accelerator", None)
    if accel is not None:
        return bool(accel.is_available())
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def device_total_bytes(device: Any) -> int:
    """Total memory of ``device``: the card's size, or the host's RAM for the CPU."""
    dev = normalize(device)
    if dev.type == "cpu":
        import psutil

        return int(psutil.virtual_memory().total)
    return total_memory(dev)


def device_free_bytes(device: Any) -> int:
    """Free memory of ``device``: ``mem_get_info`` on accelerators, psutil's ``available`` on the CPU."""
    dev = normalize(device)
    if dev.type == "cpu":
        import psutil

        return int(psutil.virtual_memory().available)
    available = _fn(dev, "is_available")
    if available is not None and not available():
        raise RuntimeError(f"no {dev.type} device is available to this torch build")
    return mem_get_info(dev)[0]


def free_memory(device: Any = None) -> None:
    """``gc.collect()`` then the backend's ``empty_cache()``, as accelerate's ``release_memory`` does."""
    dev = normalize(device or "cpu")
    available = getattr(getattr(torch, dev.type, None), "is_available", None)
    if dev.type == "mps":
        available = torch.backends.mps.is_available
    if dev.type not in ("cpu", "meta") and callable(available) and available():
        empty_cache(dev)  # collects first
    else:
        gc.collect()
