"""`pyimg bench ops`: suites, shapes from the command line, output files, failures, budget,
interruption, and every benchmarks/bench_<op>.py on tiny shapes."""

import csv
import json

import pytest

from pyimg.bench import RunOptions, Settings, run_ops
from pyimg.bench.ops import find_suites

FILES = ("md", "csv", "json")


def rows_of(path):
    return json.loads(path.read_text())["rows"]


def test_run_writes_every_file_with_environment_and_ratios(cli, fast, suite_dir, tmp_path):
    out = tmp_path / "out"
    status, output = cli("bench", "ops", "tiny", "--suite-dir", suite_dir, "--device", "cpu",
                         "--out", out, *fast)
    assert status == 0, output
    stems = {p.suffix[1:]: p for p in out.iterdir()}
    assert set(stems) == {*FILES, "png"}
    assert stems["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stems["json"].stem.startswith("tiny_")  # one op named: its name, then the device
    data = json.loads(stems["json"].read_text())
    assert data["format"] == "pyimg-bench/1" and data["kind"] == "ops"
    assert data["environment"]["torch"] and data["environment"]["date"]
    assert len(data["environment"]["load_average"]) == 3
    rows = data["rows"]
    assert [(r["case"], r["variant"]) for r in rows] == [
        (case, v) for case in ("n1000", "n3000") for v in ("clone", "eager", "pyimg fake")]
    for r in rows:
        assert r["error"] is None and r["n"] >= 3
        assert r["p50_us"] <= r["p90_us"] <= r["p99_us"]
        assert r["vs_clone"] == pytest.approx(
            next(c["p50_us"] for c in rows if c["case"] == r["case"]
                 and c["variant"] == "clone") / r["p50_us"])
    pyimg_row = next(r for r in rows if r["variant"] == "pyimg fake")
    eager_row = next(r for r in rows if r["variant"] == "eager" and r["case"] == "n1000")
    assert pyimg_row["vs_stock"] == pytest.approx(eager_row["p50_us"] / pyimg_row["p50_us"])
    assert pyimg_row["gbps"] == pytest.approx(8000 / pyimg_row["p50_us"] / 1e3)
    markdown = stems["md"].read_text()
    assert "device:" in markdown and "load average" in markdown
    assert "## pyimg against stock, torch.compile and a same-size clone" in markdown
    with open(stems["csv"]) as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and table[0]["env_date"] == data["environment"]["date"]
    assert "| n1000 | forward |" in output.replace("  ", "").replace(" |", " |")


def test_shapes_from_the_command_line_and_no_plot(cli, fast, suite_dir, tmp_path):
    status, output = cli("bench", "ops", "tiny", "--suite-dir", suite_dir, "--shape", "77",
                         "--shape", "99x1", "--out", tmp_path, "--no-plot", *fast)
    assert status == 0, output
    assert not list(tmp_path.glob("*.png"))
    cases = {r["case"] for r in rows_of(next(tmp_path.glob("*.json")))}
    assert cases == {"n77", "n99"}


def test_quick_and_named_presets_name_their_files(cli, fast, suite_dir, tmp_path):
    assert cli("bench", "ops", "--suite-dir", suite_dir, "--quick", "--out", tmp_path,
               "--no-plot", *fast)[0] == 0
    path = next(tmp_path.glob("ops_quick_*.json"))  # no op named: 'ops'
    assert {r["case"] for r in rows_of(path)} == {"n1000"}


def test_a_failing_pyimg_variant_fails_the_run(cli, fast, suite_dir, tmp_path):
    status, output = cli("bench", "ops", "tiny", "--suite-dir", suite_dir, "--preset", "broken",
                         "--out", tmp_path, "--no-plot", *fast)
    assert status == 1
    rows = rows_of(next(tmp_path.glob("tiny_broken_*.json")))
    broken = next(r for r in rows if r["variant"] == "pyimg fake")
    assert broken["error"] == "RuntimeError: kernel exploded" and broken["p50_us"] is None
    assert next(r for r in rows if r["variant"] == "eager")["p50_us"] > 0
    assert "failed" in output


@pytest.mark.parametrize(("args", "message"), [
    (["nosuch"], "unknown op benchmark(s) ['nosuch']; available: ['tiny']"),
    (["--shape", "8"], "--shape needs exactly one op named"),
    (["tiny", "--preset", "huge"], "tiny: no 'huge' cases for cpu"),
    (["tiny", "--device", "tpu"], "bad --device 'tpu': pyimg bench times cpu or cuda[:N]"),
    (["tiny", "--device", "meta"], "bad --device 'meta'"),
    (["tiny", "--threads", "0"], "--threads must be at least 1"),
])
def test_bad_input_is_one_clear_line(cli, suite_dir, tmp_path, args, message):
    status, output = cli("bench", "ops", "--suite-dir", suite_dir, "--out", tmp_path, *args)
    assert status == 2
    assert message in output and "Traceback" not in output


def test_a_folder_without_suites_is_a_clear_error(cli, tmp_path):
    status, output = cli("bench", "ops", "--suite-dir", tmp_path)
    assert status == 2 and f"no bench_*.py in {tmp_path}" in output


def test_budget_leaves_cases_out_and_says_so(cli, fast, suite_dir, tmp_path):
    assert cli("bench", "ops", "tiny", "--suite-dir", suite_dir, "--budget-s", "0",
               "--out", tmp_path, "--no-plot", *fast)[0] == 0
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert data["rows"] == []
    assert data["left_out"] == ["2 cases not run, the 0 s budget being spent (from tiny n1000)"]


def test_an_interrupted_run_keeps_the_cases_it_finished(suite_dir, tmp_path, monkeypatch):
    from pyimg.bench import runner

    real = runner.run_job
    calls = []

    def interrupt_second(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(runner, "run_job", interrupt_second)
    quick = Settings(warmup_s=0, seconds_per_variant=0.002, min_samples=3, rounds=2)
    with pytest.raises(KeyboardInterrupt):
        run_ops(["tiny"], RunOptions(device="cpu", settings=quick, out_dir=tmp_path,
                                     plot=False), suite_dir=suite_dir)
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert {r["case"] for r in data["rows"]} == {"n1000"}
    assert data["left_out"] == ["interrupted at tiny n3000"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_every_benchmark_script_defines_its_suite():
    suites = {s.name: s for s in find_suites()}
    assert {"pixel_shuffle", "max_pool", "batch_norm", "conv"} <= set(suites)
    for suite in suites.values():
        for device in ("cpu", "cuda"):
            assert suite.cases[device]["default"] and suite.cases[device]["quick"]


# One tiny case per op through its real suite: stock and pyimg's CPU backend side by side
# (odd sizes; channels_last where the op takes it).
TINY_CASES = {
    "pixel_shuffle": ["1x12x5x7 r2 CL", "2x27x3x5 r3 prelu"],
    "max_pool": ["pool 1x3x6x10 CL", "unpool 2x3x6x6", "pair 1x2x4x6", "unpool backward 1x3x6x6"],
    "batch_norm": ["3x5x7x9 CL"],
    "conv": ["1x4x9x7 k3 d2 bn+relu+x", "1x4x6x6 c16 ps2+prelu CL", "2x6x7x7 g6 bn+relu"],
}


@pytest.mark.parametrize("op", TINY_CASES)
def test_each_op_suite_runs_stock_and_pyimg_side_by_side(cli, fast, tmp_path, op):
    shapes = [arg for shape in TINY_CASES[op] for arg in ("--shape", shape)]
    status, output = cli("bench", "ops", op, *shapes, "--device", "cpu", "--no-compile",
                         "--out", tmp_path, "--no-plot", *fast)
    assert status == 0, output
    rows = rows_of(next(tmp_path.glob(f"{op}_*.json")))
    assert not [r for r in rows if r["error"]]
    assert {r["case"] for r in rows} == {r["case"] for r in rows if r["role"] == "pyimg"}
    assert len({r["case"] for r in rows}) == len(TINY_CASES[op])
    for r in rows:
        if r["role"] == "pyimg":
            assert r["variant"].startswith("pyimg cpu") and r["vs_stock"] > 0


@pytest.mark.slow
def test_compiled_variants_run(cli, fast, tmp_path):
    status, output = cli("bench", "ops", "pixel_shuffle", "--shape", "1x8x4x4 r2",
                         "--device", "cpu", "--out", tmp_path, "--no-plot", *fast)
    assert status == 0, output
    rows = rows_of(next(tmp_path.glob("*.json")))
    compiled = [r for r in rows if r["variant"] == "compiled"]
    assert len(compiled) == 2 and all(r["error"] is None and r["vs_stock"] for r in compiled)
    assert all(r["first_call_us"] > r["p50_us"] for r in compiled)  # the compile
