"""Other causes the same text is printed for: what a diagnosis names besides its answer.

Users' threads show a few lines that more than one cause prints. A package's own bug and two
packages out of step raise the same AttributeError or KeyError inside the package; a regression
in a package's offloading prints the two-device error a misplaced tensor does; a module missing
inside an installed package is as often one that moved between its releases. The text cannot
tell these apart (the thread's answer does), so for these shapes only a diagnosis keeps its
answer and names the other cause with what to check: ``Diagnosis.could_also_be``.
"""

from __future__ import annotations

import re

from wan_nb.diagnosis.tracetext import ParsedError

# Errors a package raises inside its own code both for its own bug and for a caller or a callee
# of another release than it was written for (the tuned reports' threads show both for each).
_RAISED_IN_CODE = frozenset({"AttributeError", "KeyError", "TypeError", "AssertionError"})
# The wordings of an API missing that a release and a bug print alike.
_MISSING_API = frozenset({"AttributeError", "TypeError", "KeyError"})
# Sizes that disagree: a wrong input, or a model file of another variant than the code.
_SIZES = re.compile(r"\bsizes?\b|\bshapes?\b|\bdimensions?\b|\bchannels\b|mat1 and mat2|must match", re.I)
# A message that names versions itself says which: no second cause to name.
_NAMES_VERSIONS = re.compile(r"\bversions?\b|[<>=]=\s*v?\d|\brequires? [\w.-]+ ?v?\d+\.\d+|\b(?:upgrade|update)\b"
                             r"|\bdeprecated\b|\bremoved in\b|\bno longer\b", re.I)
_DOTTED_MODULE = re.compile(r"No module named '[A-Za-z_]\w*\.[\w.]+'")

OUT_OF_STEP = ("version_mismatch", "The same error is raised when installed packages are out of step (a node pack "
               "or app against ComfyUI, diffusers or transformers): if it began after an update, update them "
               "together or go back to the versions that worked.")
PACKAGE_BUG = ("unknown", "The same error is raised by a bug in the package itself: if its versions already "
               "match what it asks for, search its issue tracker for the last line.")
WRONG_INPUT = ("invalid_input", "The same error is raised for an input of a size the model does not take (the "
               "image, width and height, frame count) or a model file of another variant: check those first.")
INCOMPLETE_FILES = ("component_missing", "If that package is an app's or a node pack's own, its files may be "
                    "incomplete (an install step not run, an update cut short): reinstall it.")
MISPLACED_BY_PACKAGE = ("unknown", "The same error is raised when a package places tensors wrongly itself (a "
                        "regression in its offloading or a node's callback): if the pipeline is on one device, "
                        "search the package's issue tracker.")

# What each category means when it is named as the other cause, for the one-line rendering.
MEANING = {"version_mismatch": "packages out of step", "unknown": "a bug in the package itself",
           "invalid_input": "an input the model does not take", "component_missing": "its own files incomplete"}


def described(categories: tuple[str, ...]) -> str:
    """ "version_mismatch (packages out of step), ..." for ``Diagnosis.could_also_be``."""
    return ", ".join(f"{c} ({MEANING[c]})" if c in MEANING else c for c in categories)


def could_also_be(category: str, err: ParsedError, evidence: dict) -> tuple[tuple[str, str], ...]:
    """Other categories the same text is printed for, each with what to check; () for most errors."""
    kind = err.type.rsplit(".", 1)[-1]
    message = err.message
    if category == "unknown" and (kind in _RAISED_IN_CODE or kind and _SIZES.search(message)):
        return (OUT_OF_STEP, WRONG_INPUT) if _SIZES.search(message) else (OUT_OF_STEP,)
    if category == "version_mismatch":
        if _DOTTED_MODULE.search(message):
            return (INCOMPLETE_FILES,)
        # (A release the rules know to have added the name says which: no bug to suspect.)
        known = any(key.startswith("required") for key in evidence)
        if kind in _MISSING_API and not known and not _NAMES_VERSIONS.search(message):
            return (PACKAGE_BUG,)
    if category == "device_mismatch":
        return (MISPLACED_BY_PACKAGE,)
    return ()
