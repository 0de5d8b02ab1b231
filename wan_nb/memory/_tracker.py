"""The CPU live-storage tracker shared by the meter and the budget.

On CPU there is no allocator statistic to read, so wan_nb counts what a GPU allocator would
count: the bytes of every live tensor storage. A ``TorchDispatchMode`` sees every aten op of
the thread (factory functions included), and after each op records each storage it has not
seen before; a weak reference on the storage's Python object subtracts it again when the
storage is freed. torch keeps one Python object per storage alive for as long as the storage
lives (PyObject preservation), so the callback fires exactly when the memory is released —
not when a view, or our own handle, goes away. Views share their base's storage, so they are
never counted twice.

What it cannot see, by construction:

- workspace that a single kernel allocates and frees inside itself (below the dispatcher);
- tensors created in other threads (dispatch modes are thread-local in torch; a free in
  another thread *is* seen, because the weak-reference callback runs wherever it happens);
- storages made without an aten op (``torch.UntypedStorage(n)``, ``torch.frombuffer``)
  after the tracker started; tensors that only C++ holds when it starts (the baseline walks
  the Python objects: tensors, parameters, buffers).

Peaks are kept the way CUDA keeps them: one running high-water mark since the last
*checkpoint*; a checkpoint folds it into every active watcher (a meter, a stage) and
restarts it from the current level. The per-op cost is therefore independent of how many
meters are nested.

Budgets are limits on the total: before an op's new storages are registered, the tracker
checks ``in use + new > limit`` and, if so, drops the op's outputs and raises a genuine
``torch.OutOfMemoryError`` from inside the op. Factory ops whose size is in their arguments
(``torch.empty``, ``zeros``, ``randn``...) are checked before they run, so an over-budget
request never touches host memory.
"""

from __future__ import annotations

import gc
import math
import threading
import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from wan_nb.units import format_bytes

_Tensor = torch.Tensor
_aten = torch.ops.aten

# factory op -> index of its size argument. Checked before they run (see module docstring).
_FACTORIES_SIZE_ARG: dict[Any, int] = {
    _aten.empty.memory_format: 0,
    _aten.zeros.default: 0,
    _aten.ones.default: 0,
    _aten.full.default: 0,
    _aten.randn.default: 0,
    _aten.rand.default: 0,
    _aten.randn.generator: 0,
    _aten.rand.generator: 0,
    _aten.new_empty.default: 1,
    _aten.new_zeros.default: 1,
    _aten.new_ones.default: 1,
    _aten.new_full.default: 1,
}


class _StorageRef(weakref.ref):
    """A weak reference to a storage's Python object that remembers what it was counted as."""

    __slots__ = ("key", "nbytes")


class Watcher:
    """Something that wants the peak over a stretch of time: a meter, or one stage of it."""

    __slots__ = ("peak", "active")

    def __init__(self, start: int) -> None:
        self.peak = start
        self.active = True


class _Mode(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch otherwise wraps __torch_dispatch__ in torch._disable_dynamo, which doubles the
        # per-op cost (and imports torch._dynamo on the first op). Nothing here is compiled;
        # code compiled with torch.compile is not measured op by op anyway.
        return False

    def __init__(self, tracker: CpuTracker) -> None:
        super().__init__()
        self._tracker = tracker

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tracker = self._tracker
        if tracker.limit is not None and func in _FACTORIES_SIZE_ARG:
            err = tracker._precheck(func, args, kwargs)
            if err is not None:
                # A held exception keeps this frame: let go of the inputs before raising.
                del args, kwargs
                raise err
        out = func(*args, **kwargs) if kwargs else func(*args)
        # The hot path: most ops return one tensor, most of them with a fresh storage.
        if type(out) is _Tensor:
            err = tracker._record_one(out) if out.is_cpu else None
        elif isinstance(out, _Tensor):
            err = tracker._record((out,))
        elif isinstance(out, (tuple, list)):
            err = tracker._record(out)
        else:
            return out
        if err is not None:
            # The traceback keeps this frame: drop the outputs (and the inputs) so a held
            # exception does not hold their memory.
            del out, args, kwargs
            raise err
        return out


class CpuTracker:
    """Live bytes of CPU tensor storage while any meter or budget uses it.

    Process-wide, one instance (``TRACKER``). ``acquire()``/``release()`` count users; the
    first acquire walks the live objects for the baseline and pushes the dispatch mode on the
    calling thread, the last release pops it and forgets every storage.
    """

    def __init__(self) -> None:
        self.current = 0
        self._high = 0
        self._live: dict[int, _StorageRef] = {}
        self._users = 0
        self._mode: _Mode | None = None
        self._thread: int | None = None
        self._limits: list[int] = []
        self.watchers: list[Watcher] = []
        self.limit: int | None = None
        # Every allocation a budget refused: its message. A library may turn the OOM into
        # another error and lose it (safetensors' loader: "could not determine the shape",
        # then OSError "Unable to load weights"); the budget still knows (MemoryBudget.__exit__).
        self.refusals: list[str] = []  # the last 16
        self.refused = 0  # how many ever: budgets compare it at entry and exit
        self._lock = threading.RLock()
        self._on_free = self._make_on_free()

    # -- users -------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._users > 0

    def acquire(self) -> None:
        if self._users and self._thread != threading.get_ident():
            raise RuntimeError(
                "wan_nb's CPU memory tracker is already running in another thread; torch's "
                "dispatch modes are thread-local, so measure (or budget) one thread at a time."
            )
        self._users += 1
        if self._users == 1:
            # Young unreachable cycles (a pipeline call's leftovers) would otherwise be freed
            # at a random point inside the block. A full collection costs ~0.3 s with a
            # pipeline loaded, so older garbage is left to the caller (`gc.collect()`), and
            # counted while it exists, as CUDA counts it.
            gc.collect(1)
            self._thread = threading.get_ident()
            self._scan_live()
            self._high = self.current
            self._mode = _Mode(self)
            self._mode.__enter__()

    def release(self) -> None:
        self._users -= 1
        if self._users == 0:
            mode, self._mode = self._mode, None
            if mode is not None:
                mode.__exit__(None, None, None)
            with self._lock:
                # Dropping the references drops their callbacks: nothing fires later.
                self._live.clear()
                self.current = 0
                self._high = 0
            self._thread = None

    # -- peaks ---------------------------------------------------------------------------
    def level(self) -> int:
        return self.current

    def high(self) -> int:
        return self._high

    def checkpoint(self) -> int:
        """Fold the high-water mark since the last checkpoint into the watchers; restart it."""
        high = self._high
        for w in self.watchers:
            if high > w.peak:
                w.peak = high
        self._high = self.current
        return high

    def add(self, watcher: Watcher) -> None:
        self.checkpoint()
        watcher.peak = self.current
        self.watchers.append(watcher)

    def remove(self, watcher: Watcher) -> None:
        self.checkpoint()
        watcher.active = False
        if watcher in self.watchers:
            self.watchers.remove(watcher)

    # -- budgets -------------------------------------------------------------------------
    def push_limit(self, limit: int) -> None:
        self._limits.append(limit)
        self.limit = min(self._limits)

    def pop_limit(self, limit: int) -> None:
        self._limits.remove(limit)
        self.limit = min(self._limits) if self._limits else None

    def _oom(self, request: int) -> torch.OutOfMemoryError:
        facts = (
            f"CPU out of memory under wan_nb.memory_budget: Tried to allocate {format_bytes(request)}; "
            f"budget {format_bytes(self.limit)} ({self.limit} bytes); in use {format_bytes(self.current)}."
        )
        self.refusals.append(facts)
        del self.refusals[:-16]
        self.refused += 1
        return torch.OutOfMemoryError(
            f"{facts} Lower the memory the run needs (see wan_nb.estimate_memory) or raise the budget."
        )

    def _precheck(self, func, args, kwargs) -> torch.OutOfMemoryError | None:
        index = _FACTORIES_SIZE_ARG[func]
        kwargs = kwargs or {}
        device = kwargs.get("device")
        if device is not None and torch.device(device).type != "cpu":
            return None
        if index == 1 and not args[0].is_cpu and device is None:
            return None
        dtype = kwargs.get("dtype") or (args[0].dtype if index == 1 else torch.get_default_dtype())
        size = args[index]
        request = math.prod(int(s) for s in size) * dtype.itemsize
        if self.current + request > self.limit:
            return self._oom(request)
        return None

    # -- recording -----------------------------------------------------------------------
    def _make_on_free(self):
        # A closure over the weak self would cost a lookup per free; the tracker lives for
        # the whole process anyway.
        live = self._live
        lock = self._lock

        def on_free(ref: _StorageRef) -> None:
            with lock:
                if live.get(ref.key) is ref:
                    del live[ref.key]
                    self.current -= ref.nbytes

        return on_free

    def _record_one(self, t: torch.Tensor) -> torch.OutOfMemoryError | None:
        """``_record`` for one CPU tensor, the common case, without the generality."""
        storage = t.untyped_storage()
        key = id(storage)
        ref = self._live.get(key)
        nbytes = storage.nbytes()
        if ref is not None:
            if ref.nbytes == nbytes:
                return None
            return self._record((t,))
        limit = self.limit
        if limit is not None and nbytes and self.current + nbytes > limit:
            return self._oom(nbytes)
        ref = _StorageRef(storage, self._on_free)
        ref.key = key
        ref.nbytes = nbytes
        with self._lock:
            self._live[key] = ref
            self.current += nbytes
            if self.current > self._high:
                self._high = self.current
        return None

    def _record(self, outputs) -> torch.OutOfMemoryError | None:
        """Register the new storages among ``outputs``; return (not raise) a budget error."""
        live = self._live
        fresh: dict[int, tuple[Any, int]] = {}
        grown = 0
        for t in outputs:
            if not isinstance(t, _Tensor) or not t.is_cpu:
                continue
            try:
                storage = t.untyped_storage()
            except (RuntimeError, NotImplementedError):  # sparse, or a wrapper subclass
                continue
            key = id(storage)
            ref = live.get(key)
            nbytes = storage.nbytes()
            if ref is None:
                fresh[key] = (storage, nbytes)
            elif ref.nbytes != nbytes:  # resize_ / out= grew or shrank the storage in place
                grown += nbytes - ref.nbytes
                ref.nbytes = nbytes
        if not fresh and not grown:
            return None
        request = grown + sum(n for _, n in fresh.values())
        if self.limit is not None and request > 0 and self.current + request > self.limit:
            # The fresh storages are not registered and die with the caller's outputs; an
            # in-place growth already happened, so it stays counted.
            err = self._oom(request)
            if grown:
                with self._lock:
                    self.current += grown
            return err
        refs = []
        for key, (storage, nbytes) in fresh.items():
            ref = _StorageRef(storage, self._on_free)
            ref.key = key
            ref.nbytes = nbytes
            refs.append(ref)
        with self._lock:
            for ref in refs:
                live[ref.key] = ref
            self.current += request
            if self.current > self._high:
                self._high = self.current
        return None

    def _scan_live(self) -> None:
        """Count every CPU storage alive now that a tensor (parameter, buffer...) points to.

        Bare storage objects are left out on purpose: after ``from_pretrained`` the
        safetensors files stay mapped as storages no tensor uses (file pages, not
        allocations), and counting them would double the weights.
        """
        # type(obj) in a set, not isinstance: one hash per object keeps the walk over a few
        # hundred thousand objects in tens of milliseconds (and isinstance reads
        # ``__class__``, which some lazy module attributes turn into deprecation warnings).
        kinds = _tensor_types()
        seen = [obj for obj in gc.get_objects() if type(obj) in kinds]
        seen = [obj for obj in seen if obj.is_cpu]
        total = 0
        live = self._live
        for obj in seen:
            try:
                storage = obj.untyped_storage()
                nbytes = storage.nbytes()
            except (RuntimeError, NotImplementedError):  # sparse, or a wrapper subclass
                continue
            key = id(storage)
            if key in live:
                continue
            ref = _StorageRef(storage, self._on_free)
            ref.key = key
            ref.nbytes = nbytes
            live[key] = ref
            total += nbytes
        with self._lock:
            self.current += total


def _tensor_types() -> set[type]:
    """torch.Tensor and every subclass defined so far (Parameter, Buffer, ...)."""
    found: set[type] = set()
    todo = [_Tensor]
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.add(cls)
            todo.extend(cls.__subclasses__())
    return found


TRACKER = CpuTracker()
