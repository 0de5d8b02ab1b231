"""Words for the notebook: one short fact per failed attempt, the magic's flags for the API's keywords.

The core's messages are written for ``recover(...)`` callers (``allow_degraded=True``); in a
``%wan_recover`` cell the same advice has to name the flag (``--allow-degraded``). And a
failed attempt's error is a whole allocator message: the table says the short fact once —
the stage, how much more was needed, of what — and whether the strategy could have helped.
"""

from __future__ import annotations

import re
from typing import Any

from wan_nb.units import format_bytes

# The recover()/plan() keywords a user of the magic sets with a flag instead.
_FLAGS = (
    (re.compile(r"`?allow_degraded=True`?"), "`--allow-degraded`"),
    (re.compile(r"`?allow_remote_code=True`?"), "`--allow-remote-code`"),
    (re.compile(r"`?models_dir=`?"), "`--models-dir`"),
    (re.compile(r"`?explore=True`?"), "`--explore`"),
    (re.compile(r"`?force=True`?"), "`--force`"),
    (re.compile(r"`?apply=True`?"), "`--apply`"),
)
_OOM = ("out_of_memory", "host_out_of_memory")
_STAGE_WORDS = {
    "load": "loading", "to_device": "moving to the device", "text_encode": "text encoding",
    "preprocess": "preprocessing", "vae_encode": "VAE encode", "denoise": "denoising",
    "vae_decode": "VAE decode", "postprocess": "postprocessing",
}


def as_flags(text: str) -> str:
    """``allow_degraded=True`` -> ``--allow-degraded`` (and the other keywords the magic has flags for)."""
    for pattern, flag in _FLAGS:
        text = pattern.sub(flag, text)
    return text


def first_sentence(text: str, width: int = 160) -> str:
    """The first sentence of ``text`` on one line; cut at a word, with "…", only when longer than ``width``."""
    text = " ".join(str(text or "").split())
    match = re.search(r"(?<=[.!?])\s", text)
    sentence = text[: match.start()] if match else text
    if len(sentence) <= width:
        return sentence
    return sentence[: width].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _stage(diagnosis: dict[str, Any]) -> str:
    stage = diagnosis.get("stage") or "unknown"
    words = _STAGE_WORDS.get(stage)
    if words is None:
        return ""
    component = diagnosis.get("component")
    return f" at {words}" + (f" ({component})" if component and component not in words.lower() else "")


def failure_fact(attempt: Any) -> str:
    """What went wrong in one failed attempt, said once: ``out of memory at VAE decode: 1.55 MiB more needed, …``."""
    diagnosis = attempt.diagnosis or {}
    category = diagnosis.get("category")
    evidence = diagnosis.get("evidence") or {}
    if category in _OOM:
        fact = ("out of host memory" if category == "host_out_of_memory" else "out of memory") + _stage(diagnosis)
        details = []
        asked = evidence.get("tried_to_allocate")
        if isinstance(asked, (int, float)):
            details.append(f"{format_bytes(int(asked))} more needed")
        budget, in_use = evidence.get("budget"), evidence.get("in_use")
        capacity, free = evidence.get("total_capacity"), evidence.get("free")
        if isinstance(budget, (int, float)):
            used = f"{format_bytes(int(in_use))} of " if isinstance(in_use, (int, float)) else ""
            details.append(f"{used}a {format_bytes(int(budget))} budget in use")
        elif isinstance(capacity, (int, float)):
            spare = f", {format_bytes(int(free))} free" if isinstance(free, (int, float)) else ""
            details.append(f"of {format_bytes(int(capacity))}{spare}")
        return fact + (": " + ", ".join(details) if details else "")
    error = attempt.error or ""
    return first_sentence(error) or (category or "failed")


def could_not_help(candidate: Any) -> str:
    """Why the plan expected this strategy not to help ("" when it expected it to): forced attempts say so."""
    if candidate is None:
        return ""
    if getattr(candidate, "skip_reason", None):
        return first_sentence(candidate.skip_reason, 120)
    if getattr(candidate, "fit", None) == "no":
        estimate = getattr(candidate, "estimated_peak_bytes", None)
        room = getattr(candidate, "available_bytes", None)
        if estimate is not None and room is not None:
            return f"predicted not to fit ({format_bytes(estimate)} of {format_bytes(room)})"
        return "predicted not to fit"
    return ""


def attempt_reason(attempt: Any, candidate: Any = None) -> str:
    """One line for an attempt's row: the failure's short fact (and why it could not have helped), or why it was tried.

    An attempt that reused the failed run's work says so at the end (and what that saved).
    """
    replay = replay_fact(attempt)
    if attempt.status == "success" or not (attempt.error or attempt.diagnosis):
        line = first_sentence((attempt.reason or "").split(";")[0])
    else:
        why_not = could_not_help(candidate)
        line = failure_fact(attempt) + (f" — expected: {why_not}" if why_not else "")
    return f"{line}; {replay}" if replay and line else (replay or line)


def replay_fact(attempt: Any) -> str:
    """``replayed: skipped text_encode + denoise (saved 41.2 s)``, or why the attempt ran in full."""
    replayed = getattr(attempt, "replayed", ())
    if replayed:
        saved = getattr(attempt, "saved_seconds", None)
        return f"replayed: skipped {' + '.join(replayed)}" + (f" (saved {saved:.1f} s)" if saved is not None else "")
    note = getattr(attempt, "replay_note", None)
    return f"ran in full: {note}" if note else ""


def peak_label(attempt_or_row: Any, text: str) -> str:
    """A failed attempt's measured peak is the peak when it failed, below what it would have needed."""
    status = getattr(attempt_or_row, "status", "")
    return f"{text} at failure" if status == "failed" and text not in ("", "—") else text


def candidate_for(report: Any, strategy: str) -> Any:
    plan = getattr(report, "plan", None)
    for candidate in getattr(plan, "candidates", ()) or ():
        if candidate.strategy == strategy:
            return candidate
    return None
