"""Every benchmarks/*.py imports and answers --help: a script left behind by a harness change
fails here, not on the day someone runs it. One child process runs them all (torch is
imported once)."""

import json
import subprocess
import sys
from pathlib import Path

from pyimg.bench.script import application_parser

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))

_RUN_WITH_HELP = """
import contextlib, io, json, runpy, sys, traceback
answers = {}
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name="__main__")
        status = "returned without printing help"
    except SystemExit as exit:
        status = exit.code or 0
    except BaseException:
        status = traceback.format_exc(limit=-3)
    answers[path] = [status, out.getvalue()]
print(json.dumps(answers))
"""


def test_every_benchmark_script_imports_and_answers_help():
    assert len(SCRIPTS) >= 5
    result = subprocess.run([sys.executable, "-c", _RUN_WITH_HELP, *map(str, SCRIPTS)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    for path in SCRIPTS:
        status, out = answers[str(path)]
        assert status == 0, f"{path.name}: {status}"
        assert out.startswith("usage:"), f"{path.name} printed no usage: {out[:200]!r}"


def test_application_parser_flags(tmp_path):
    parser = application_parser("x", str(tmp_path / "script.py"))
    args = parser.parse_args([])
    assert (args.device, args.quick, args.out) == (None, False, tmp_path / "results")
    args = parser.parse_args(["--device", "cpu", "--quick", "--out", "elsewhere"])
    assert (args.device, args.quick, args.out) == ("cpu", True, Path("elsewhere"))
