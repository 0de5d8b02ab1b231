"""Checks at entry: ``recover`` and ``retry_on_failure`` reject bad arguments before running any user code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wan_nb.settings import GenerationSettings
from wan_nb.strategies import get_strategy
from wan_nb.vocabulary import check_device


def check_arguments(run: Any, args: dict[str, Any]) -> Any:
    """Validate ``recover``'s arguments; returns the diagnosis as a Diagnosis (or None)."""
    from wan_nb.diagnosis import Diagnosis

    if not callable(run):
        raise TypeError(f"`run` must be a zero-argument callable (a function or a cell), got {type(run).__name__}.")
    strategies, force = args["strategies"], args["force"]
    if force and not strategies:
        raise ValueError("`force=True` tries the `strategies` you list, in order: pass `strategies=[...]`.")
    if strategies is not None:
        if isinstance(strategies, str) or not all(isinstance(s, str) for s in strategies):
            raise TypeError(f"`strategies` must be a list of names such as ['vae_tiling', 'a+b'], got {strategies!r}.")
        for name in strategies:
            get_strategy(name)  # raises ValueError naming the unknown or conflicting one
    if args["budget"] is not None:
        from wan_nb.memory.budget import MemoryBudget

        MemoryBudget(args["budget"])  # raises ValueError naming `budget`
    if args["device"] is not None:
        check_device(args["device"])
    max_attempts = args["max_attempts"]
    if max_attempts is not None and (isinstance(max_attempts, bool) or not isinstance(max_attempts, int)
                                     or max_attempts < 0):
        raise ValueError(f"`max_attempts` must be a whole number (0 plans without trying), got {max_attempts!r}.")
    if args["settings"] is not None and not isinstance(args["settings"], GenerationSettings):
        raise TypeError(f"`settings` must be a wan_nb.GenerationSettings, got {type(args['settings']).__name__}.")
    for name in ("on_start", "on_attempt"):
        if args[name] is not None and not callable(args[name]):
            raise TypeError(f"`{name}` must be callable, got {type(args[name]).__name__}.")
    error, diagnosis = args["error"], args["diagnosis"]
    if error is not None and not isinstance(error, (BaseException, str, bytes)):
        raise TypeError(f"`error` must be an exception or a traceback's text, got {type(error).__name__}.")
    if not isinstance(args.get("replay", True), bool):
        raise TypeError(f"`replay` must be True or False, got {args['replay']!r}.")
    from wan_nb.recovery.replay import KeptRun

    if args.get("kept") is not None and not isinstance(args["kept"], KeptRun):
        raise TypeError("`kept` must be what wan_nb.recovery.replay.keep_from_error returned, or None; "
                        f"got {type(args['kept']).__name__}.")
    models_dir = args["models_dir"]
    if models_dir is not None and not Path(models_dir).expanduser().is_dir():
        raise ValueError(f"`models_dir` must be a folder of models, and {str(models_dir)!r} is not a folder.")
    if isinstance(diagnosis, dict):
        return Diagnosis.from_dict(diagnosis)
    if diagnosis is not None and not isinstance(diagnosis, Diagnosis):
        raise TypeError(f"`diagnosis` must be a wan_nb.Diagnosis or its to_dict(), got {type(diagnosis).__name__}.")
    return diagnosis
