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
import contextlib, io, json, os, runpy, sys, traceback
root, scripts = sys.argv[1], sys.argv[2:]
local = (os.path.join(root, "benchmarks"), os.path.join(root, "tests"))
answers, path_before = {}, list(sys.path)
for path in scripts:
    # As `python <path> --help` starts: its folder first on sys.path, and no module that
    # another script imported from benchmarks/ or tests/ (torch and pyimg stay loaded).
    sys.argv, sys.path[:] = [path, "--help"], [os.path.dirname(path), *path_before]
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        places = [getattr(spec, "origin", None) or "",
                  *(getattr(spec, "submodule_search_locations", None) or [])]
        if any(str(place).startswith(local) for place in places):
            del sys.modules[name]
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
    result = subprocess.run([sys.executable, "-c", _RUN_WITH_HELP, str(ROOT), *map(str, SCRIPTS)],
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
