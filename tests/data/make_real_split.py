"""Choose the held-out part of the real corpus (tests/data/tracebacks/real/): 30 % of threads.

    python tests/data/make_real_split.py            # writes real/heldout.json

The unit is the thread (``# source: owner/repo issue #N``), not the file: two reports from
one thread share their wording, so they go to the same side. The threads are sorted, shuffled
with ``random.Random(SEED)`` and the first ``round(0.3 * threads)`` are held out. Held-out
reports are never read while writing or tuning rules; ``benchmarks/diagnose.py`` scores them
separately. Rerunning with the same files gives the same split; adding reports changes it,
so the split was made once, when the corpus was collected, and is committed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20261201
FRACTION = 0.3
REAL = Path(__file__).resolve().parent / "tracebacks" / "real"


def thread_of(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.startswith("# "):
            break
        if line.startswith("# source:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"{path.name} has no `# source:` header")


def main() -> None:
    files = sorted(REAL.glob("*.txt"))
    threads: dict[str, list[str]] = {}
    for path in files:
        threads.setdefault(thread_of(path), []).append(path.stem)
    order = sorted(threads)
    random.Random(SEED).shuffle(order)
    held = sorted(order[: round(FRACTION * len(order))])
    ids = sorted(stem for thread in held for stem in threads[thread])
    out = {
        "seed": SEED,
        "fraction_of_threads": FRACTION,
        "rule": "sorted thread keys, random.Random(seed).shuffle, first round(fraction * threads) held out",
        "script": "tests/data/make_real_split.py",
        "threads": len(order),
        "held_out_threads": held,
        "held_out": ids,
    }
    (REAL / "heldout.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"{len(ids)} of {len(files)} reports ({len(held)} of {len(order)} threads) held out")


if __name__ == "__main__":
    main()
