"""Measure peak device memory of a block, per pipeline stage.

``with measure() as m: pipe(...)`` then ``m.peak_bytes``, ``m.baseline_bytes``,
``m.by_stage``, ``m.seconds``. What is measured, and how:

- CUDA / XPU / MPS: the framework's own statistics. ``peak_bytes`` is
  ``max_memory_allocated`` (tensor memory handed out by the caching allocator; the pool it
  keeps in reserve and the CUDA context are not included). The peak statistic is reset at
  the start of the block and at each stage boundary, so code that reads it around a
  ``measure`` block sees it restarted.
- CPU: the peak of live tensor storage in bytes, counted by wan_nb's tracker (see
  ``wan_nb.memory._tracker``): every CPU tensor alive when the block began (loaded weights
  included) is the baseline, and every storage created or freed inside it moves the level.

Cost on the CPU: a walk over the live Python objects when the block starts (about 0.1 s with a
pipeline loaded; unreachable garbage older than the youngest generations still counts, as it
does on CUDA: ``gc.collect()`` first to leave it out) and 15-30 us per aten op inside it —
1.05-1.35x on the tiny pipelines' calls (``benchmarks/estimate_vs_measured.py``), less on
real ones, whose ops take longer.

A ``Measurement`` is always a measurement: there is no code path that fills it from an
estimate, and ``Measurement.from_dict`` refuses data that says otherwise.

Stages are attributed with hooks on the pipeline's components: forward hooks on the text
encoder(s) and image encoder (``text_encode``: they encode conditioning) and on the
transformer(s) (``denoise``), and wrappers on the VAE's ``decode``/``encode``
(``vae_decode``/``vae_encode``). A stage lasts from its first hook until the next stage
begins, so the scheduler steps between transformer calls belong to ``denoise``; the work
after the VAE decode is ``postprocess``; anything before the first stage is ``unknown``.
``by_stage[s]`` is the highest level (baseline included) reached while ``s`` ran. Every hook
is removed on exit; the pipeline is left as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Measurement", "Meter", "measure"]

# component-name prefix -> stage. Image encoders (CLIP in Wan 2.1 I2V) encode conditioning,
# as text encoders do, and the same remedies (keep it off the device) apply to them.
_FORWARD_STAGES: tuple[tuple[str, str], ...] = (
    ("text_encoder", "text_encode"),
    ("image_encoder", "text_encode"),
    ("transformer", "denoise"),
    ("unet", "denoise"),
)
_VAE_METHODS: tuple[tuple[str, str], ...] = (("decode", "vae_decode"), ("encode", "vae_encode"))


@dataclass(frozen=True)
class Measurement:
    """Peak memory of one block, as measured (never estimated)."""

    peak_bytes: int
    baseline_bytes: int
    by_stage: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    device: str = "cpu"
    source: str = "measured"
    # Wall time spent in each stage (same boundaries as ``by_stage``): what replaying a stage saves.
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source != "measured":
            raise ValueError(
                f"A `Measurement` holds measured numbers only, got source={self.source!r}; "
                "use wan_nb.MemoryEstimate for predictions."
            )

    @property
    def added_bytes(self) -> int:
        """How far above its starting level the block went."""
        return self.peak_bytes - self.baseline_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak_bytes": self.peak_bytes,
            "baseline_bytes": self.baseline_bytes,
            "by_stage": dict(self.by_stage),
            "seconds": self.seconds,
            "device": self.device,
            "source": self.source,
            "stage_seconds": dict(self.stage_seconds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        return cls(
            peak_bytes=int(data["peak_bytes"]),
            baseline_bytes=int(data["baseline_bytes"]),
            by_stage={str(k): int(v) for k, v in (data.get("by_stage") or {}).items()},
            seconds=float(data.get("seconds", 0.0)),
            device=str(data.get("device", "cpu")),
            source=str(data.get("source", "measured")),
            stage_seconds={str(k): float(v) for k, v in (data.get("stage_seconds") or {}).items()},
        )

    def to_frame(self):
        import pandas as pd

        rows = [{"stage": s, "peak_bytes": b} for s, b in self.by_stage.items()]
        rows.append({"stage": "total", "peak_bytes": self.peak_bytes})
        return pd.DataFrame(rows)


class Meter:
    """The live object ``measure`` yields; its attributes are final once the block exits."""

    def __init__(self, device: Any = None, pipeline: Any = None) -> None:
        self._device_arg = device
        self._pipelines = [pipeline] if pipeline is not None else []
        self._source: Any = None
        self._total: Any = None
        self._stage_watch: Any = None
        self._stage: str | None = None
        self._stage_peaks: dict[str, int] = {}
        self._stage_seconds: dict[str, float] = {}
        self._stage_since = 0.0
        self._undo: list[Any] = []
        self._start = 0.0
        self._running = False
        self._result: Measurement | None = None
        self.device = ""

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Meter:
        import torch

        from wan_nb.memory import _accel
        from wan_nb.memory._tracker import TRACKER, Watcher

        dev = self._resolve_device()
        self.device = str(dev)
        if dev.type == "cpu":
            TRACKER.acquire()
            self._source = TRACKER
        elif dev.type == "meta":
            raise ValueError("`device='meta'` holds no memory to measure.")
        else:
            _accel.synchronize(dev)
            self._source = _accel.AcceleratorPeaks.for_device(dev)
        self._total = Watcher(0)
        self._source.add(self._total)
        self._baseline = self._total.peak
        self._running = True
        self._torch = torch
        try:
            for pipe in self._pipelines:
                self._install(pipe)
        except BaseException:
            self._teardown()
            raise
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> Measurement:
        """End the measurement (``__exit__`` does it) and return it."""
        if not self._running:
            if self._result is None:
                raise RuntimeError("This meter was never started: use it as `with measure() as m:`.")
            return self._result
        from wan_nb.memory import _accel

        try:
            if self.device != "cpu":
                # Kernels still queued belong to the block's time.
                _accel.synchronize(self._torch.device(self.device))
        finally:
            seconds = time.perf_counter() - self._start
            self._teardown()
        self._result = Measurement(
            peak_bytes=int(self._total.peak),
            baseline_bytes=int(self._baseline),
            by_stage=dict(self._stage_peaks),
            seconds=seconds,
            device=self.device,
            stage_seconds={k: round(v, 6) for k, v in self._stage_seconds.items()},
        )
        return self._result

    def _teardown(self) -> None:
        """Fold the last peaks, remove every hook, let go of the tracker: whatever failed."""
        try:
            self._switch(None)
            self._source.remove(self._total)
        finally:
            for undo in reversed(self._undo):
                undo()
            self._undo.clear()
            self._running = False
            if self.device == "cpu":
                from wan_nb.memory._tracker import TRACKER

                TRACKER.release()

    # -- readings (live while running, final after) ---------------------------------------
    @property
    def peak_bytes(self) -> int:
        if self._result is not None:
            return self._result.peak_bytes
        self._require_started()
        return max(self._total.peak, self._source.high())

    @property
    def baseline_bytes(self) -> int:
        self._require_started()
        return self._baseline

    @property
    def by_stage(self) -> dict[str, int]:
        if self._result is not None:
            return dict(self._result.by_stage)
        self._require_started()
        peaks = dict(self._stage_peaks)
        if self._stage is not None:
            peaks[self._stage] = max(peaks.get(self._stage, 0), self._stage_watch.peak, self._source.high())
        return peaks

    @property
    def seconds(self) -> float:
        if self._result is not None:
            return self._result.seconds
        self._require_started()
        return time.perf_counter() - self._start

    @property
    def added_bytes(self) -> int:
        return self.peak_bytes - self.baseline_bytes

    @property
    def result(self) -> Measurement:
        if self._result is None:
            raise RuntimeError("The measurement is final only after the `with measure()` block exits.")
        return self._result

    def to_dict(self) -> dict[str, Any]:
        return self.result.to_dict()

    def __repr__(self) -> str:
        from wan_nb.units import format_bytes

        if self._result is None and not self._running:
            return "<Meter (not started)>"
        state = "" if self._result is not None else " (running)"
        return (
            f"<Meter{state} device={self.device} peak={format_bytes(self.peak_bytes)} "
            f"baseline={format_bytes(self.baseline_bytes)}>"
        )

    # -- stages ----------------------------------------------------------------------------
    def watch(self, pipeline: Any) -> Meter:
        """Attribute peaks to the stages of ``pipeline`` (also accepted by ``measure``)."""
        if self._running:
            self._install(pipeline)
        else:
            self._pipelines.append(pipeline)
        return self

    def _switch(self, stage: str | None) -> None:
        """Close the current stage's stretch (folding its peak) and open ``stage``'s."""
        if stage == self._stage:
            return
        from wan_nb.memory._tracker import Watcher

        if self._stage_watch is not None:
            self._source.remove(self._stage_watch)
            old = self._stage
            self._stage_peaks[old] = max(self._stage_peaks.get(old, 0), self._stage_watch.peak)
            self._stage_seconds[old] = self._stage_seconds.get(old, 0.0) + time.perf_counter() - self._stage_since
            self._stage_watch = None
        self._stage = stage
        self._stage_since = time.perf_counter()
        if stage is not None:
            self._stage_watch = Watcher(0)
            self._source.add(self._stage_watch)

    def _install(self, pipeline: Any) -> None:
        components = getattr(pipeline, "components", None)
        if not isinstance(components, dict):
            raise TypeError(
                f"`pipeline` must be a diffusers pipeline (with `.components`), got {type(pipeline).__name__}."
            )
        if self._stage is None:
            self._switch("unknown")
        for name, module in components.items():
            if module is None:
                continue
            if name == "vae" or name.startswith("vae"):
                self._wrap_vae(module)
                continue
            stage = next((s for prefix, s in _FORWARD_STAGES if name.startswith(prefix)), None)
            if stage is not None and hasattr(module, "register_forward_pre_hook"):
                handle = module.register_forward_pre_hook(self._make_pre_hook(stage))
                self._undo.append(handle.remove)

    def _make_pre_hook(self, stage: str):
        def pre_hook(module, args):
            if self._stage != stage:
                self._switch(stage)

        return pre_hook

    def _wrap_vae(self, vae: Any) -> None:
        for method, stage in _VAE_METHODS:
            original = getattr(vae, method, None)
            if original is None:
                continue
            had_own = method in vae.__dict__
            previous = vae.__dict__.get(method)

            wrapper = self._make_vae_wrapper(original, stage)
            setattr(vae, method, wrapper)
            self._undo.append(self._make_restore(vae, method, had_own, previous))

    def _make_vae_wrapper(self, original: Any, stage: str):
        def wrapper(*args, **kwargs):
            outer = self._stage
            self._switch(stage)
            try:
                return original(*args, **kwargs)
            finally:
                # After a decode the pipeline post-processes the video; after an encode it
                # goes back to whatever it was doing.
                self._switch("postprocess" if stage == "vae_decode" else outer)

        wrapper.__wrapped__ = original
        return wrapper

    @staticmethod
    def _make_restore(obj: Any, name: str, had_own: bool, previous: Any):
        def restore() -> None:
            if had_own:
                setattr(obj, name, previous)
            else:
                obj.__dict__.pop(name, None)

        return restore

    # -- helpers ---------------------------------------------------------------------------
    def _resolve_device(self):
        from wan_nb.memory import _accel

        if self._device_arg is not None:
            return _accel.normalize(self._device_arg)
        for pipe in self._pipelines:
            dev = getattr(pipe, "_execution_device", None) or getattr(pipe, "device", None)
            if dev is not None:
                return _accel.normalize(dev)
        return _accel.default_device()

    def _require_started(self) -> None:
        if not self._running and self._result is None:
            raise RuntimeError("This meter was never started: use it as `with measure() as m:`.")


def measure(device: Any = None, pipeline: Any = None) -> Meter:
    """Measure the peak memory of a ``with`` block.

    Args:
        device: where to measure (``"cuda"``, ``"cuda:1"``, ``"cpu"``...). Default: the
            pipeline's execution device when one is given, else the current accelerator,
            else the CPU.
        pipeline: a diffusers pipeline whose stages to attribute (``m.by_stage``); more can
            be added inside the block with ``m.watch(pipe)``.

    On CPU the tracker is thread-local (torch's dispatch modes are): tensors created by other
    threads during the block are not counted.
    """
    from wan_nb.vocabulary import check_device

    if device is not None:
        check_device(device)
    if pipeline is not None and not hasattr(pipeline, "components"):
        raise TypeError(f"`pipeline` must be a diffusers pipeline (or None), got {type(pipeline).__name__}.")
    return Meter(device=device, pipeline=pipeline)

