"""Diagnosis: an exception or a pasted traceback -> :class:`Diagnosis` (category, stage, evidence, what to try).

- :mod:`~wan_nb.diagnosis.tracetext`: tracebacks (live or pasted) into frames and messages;
- :mod:`~wan_nb.diagnosis.patterns`: the rules: category, stage, allocator numbers, component;
- :mod:`~wan_nb.diagnosis.core`: :class:`Diagnosis` and :func:`diagnose`.

The package is named ``diagnosis`` so that ``wan_nb.diagnose`` stays the function.
"""

from __future__ import annotations

from wan_nb.diagnosis.core import Diagnosis, diagnose, diagnose_file, diagnose_text

__all__ = ["Diagnosis", "diagnose", "diagnose_file", "diagnose_text"]
