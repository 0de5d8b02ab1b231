"""The local attempt history: what was tried on this machine, and how it went.

Each recovery attempt is one JSON line in ``$WAN_NB_HISTORY`` (default
``~/.cache/wan_nb/history.jsonl``): the strategy, the failure it answered (category,
stage), the pipeline class, the estimated and measured peak, the memory that was
available, and whether it worked. Nothing leaves the machine.

The history turns fixed guesses ("offload works 80 % of the time") into probabilities
derived from two things wan_nb knows:

``p = p_history × p_fit``

* ``p_history`` — the Laplace-smoothed success rate of this strategy for this failure
  category on this machine: ``(successes + 1) / (attempts + 2)``. With no record it is
  1/2: "no evidence either way". When the strategy was never tried for this category,
  its record over all categories is used instead (same formula). Attempts that failed
  with ``out_of_memory`` are left out whenever ``p_fit`` is computed, because the
  memory margin already accounts for them (counting them twice would punish a strategy
  for having been tried on a card that was too small).
* ``p_fit`` — the chance that the real peak stays under the memory available, given
  the estimate. The estimator's error is modelled as log-normal:
  ``ln(measured / estimated) ~ N(mu, sigma²)``, so
  ``p_fit = Φ((ln(available / estimated) − mu) / sigma)``. The prior is ``mu = 0``,
  ``sigma = 0.15`` (the estimate is unbiased and within ±15 % about two times in
  three); records with both an estimate and a measurement update it as if the prior
  were worth ``PRIOR_WEIGHT`` observations, so a machine whose runs always peak 10 %
  above the estimate learns that. Without an estimate or without a known amount of
  memory, ``p_fit`` is 1 (the strategy is not a memory bet).

Plans are reordered by ``p`` (``rank_strategies``): a strategy that failed here twice
drops behind one that has not been tried.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from wan_nb._records import json_native

ENV_VAR = "WAN_NB_HISTORY"
PRIOR_MU = 0.0
PRIOR_SIGMA = 0.15
PRIOR_WEIGHT = 4.0
# Categories whose failures are the memory margin's business, not the strategy's.
_MEMORY_CATEGORIES = ("out_of_memory", "host_out_of_memory")


def history_path() -> Path:
    """Where the history lives: ``$WAN_NB_HISTORY`` or ``~/.cache/wan_nb/history.jsonl``."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "wan_nb" / "history.jsonl"


@dataclass(frozen=True)
class HistoryRecord:
    """One recorded attempt at recovering from a failure."""

    strategy: str
    category: str
    success: bool
    stage: str = "unknown"
    model_class: str | None = None
    estimated_peak: int | None = None  # bytes
    measured_peak: int | None = None  # bytes
    available: int | None = None  # bytes the device had for the run
    failure: str | None = None  # the category of the attempt's own failure, if it failed
    device: str | None = None
    time: float = 0.0  # seconds since the epoch

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def record_attempt(attempt: HistoryRecord, path: str | os.PathLike[str] | None = None) -> Path | None:
    """Append one attempt to the history; returns the file, or None when it cannot be written.

    A history that cannot be written (read-only home, full disk) must not break a
    recovery, so the problem is a warning, not an error.
    """
    target = Path(path) if path is not None else history_path()
    if not attempt.time:
        attempt = HistoryRecord.from_dict({**attempt.to_dict(), "time": time.time()})
    line = json.dumps(attempt.to_dict(), sort_keys=True) + "\n"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # One write of one line in append mode: concurrent notebooks interleave whole lines.
        with target.open("a", encoding="utf-8") as fh:
            fh.write(line)
    except OSError as exc:
        warnings.warn(
            f"wan_nb could not record the attempt in its history file {target} ({exc}); "
            f"set {ENV_VAR} to a writable file to keep learning from attempts.",
            stacklevel=2,
        )
        return None
    return target


def load_history(path: str | os.PathLike[str] | None = None) -> list[HistoryRecord]:
    """Every readable attempt in the history; damaged lines are skipped, not fatal."""
    source = Path(path) if path is not None else history_path()
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        warnings.warn(f"wan_nb could not read its history file {source} ({exc}); ignoring it.", stacklevel=2)
        return []
    attempts = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
            if isinstance(data, dict) and isinstance(data.get("strategy"), str):
                attempts.append(HistoryRecord.from_dict(data))
        except (ValueError, TypeError):
            continue  # a half-written line from an interrupted kernel
    return attempts


def laplace_rate(successes: int, attempts: int) -> float:
    """``(successes + 1) / (attempts + 2)``: 1/2 with no evidence, never exactly 0 or 1."""
    return (successes + 1) / (attempts + 2)


@dataclass(frozen=True)
class Probability:
    """A success probability and how it was derived, in words and numbers."""

    value: float
    history: float
    fit: float
    attempts: int
    successes: int
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Probability:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def estimate_error_model(history: Iterable[HistoryRecord]) -> tuple[float, float, int]:
    """``(mu, sigma, n)`` of ``ln(measured / estimated)``, shrunk toward the prior."""
    ratios = [
        math.log(a.measured_peak / a.estimated_peak)
        for a in history
        if a.estimated_peak and a.measured_peak and a.estimated_peak > 0 and a.measured_peak > 0
    ]
    n = len(ratios)
    mu = (PRIOR_WEIGHT * PRIOR_MU + sum(ratios)) / (PRIOR_WEIGHT + n)
    spread = sum((r - mu) ** 2 for r in ratios)
    sigma = math.sqrt((PRIOR_WEIGHT * PRIOR_SIGMA**2 + spread) / (PRIOR_WEIGHT + n))
    return mu, sigma, n


def fit_probability(
    estimated_peak: float | None, available: float | None, history: Sequence[HistoryRecord] | None = None
) -> float:
    """The chance the real peak stays under ``available``; 1.0 when either is unknown."""
    if estimated_peak is None or available is None:
        return 1.0
    if available <= 0:
        return 0.0  # nothing fits in nothing
    if estimated_peak <= 0:
        return 1.0
    mu, sigma, _ = estimate_error_model(history or ())
    z = (math.log(available / estimated_peak) - mu) / sigma
    return 0.5 * math.erfc(-z / math.sqrt(2))


def success_probability(
    strategy: str,
    category: str,
    *,
    estimated_peak: float | None = None,
    available: float | None = None,
    history: Sequence[HistoryRecord] | None = None,
) -> Probability:
    """``p_history × p_fit`` for one strategy answering one failure category (module docs)."""
    records = load_history() if history is None else list(history)
    with_fit = estimated_peak is not None and available is not None
    mine = [a for a in records if a.strategy == strategy]
    if with_fit:
        mine = [a for a in mine if a.success or a.failure not in _MEMORY_CATEGORIES]
    same_category = [a for a in mine if a.category == category]
    pool, scope = (same_category, f"for {category}") if same_category else (mine, "for any failure")
    successes = sum(1 for a in pool if a.success)
    p_history = laplace_rate(successes, len(pool))
    p_fit = fit_probability(estimated_peak, available, records) if with_fit else 1.0
    if pool:
        basis = f"{successes} of {len(pool)} earlier attempts of {strategy} {scope} on this machine worked"
    else:
        basis = f"{strategy} was never tried on this machine (1/2 until it is)"
    if with_fit and available > 0:
        margin = (available - estimated_peak) / available
        basis += f"; the estimated peak leaves a {margin:+.0%} margin on the memory available"
    return Probability(
        value=p_history * p_fit,
        history=p_history,
        fit=p_fit,
        attempts=len(pool),
        successes=successes,
        basis=basis,
    )


def rank_strategies(
    strategies: Sequence[str],
    category: str,
    *,
    estimates: dict[str, float | None] | None = None,
    available: float | None = None,
    history: Sequence[HistoryRecord] | None = None,
) -> list[tuple[str, Probability]]:
    """Strategies ordered by success probability, best first; ties keep the given order."""
    records = load_history() if history is None else list(history)
    scored = [
        (name, success_probability(name, category, estimated_peak=(estimates or {}).get(name),
                                   available=available, history=records))
        for name in strategies
    ]
    # sorted() is stable, so the caller's order (the plan's preference) breaks ties.
    return sorted(scored, key=lambda item: -item[1].value)
