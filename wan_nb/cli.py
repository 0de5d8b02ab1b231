"""The ``wan-nb`` command: analyze, estimate, diagnose, demo, tiny, synth.

Each subcommand is a thin layer over the core; heavy imports happen inside the
handlers so ``wan-nb --help`` is instant. Bad input ends with one line on stderr and
exit status 2, never a traceback from wan_nb's own code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


class CommandError(Exception):
    """Bad input for a subcommand: printed as one line, exit status 2."""


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


def _cmd_analyze(args: argparse.Namespace) -> int:
    from wan_nb.model.components import analyze_model_components

    report = analyze_model_components(args.path, deep=args.deep)
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.to_text())
    return 0 if report.ok else 1


def _settings_from(args: argparse.Namespace):
    from wan_nb.settings import GenerationSettings

    return GenerationSettings(
        height=args.height,
        width=args.width,
        num_frames=args.frames,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        dtype=args.dtype,
    )


def _cmd_estimate(args: argparse.Namespace) -> int:
    from wan_nb.memory.estimate import estimate_memory
    from wan_nb.model.components import analyze_model_components

    report = analyze_model_components(args.path)
    estimate = estimate_memory(report, _settings_from(args), args.strategy, device=args.device)
    if args.json:
        _print_json(estimate.to_dict())
    else:
        print(estimate.to_text())
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from wan_nb.diagnosis import diagnose_file

    if args.file != "-" and not Path(args.file).is_file():
        raise CommandError(f"{args.file} is not a file; give a saved traceback or log, or - to read stdin")
    diagnosis = diagnose_file(args.file)
    if args.json:
        _print_json(diagnosis.to_dict())
    else:
        print(diagnosis.to_text())
    return 0


def _cmd_tiny(args: argparse.Namespace) -> int:
    from wan_nb.fixtures import build_tiny_pipeline

    path = build_tiny_pipeline(args.path, args.variant, size=args.size, seed=args.seed)
    print(f"tiny {args.variant} pipeline (size {args.size}) written to {path}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from wan_nb.fixtures import write_synthetic_checkpoint

    path = write_synthetic_checkpoint(args.path, args.preset)
    print(f"synthetic {args.preset} checkpoint (headers only, sparse files) written to {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from wan_nb.demo import run_demo

    return run_demo(Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    from wan_nb.fixtures import SYNTH_PRESETS, TINY_VARIANTS
    from wan_nb.vocabulary import DEGRADED_STRATEGIES, MEMORY_STRATEGIES

    parser = argparse.ArgumentParser(
        prog="wan-nb",
        description="Diagnose, estimate and recover failing diffusers video pipelines (Wan 2.1 / 2.2).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "analyze",
        help="component table of a model folder (reads headers only)",
        description="Component table of a diffusers model folder, from its JSON files and safetensors headers.",
        epilog="exit status: 0 every component is ok, 1 problems were found (listed in the table), "
        "2 the path is not a model folder (or another bad argument).",
    )
    p.add_argument("path", help="diffusers model folder (holds model_index.json)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--deep", action="store_true", help="also build each component on the meta device")
    p.set_defaults(handler=_cmd_analyze)

    p = sub.add_parser("estimate", help="predicted peak device memory for a generation")
    p.add_argument("path", help="diffusers model folder")
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance-scale", type=float, default=5.0)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument(
        "--strategy",
        default=None,
        help="a strategy or a combination joined by '+': " + ", ".join(MEMORY_STRATEGIES + DEGRADED_STRATEGIES),
    )
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="device the estimate is for")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_estimate)

    p = sub.add_parser("diagnose", help="explain an error: a traceback file, or - for stdin")
    p.add_argument("file", help="file holding the traceback or log, or - to read stdin")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_diagnose)

    p = sub.add_parser("demo", help="the walk-through on a tiny pipeline, no Jupyter needed")
    p.add_argument("--out", default="wan_nb_demo", help="folder for the demo's files (default ./wan_nb_demo)")
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser("tiny", help="write a tiny real Wan pipeline (random weights) to PATH")
    p.add_argument("path")
    p.add_argument("--variant", default="wan2.1-t2v", choices=TINY_VARIANTS)
    p.add_argument("--size", type=int, default=1, help="1 = tiny; larger sizes scale the models up")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_cmd_tiny)

    p = sub.add_parser("synth", help="write a full-size synthetic checkpoint (headers only, sparse) to PATH")
    p.add_argument("path")
    p.add_argument("--preset", required=True, choices=SYNTH_PRESETS)
    p.set_defaults(handler=_cmd_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from wan_nb.model.checkpoint import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (CheckpointError, CommandError, ValueError, FileExistsError, NotADirectoryError) as exc:
        print(f"wan-nb {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wan-nb {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
