"""What ``python benchmarks/bench_<op>.py [flags]`` runs: ``pyimg bench ops <op>`` on that
script's suite, results in the script's results/ folder unless --out says otherwise. Flags
kept from the scripts' own parsers: --device, --quick, --out, and --<preset> for a suite's
extra presets (bench_conv.py --sweep is --preset sweep)."""

import sys
from collections.abc import Sequence
from pathlib import Path


def script_main(script: str, argv: Sequence[str] | None = None) -> int:
    from pyimg.bench.ops import load_suite
    from pyimg.cli import main

    path = Path(script).resolve()
    suite = load_suite(path)
    extra = {name for presets in suite.cases.values() for name in presets} - {"default",
                                                                              "quick"}
    args = [f"--preset={a[2:]}" if a.startswith("--") and a[2:] in extra else a
            for a in (sys.argv[1:] if argv is None else argv)]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(path.parent / "results")]
    return main(["bench", "ops", suite.name, "--suite-dir", str(path.parent), *args])
