"""Keep the held-out part of the real corpus (tests/data/tracebacks/real/) stable as it grows.

    python tests/data/make_real_split.py            # updates real/heldout.json

The unit is the thread (``# source: owner/repo issue #N``), not the file: two reports from
one thread share their wording, so they go to the same side.

How a thread gets its side, so that adding reports never moves an old one:

1. The first 120 threads (collected in one go) were split once by a seeded shuffle
   (``random.Random(20261201)`` over the sorted thread keys, the first 36 held out). That
   split is frozen: ``heldout.json`` records every one of those threads under
   ``frozen_held_out_threads`` / ``frozen_tuned_threads`` and they keep their side forever.
2. Every thread not in those lists is placed by ``side_of(thread)``: the first 8 hex digits
   of ``sha256(f"{SEED}:{thread}")`` read as a fraction of 2**32; below ``FRACTION`` is
   held out. It depends on the thread key only, never on the other files.
3. A new report from a thread already on one side joins that side (rule 1 or 2 gives it).

Held-out reports are never read while writing or tuning rules; ``benchmarks/diagnose.py``
scores them separately and lists their misses only with ``--show-heldout-misses``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

SEED = 20261201
FRACTION = 0.3
REAL = Path(__file__).resolve().parent / "tracebacks" / "real"
SPLIT_FILE = REAL / "heldout.json"


def thread_of(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.startswith("# "):
            break
        if line.startswith("# source:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"{path.name} has no `# source:` header")


def side_of(thread: str, seed: int = SEED, fraction: float = FRACTION) -> str:
    """``"held_out"`` or ``"tuned"`` for a thread outside the frozen first split."""
    digest = hashlib.sha256(f"{seed}:{thread}".encode()).hexdigest()
    return "held_out" if int(digest[:8], 16) / 2**32 < fraction else "tuned"


def assign(threads: list[str], frozen_held: set[str], frozen_tuned: set[str]) -> dict[str, str]:
    sides = {}
    for thread in threads:
        if thread in frozen_held:
            sides[thread] = "held_out"
        elif thread in frozen_tuned:
            sides[thread] = "tuned"
        else:
            sides[thread] = side_of(thread)
    return sides


def main() -> None:
    previous = json.loads(SPLIT_FILE.read_text(encoding="utf-8"))
    frozen_held = set(previous["frozen_held_out_threads"])
    frozen_tuned = set(previous["frozen_tuned_threads"])
    files = sorted(REAL.glob("*.txt"))
    threads: dict[str, list[str]] = {}
    for path in files:
        threads.setdefault(thread_of(path), []).append(path.stem)
    sides = assign(sorted(threads), frozen_held, frozen_tuned)
    held = sorted(t for t, side in sides.items() if side == "held_out")
    ids = sorted(stem for thread in held for stem in threads[thread])
    out = {
        "seed": SEED,
        "fraction_of_threads": FRACTION,
        "rule": ("threads in frozen_*_threads keep their side (the first split: sorted thread keys, "
                 "random.Random(seed).shuffle, first 36 of 120 held out); any other thread is held out "
                 "when int(sha256(f'{seed}:{thread}').hexdigest()[:8], 16) / 2**32 < fraction"),
        "script": "tests/data/make_real_split.py",
        "threads": len(threads),
        "frozen_held_out_threads": sorted(frozen_held),
        "frozen_tuned_threads": sorted(frozen_tuned),
        "held_out_threads": held,
        "held_out": ids,
    }
    SPLIT_FILE.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"{len(ids)} of {len(files)} reports ({len(held)} of {len(threads)} threads) held out")


if __name__ == "__main__":
    main()
