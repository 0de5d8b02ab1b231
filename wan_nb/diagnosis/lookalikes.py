"""Other causes the same text is printed for: what a diagnosis names besides its answer.

Users' threads show a few lines that more than one cause prints. A package's own bug and two
packages out of step raise the same AttributeError or KeyError inside the package; a regression
in a package's offloading prints the two-device error a misplaced tensor does; a module missing
inside an installed app or node pack is as often its own files left incomplete as a release of
it. The text cannot tell these apart (the thread's answer does), so for these shapes only a
diagnosis keeps its answer and names the other cause with what to check:
``Diagnosis.could_also_be``. An error the text shows to be raised in the user's own code, or
whose message names the versions, gets none.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from wan_nb.diagnosis.categories import _WRONG_TYPE_ATTR
from wan_nb.diagnosis.patterns import KNOWN_PACKAGES, in_users_script, raised_in_user_code
from wan_nb.diagnosis.tracetext import ParsedError


class Lookalike(NamedTuple):
    category: str
    step: str  # what to check for it, appended to the next steps


# What each category means when it is named as the other cause, for the one-line rendering.
MEANING = {"version_mismatch": "packages out of step", "unknown": "a bug in a package",
           "invalid_input": "an input the model does not take", "component_missing": "its own files incomplete"}

OUT_OF_STEP = Lookalike("version_mismatch", "The same error is raised when installed packages are out of step (a node "
                        "pack or app against ComfyUI, diffusers or transformers): if it began after an update, update "
                        "them together or go back to the versions that worked.")
PACKAGE_BUG = Lookalike("unknown", "The same error is raised by a bug in the package itself: if its versions already "
                        "match what it asks for, search its issue tracker for the last line.")
WRONG_INPUT = Lookalike("invalid_input", "The same error is raised for an input of a size the model does not take "
                        "(the image, width and height, frame count) or a model file of another variant: check those "
                        "first.")
INCOMPLETE_FILES = Lookalike("component_missing", "If that package is an app's or a node pack's own, its files may be "
                             "incomplete (an install step not run, an update cut short): reinstall it.")
MISPLACED_BY_PACKAGE = Lookalike("unknown", "The same error is raised when a package places tensors wrongly itself (a "
                                 "regression in its offloading or a node's callback): if the pipeline is on one "
                                 "device, search the package's issue tracker.")

# Errors a package raises inside its own code both for its own bug and for a caller or a callee
# of another release than it was written for (the tuned reports' threads show both for each).
_RAISED_IN_CODE = frozenset({"AttributeError", "KeyError", "TypeError", "AssertionError"})
# The wordings of an API missing that a release and a bug print alike.
_MISSING_API = frozenset({"AttributeError", "TypeError", "KeyError"})
# Sizes that disagree ("The size of tensor a (16) must match ...", "mat1 and mat2 shapes"): a
# wrong input, or a model file of another variant. (Not "has no attribute 'shape'": a wrong type.)
_SIZES = re.compile(r"\bsizes? of\b|\bshapes?\b(?! ['\"])|\bdimensions?\b|\bchannels\b|mat1 and mat2|must match", re.I)
# A message that names versions, or the release to install, says which: no second cause to name.
_NAMES_VERSIONS = re.compile(r"\bversions?\b|[<>=]=\s*v?\d|\d+\.\d+\+|\b\d+\.\d+(?:\.\d+)?\b[^\n]{0,20}\b(?:or later"
                             r"|or newer|onwards|and (?:above|later))|\brequires? [\w.-]+ ?v?\d+\.\d+"
                             r"|\b(?:upgrade|update|outdated|deprecated|removed in|no longer)\b|pip install|--upgrade"
                             r"|\binstead\b", re.I)
# Libraries whose own attributes go missing only across releases (torch, NumPy): no bug to suspect.
_CORE_LIBRARIES = frozenset({"torch", "numpy", "transformers", "diffusers", "huggingface_hub"})


def described(categories: tuple[str, ...]) -> str:
    """ "version_mismatch (packages out of step), ..." for ``Diagnosis.could_also_be``."""
    return ", ".join(f"{c} ({MEANING[c]})" if c in MEANING else c for c in categories)


def could_also_be(category: str, err: ParsedError, evidence: dict) -> tuple[Lookalike, ...]:
    """Other causes the same text is printed for, each with what to check; () for most errors."""
    if raised_in_user_code(err) or in_users_script(err):
        return ()  # the user's own code raised it: no package to suspect
    kind = err.type.rsplit(".", 1)[-1]
    message = err.message
    sizes = bool(_SIZES.search(message)) and "has no attribute" not in message
    if category == "unknown" and _WRONG_TYPE_ATTR.search(message):
        return ()  # a plain Python value lacking an attribute: a value of the wrong type was passed
    if category == "unknown" and (kind in _RAISED_IN_CODE or (kind and sizes)):
        return (OUT_OF_STEP, WRONG_INPUT) if sizes else (OUT_OF_STEP,)
    if category == "version_mismatch":
        package = str(evidence.get("package", ""))
        if evidence.get("missing_module"):
            # Only an app's or node pack's own modules can be left out by an incomplete install.
            known = package in KNOWN_PACKAGES or package.split(".")[0] in _CORE_LIBRARIES
            return () if known or not package else (INCOMPLETE_FILES,)
        module = str(evidence.get("module", "")).split(".")[0]
        if (kind in _MISSING_API and not evidence.get("required_diffusers") and module not in _CORE_LIBRARIES
                and not _NAMES_VERSIONS.search(message)):
            return (PACKAGE_BUG,)
    if category == "device_mismatch":
        return (MISPLACED_BY_PACKAGE,)
    return ()
