"""How far a report's text alone tells its label: careful readers of the text against the threads.

    python benchmarks/text_readers.py

The real corpus's labels come from whole threads (the maintainers' answer, the fix that worked);
``wan_nb.diagnose`` reads only the pasted text. To know what the text alone can support, readers
who never saw the threads, the labels or wan_nb's rules labelled the pasted texts (header lines
stripped, random ids) with the collectors' category and stage definitions
(``benchmarks/data/text_readers/BRIEF.md``): each gave a best category, the other categories the
same text could plausibly be, and the stage the text shows. The readers were AI helpers, not
people, and the same kind of model as the collectors, so their agreement on stages in particular
is an upper estimate.

Printed per set: how often a reader's category equals the thread's label, how often the label is
among the reader's candidates, the reports the reader called certain, the stage where the text
shows it, and wan_nb on the same reports (its category; its category or a ``could_also_be``).
For the tuned sample, two readers read the same reports on their own: their agreement with each
other says how much of the text-to-label gap is one reader's slips and how much is the text.
Held-out results are aggregates only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from _cases import read_case  # noqa: E402 - the corpus format, shared with the tests

from wan_nb import diagnose  # noqa: E402

REAL = ROOT / "tests" / "data" / "tracebacks" / "real"
READERS = ROOT / "benchmarks" / "data" / "text_readers"


def _pct(hits: int, total: int) -> str:
    return f"{100 * hits / total:5.1f} % ({hits}/{total})" if total else "    – (0/0)"


def _answers(name: str) -> dict[str, dict]:
    return json.loads((READERS / name).read_text(encoding="utf-8"))["answers"]


def score(title: str, answers: dict[str, dict]) -> None:
    cat = among = sure = sure_ok = stage_n = stage_ok = ours = ours_or_also = 0
    for stem, answer in answers.items():
        header, text = read_case(REAL / f"{stem}.txt")
        label = header["category"]
        d = diagnose(text)
        cat += answer["category"] == label
        among += label in (answer["category"], *answer["alternatives"])
        if not answer["alternatives"]:
            sure += 1
            sure_ok += answer["category"] == label
        if header["stage"] != "unknown" and header.get("stage_in_text", "yes") != "no":
            stage_n += 1
            stage_ok += answer["stage"] == header["stage"]
        ours += d.category == label
        ours_or_also += label in (d.category, *d.could_also_be)
    n = len(answers)
    print(f"\n== {title}: {n} reports ==")
    print(f"reader's category = label          : {_pct(cat, n)}")
    print(f"label among the reader's candidates: {_pct(among, n)}")
    print(f"reader certain (no other candidate): {sure} reports, of them = label {_pct(sure_ok, sure)}")
    print(f"reader's stage = label (text shows): {_pct(stage_ok, stage_n)}")
    print(f"wan_nb's category = label          : {_pct(ours, n)}")
    print(f"wan_nb's category or could-also-be : {_pct(ours_or_also, n)}")


def agreement(first: dict[str, dict], second: dict[str, dict]) -> None:
    both = sorted(set(first) & set(second))
    same = [s for s in both if first[s]["category"] == second[s]["category"]]
    labels = {s: read_case(REAL / f"{s}.txt")[0]["category"] for s in same}
    right = sum(first[s]["category"] == labels[s] for s in same)
    print(f"\n== two readers of the same {len(both)} tuned reports ==")
    print(f"the readers' categories agree      : {_pct(len(same), len(both))}")
    print(f"where they agree, = the label      : {_pct(right, len(same))}")


def main() -> None:
    first, second = _answers("tuned_reader1.json"), _answers("tuned_reader2.json")
    score("tuned sample, first reader", first)
    score("tuned sample, second reader", second)
    agreement(first, second)
    score("held-out part, one reader", _answers("heldout_reader1.json"))


if __name__ == "__main__":
    main()
