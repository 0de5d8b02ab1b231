"""Check the magics' option values; a bad one is a ``UsageError`` that says what to write instead."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError


def budget(text: str | None) -> str | float | None:
    """``--budget``: a size (``16GiB``, ``512MB``, bytes) or a fraction of the device, ``0 < x <= 1``."""
    if text is None:
        return None
    from wan_nb.units import parse_bytes

    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None and 0 < number <= 1:
        return number  # memory_budget reads a float in (0, 1] as a share of the device
    try:
        size = parse_bytes(value)
    except ValueError as exc:
        raise UsageError(f"`--budget {text}`: {exc} A share of the device, such as 0.5, works too.") from None
    if size <= 0:
        raise UsageError(f"`--budget {text}`: a budget must be more than 0 bytes.")
    return value


def strategies(text: str | None) -> list[str] | None:
    """``--strategies a,b+c``: comma-separated names, ``+`` joining strategies used together."""
    if text is None:
        return None
    from wan_nb.strategies import parse_strategy

    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError("`--strategies` needs at least one name, such as `--strategies vae_tiling,half_precision`.")
    for name in names:
        try:
            parse_strategy(name)
        except ValueError as exc:
            raise UsageError(f"`--strategies {text}`: {exc}") from None
    return names


def models_dir(text: str | None) -> str | None:
    """``--models-dir``: an existing folder of other models (donors, local alternatives)."""
    if text is None:
        return None
    path = Path(os.path.expanduser(text.strip().strip("'\"")))
    if not path.is_dir():
        raise UsageError(f"`--models-dir {text}`: no such folder. Give a folder that holds diffusers model folders.")
    return str(path)


def recover_kwargs(args: Any) -> dict[str, Any]:
    """The ``recover`` keyword arguments a parsed ``%wan_recover`` line asks for."""
    if args.force and not args.strategies:
        raise UsageError("`--force` tries the `--strategies` you list, in order: add `--strategies a,b`.")
    if args.dry_run and (args.apply or args.insert):
        raise UsageError("`--dry-run` runs nothing, so there is nothing to `--apply` or `--insert`; drop one.")
    kwargs: dict[str, Any] = {
        "budget": budget(args.budget),
        "explore": args.explore,
        "apply": args.apply,
        "allow_degraded": args.allow_degraded,
        "strategies": strategies(args.strategies),
        "force": args.force,
        "replay": not args.no_replay,
    }
    # Passed only when asked for: structural strategies (a donor component, the folder's own
    # code) read these, and `recover` takes them as `allow_remote_code` and `models_dir`.
    if args.allow_remote_code:
        kwargs["allow_remote_code"] = True
    folder = models_dir(args.models_dir)
    if folder is not None:
        kwargs["models_dir"] = folder
    return kwargs
