"""What ``python benchmarks/bench_<op>.py [flags]`` runs: ``pyimg bench ops <op>`` on that
script's suite, results in the script's results/ folder unless --out says otherwise. Flags
kept from the scripts' own parsers: --device, --quick, --out, and --<preset> for a suite's
extra presets (bench_conv.py --sweep is --preset sweep). Whole-application scripts (no
bench_ prefix) build their command line on ``application_parser``."""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def script_arguments(script: Path, presets: set[str], argv: Sequence[str]) -> list[str]:
    """The ``pyimg`` command line for ``python <script> argv``."""
    op = script.stem.removeprefix("bench_")
    args = [f"--preset={a[2:]}" if a.startswith("--") and a[2:] in presets else a
            for a in argv]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(script.parent / "results")]
    return ["bench", "ops", op, "--suite-dir", str(script.parent), *args]


def script_main(script: str, argv: Sequence[str] | None = None) -> int:
    from pyimg.bench.ops import load_suite
    from pyimg.cli import main

    path = Path(script).resolve()
    suite = load_suite(path)
    presets = {name for cases in suite.cases.values() for name in cases} - {"default", "quick"}
    return main(script_arguments(path, presets, sys.argv[1:] if argv is None else argv))


def application_parser(description: str, script: str) -> argparse.ArgumentParser:
    """--device (default: CUDA when present), --quick and --out (default: the results/ folder
    next to ``script``), the flags every whole-application benchmark script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="where to time (default: cuda when a GPU is visible, else cpu)")
    parser.add_argument("--quick", action="store_true", help="fewer cases, shorter timing")
    parser.add_argument("--out", type=Path, default=Path(script).resolve().parent / "results",
                        help="the results folder (default: %(default)s)")
    return parser
