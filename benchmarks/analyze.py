"""Time and bytes read to analyse the synthetic Wan2.2 T2V A14B checkpoint (~70 GB apparent).

Bytes read come from /proc/self/io (``rchar``: every byte the process read through
read(2), from the page cache or the disk), so they are measured, not counted by us.
Target: under 0.2 s warm and under 2 MB read.

    python benchmarks/analyze.py [--preset wan2.2-t2v-a14b] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _rchar() -> int | None:
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _apparent_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _disk_usage(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def main() -> None:
    from wan_nb import analyze_model_components
    from wan_nb.fixtures import write_synthetic_checkpoint
    from wan_nb.units import format_bytes

    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="wan2.2-t2v-a14b")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_synthetic_checkpoint(Path(tmp) / args.preset, args.preset)
        runs = []
        for i in range(args.repeat + 1):
            before, start = _rchar(), time.perf_counter()
            report = analyze_model_components(folder)
            seconds, after = time.perf_counter() - start, _rchar()
            runs.append((seconds, None if before is None else after - before, i == 0))
        warm = [r for r in runs if not r[2]]
        print(f"preset {args.preset}: apparent size {format_bytes(_apparent_size(folder))}, "
              f"on disk {format_bytes(_disk_usage(folder))}, {report.total_parameters:,} parameters, "
              f"status {'ok' if report.ok else 'problems'}")
        print(f"{'run':<6}{'seconds':>10}{'bytes read':>14}")
        for i, (seconds, nread, cold) in enumerate(runs):
            print(f"{'cold' if cold else i:<6}{seconds:>10.4f}{(format_bytes(nread) if nread is not None else 'n/a'):>14}")
        median_s = statistics.median(r[0] for r in warm)
        reads = [r[1] for r in warm if r[1] is not None]
        median_read = statistics.median(reads) if reads else None
        print(f"warm median: {median_s:.4f} s (target < 0.2 s), "
              f"{format_bytes(median_read) if median_read is not None else 'n/a'} read (target < 2 MB)")


if __name__ == "__main__":
    main()
