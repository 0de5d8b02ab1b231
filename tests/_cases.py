"""The traceback corpus' file format, for the tests and benchmarks/diagnose.py that read it."""

from __future__ import annotations

from pathlib import Path


def read_case(path: Path) -> tuple[dict[str, str], str]:
    """A case file: "# key: value" header lines, then the error text exactly as given (or posted)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    header: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].startswith("# ") and ":" in lines[i]:
        key, value = lines[i][2:].split(":", 1)
        header[key.strip()] = value.strip()
        i += 1
    return header, "\n".join(lines[i:])
