"""scripts/gpu_check.sh without a GPU: syntax, its phases and time limits (dry run), and the
sanitizer's test selection, which must memcheck every kernel forward and backward."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
PHASES = ["build", "info", "cuda_tests", "sanitizer", "bench_ops", "bench_models"]


def dry_run(*args, **env):
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True,
                          text=True, check=True, env={"PATH": "/usr/bin:/bin", **env}).stdout


def test_bash_parses_it():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_gpu_phases_fit_one_call_under_nine_minutes():
    out = dry_run()
    lines = out.splitlines()
    phases = [line.split()[0] for line in lines if re.match(r"\w+ +limit", line)]
    assert phases == PHASES
    limits = [int(x) for x in re.findall(r"limit +(\d+)s", out)]
    total = int(re.search(r'TOTAL_LIMIT_S="\$\{TOTAL_LIMIT_S:-(\d+)\}"',
                          SCRIPT.read_text()).group(1))
    assert total < 540 and sum(limits) < total and limits[-1] > 0
    assert "TORCH_CUDA_ARCH_LIST" in SCRIPT.read_text() and '"9.0"' in SCRIPT.read_text()
    sanitizer = next(line for line in lines if line.startswith("sanitizer"))
    assert "compute-sanitizer --tool memcheck" in sanitizer and "-m cuda" in sanitizer
    for kind in ("ops", "models"):
        line = next(line for line in lines if line.startswith(f"bench_{kind}"))
        assert f"pyimg bench {kind} --device cuda --quick --budget-s" in line


def test_cpu_mode_swaps_in_cpu_equivalents_and_one_output_folder():
    out = dry_run("--cpu", OUT="results/x", SKIP_BUILD="1")
    assert "compute-sanitizer" not in out and "-m not\\ cuda" in out
    assert out.count("--out results/x") == 2 and "--device cpu" in out
    assert not any(line.startswith("build ") for line in out.splitlines())


def test_unknown_arguments_are_refused():
    result = subprocess.run(["bash", str(SCRIPT), "--fast"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown argument --fast" in result.stderr


def test_the_sanitizer_selection_covers_every_kernel_forward_and_backward():
    script = SCRIPT.read_text()
    selection = re.search(r'SANITIZER_K="\$\{SANITIZER_K:-([^}]+)\}"', script).group(1)
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/ops", "-m", "cuda", "-k", selection,
         "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    tests = [line for line in collected if "::" in line]
    # An op's tests: tests/ops/test_<op>.py for each op with kernels (cross-op files aside).
    op_files = sorted(p.name for p in (ROOT / "tests" / "ops").glob("test_*.py")
                      if (ROOT / "pyimg" / "triton" / p.name.removeprefix("test_")).exists())
    assert len(op_files) >= 5, op_files
    for op_file in op_files:
        for backend in ("cuda-cuda", "triton-cuda"):
            mine = [t for t in tests if op_file in t and f"[{backend}" in t]
            assert any("gradient" in t for t in mine), (op_file, backend, "backward")
            assert any("gradient" not in t for t in mine), (op_file, backend, "forward")
    unpool_backward = [t for t in tests if "unpool_backward" in t]
    assert len(unpool_backward) == 2, "max_unpool2d's backward kernel, on both backends"


@pytest.mark.slow
def test_cpu_mode_runs_end_to_end(tmp_path):
    result = subprocess.run(
        ["bash", str(SCRIPT), "--cpu"], cwd=ROOT, capture_output=True, text=True,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "SKIP_BUILD": "1",
             "OUT": str(tmp_path), "PYTHON": sys.executable,
             "BENCH_OPS_FLAGS": "--quick --no-compile",
             "BENCH_MODELS_FLAGS": "--quick --no-compile"})
    summary = (tmp_path / "summary.md").read_text()
    assert result.returncode == 0, summary
    for phase in PHASES[1:]:
        assert f"| {phase} | ok |" in summary
    assert list(tmp_path.glob("ops_quick_*.json")) and list(tmp_path.glob("models_quick_*.json"))
