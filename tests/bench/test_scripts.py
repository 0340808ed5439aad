"""benchmarks/bench_<op>.py as scripts: the flags they always took, through pyimg bench."""

import json
import subprocess
import sys
from pathlib import Path

from pyimg.bench.script import script_arguments

ROOT = Path(__file__).resolve().parents[2]


def test_script_flags_become_pyimg_bench_arguments():
    script = ROOT / "benchmarks" / "bench_conv.py"
    assert script_arguments(script, {"sweep"}, ["--sweep", "--device", "cpu"]) == [
        "bench", "ops", "conv", "--suite-dir", str(script.parent), "--preset=sweep",
        "--device", "cpu", "--out", str(script.parent / "results")]
    assert script_arguments(script, {"sweep"}, ["--out=x"])[-1] == "--out=x"


def test_a_script_runs_its_suite(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_pixel_shuffle.py"), "--shape",
         "1x8x3x5 r2", "--no-compile", "--no-plot", "--out", str(tmp_path), "--warmup-s", "0",
         "--seconds-per-variant", "0.002", "--min-samples", "3"],
        capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (path,) = tmp_path.glob("pixel_shuffle_*.json")
    rows = json.loads(path.read_text())["rows"]
    assert {r["variant"] for r in rows} == {"clone", "eager", "pyimg cpu"}
