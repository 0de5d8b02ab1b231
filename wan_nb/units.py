"""Byte sizes as users write them ("12GiB", "16 GB", 0.5) and as wan_nb prints them."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: str | int | float) -> int:
    """Turn ``"12GiB"``, ``"16 GB"``, ``"512MiB"`` or a number of bytes into an int.

    Decimal units (GB) are powers of 1000 and binary units (GiB) powers of 1024, as on
    the label of a card and in ``nvidia-smi`` respectively.
    """
    if isinstance(value, bool):
        raise ValueError(f"`{value!r}` is not a size: give bytes or a string such as '12GiB'.")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"A size cannot be negative, got {value!r}.")
        return int(value)
    match = _PATTERN.match(str(value))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise ValueError(
            f"`{value}` is not a size wan_nb understands: write a number with a unit such as "
            "'12GiB', '16GB' or '512MiB'."
        )
    return int(float(match.group(1)) * _UNITS[unit])


def format_bytes(n: float | int | None, *, binary: bool = True) -> str:
    """Format a byte count for people: ``format_bytes(3 * 2**30) == '3.00 GiB'``."""
    if n is None:
        return "—"
    step, names = (1024, ["B", "KiB", "MiB", "GiB", "TiB"]) if binary else (1000, ["B", "kB", "MB", "GB", "TB"])
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for name in names:
        if value < step or name == names[-1]:
            return f"{sign}{value:.0f} {name}" if name == "B" else f"{sign}{value:.2f} {name}"
        value /= step
    raise AssertionError("unreachable")
