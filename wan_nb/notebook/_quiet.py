"""The libraries' loading bars, off while ``%wan_recover`` runs its attempts and back on after.

A strategy that loads a fresh copy of the pipeline (half precision, layerwise casting,
quantization) prints diffusers' "Loading pipeline components" and transformers' "Loading
weights" bars on every attempt: under the live table they are noise, eight of them with
``--explore``. Each library keeps its own switch; each is put back as it was found, so a
user who turned the bars off keeps them off.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


def _switches() -> list[tuple[object, object, object]]:
    """(is enabled, enable, disable) for each library already imported (none is imported here)."""
    found = []
    for name in ("diffusers.utils.logging", "transformers.utils.logging"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "is_progress_bar_enabled"):
            found.append((module.is_progress_bar_enabled, module.enable_progress_bar, module.disable_progress_bar))
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None and hasattr(hub, "are_progress_bars_disabled"):
        found.append((lambda: not hub.are_progress_bars_disabled(), hub.enable_progress_bars,
                      hub.disable_progress_bars))
    return found


@contextlib.contextmanager
def library_progress_bars_off() -> Iterator[None]:
    """Turn diffusers', transformers' and huggingface_hub's progress bars off; restore each after."""
    with contextlib.suppress(ImportError):
        # Imported here, not at `%load_ext`: an attempt imports them anyway, and the switches
        # must be set before it does.
        import diffusers.utils.logging  # noqa: F401
        import transformers.utils.logging  # noqa: F401
    switches = _switches()
    before = [bool(enabled()) for enabled, _, _ in switches]
    for _, _, disable in switches:
        disable()
    try:
        yield
    finally:
        # transformers' switch also turns huggingface_hub's off: restore in reverse order so
        # each library ends as it started.
        for (_, enable, disable), was_on in reversed(list(zip(switches, before))):
            enable() if was_on else disable()
