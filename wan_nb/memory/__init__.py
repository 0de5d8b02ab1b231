"""Device memory: measure it (``measure``), cap it (``memory_budget``), predict it (``estimate_memory``).

``import wan_nb.memory`` does not import torch; each name is resolved on first use.
"""

from __future__ import annotations

from wan_nb._lazy import lazy_exports as _lazy_exports

_EXPORTS: dict[str, str] = {
    "measure": "wan_nb.memory.meter",
    "Measurement": "wan_nb.memory.meter",
    "Meter": "wan_nb.memory.meter",
    "memory_budget": "wan_nb.memory.budget",
    "MemoryBudget": "wan_nb.memory.budget",
    "estimate_memory": "wan_nb.memory.estimate",
    "MemoryEstimate": "wan_nb.memory.estimate",
    "reduce_frames": "wan_nb.memory.estimate",
    "reduce_resolution": "wan_nb.memory.estimate",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = _lazy_exports(globals(), _EXPORTS)
