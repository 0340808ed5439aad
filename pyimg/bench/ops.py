"""``pyimg bench ops``: every op's suite from ``benchmarks/bench_<op>.py``, each pyimg backend
that runs here beside stock eager and torch.compile, with a same-size clone as the roofline."""

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

import pyimg
from pyimg.bench import memory, runner, timer
from pyimg.bench.environment import environment
from pyimg.bench.report import Report
from pyimg.bench.suite import Context, OpSuite, parse_case, runnable_backends

# Compile modes per device for the full run; --quick compiles with the default mode, whose
# compile time fits a short GPU slot.
COMPILE_MODE = {"cuda": "max-autotune-no-cudagraphs", "cpu": None}


def default_suite_dir() -> Path:
    """benchmarks/ of the checkout pyimg runs from."""
    return Path(pyimg.__file__).resolve().parents[1] / "benchmarks"


def load_suite(path: Path) -> OpSuite:
    name = f"_pyimg_bench_suite_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    suite = getattr(module, "SUITE", None)
    if not isinstance(suite, OpSuite):
        raise ValueError(f"{path}: defines no SUITE = pyimg.bench.OpSuite(...)")
    return suite


def find_suites(names: Sequence[str] = (), directory: Path | None = None
                ) -> list[OpSuite]:
    """The SUITE of each benchmarks/bench_<name>.py named (default: every one) in directory
    (default: the checkout's benchmarks/)."""
    directory = Path(directory) if directory is not None else default_suite_dir()
    files = {path.stem.removeprefix("bench_"): path
             for path in sorted(directory.glob("bench_*.py"))}
    if not files:
        raise OSError(f"no bench_*.py in {directory}: pyimg bench ops takes its cases from "
                      "the repository's benchmarks/ folder (name another with --suite-dir)")
    unknown = [n for n in names if n not in files]
    if unknown:
        raise ValueError(f"unknown op benchmark(s) {unknown}; available: {sorted(files)}")
    suites = []
    for name in names or files:
        suite = load_suite(files[name])
        if suite.name != name:
            raise ValueError(f"{files[name]}: SUITE.name is {suite.name!r}, expected {name!r}")
        suites.append(suite)
    return suites


def _cases(suite: OpSuite, device: torch.device, preset: str, shapes: Sequence[str]):
    if not shapes:
        return suite.preset(device, preset)
    if suite.case_from_spec is None:
        raise ValueError(f"{suite.name} takes no shapes from the command line")
    return [suite.case_from_spec(parse_case(text)) for text in shapes]


OPS_NOTE = ("x clone: the p50 of a clone of the case's largest tensor over this row's, "
            "the fraction of the memory roofline reached; given for modes that move between "
            "0.5 and 1.5 times the clone's bytes (one pass over memory). GB/s: the least "
            "bytes the mode must read and write over its p50.")


def run_ops(ops: Sequence[str] = (), options: runner.RunOptions | None = None, *,
            preset: str | None = None, shapes: Sequence[str] = (),
            backends: Sequence[str] | None = None, reuse_memory: bool = False,
            suite_dir: Path | None = None) -> Report:
    """Benchmark the named ops (default: every suite) and write the report. preset: a named
    case list of the suites (default 'default', or 'quick' with options.quick); shapes: cases
    for the one op named instead; backends: the pyimg backends to time (default: all that run
    here)."""
    options = options or runner.RunOptions()
    device = runner.resolve_device(options.device, options.threads)
    preset = preset or ("quick" if options.quick else "default")
    if shapes and len(ops) != 1:
        raise ValueError("--shape needs exactly one op named (the shapes are that op's cases)")
    suites = find_suites(ops, suite_dir)
    if reuse_memory:
        memory.reuse_freed_memory()

    env = environment(device)
    settings = options.timer_settings()
    compile_mode = None if options.quick else COMPILE_MODE.get(device.type)
    report = Report("ops", f"pyimg bench ops{f' ({preset})' if preset != 'default' else ''}",
                    env, {"preset": preset, "compile": options.compile,
                          "compile_mode": compile_mode or "default",
                          "reuse_memory": reuse_memory, **asdict(settings)},
                    [timer.method_note(device, settings), OPS_NOTE])
    jobs = []
    for suite in suites:
        candidates = suite.backends.get(device.type, ())
        if backends is not None:
            candidates = [b for b in candidates if b in backends]
        runnable, skipped = runnable_backends(candidates, device)
        report.left_out += [f"{suite.name}: {reason}" for reason in skipped]
        report.notes += [f"{suite.name}: {note}" for note in suite.notes]
        context = Context(device, tuple(runnable), options.compile, compile_mode)
        for case in _cases(suite, device, preset, shapes):
            jobs.append(runner.Job(suite.name, case.name,
                                   lambda s=suite, c=case, x=context: s.variants(c, x)))

    stem = options.name or (ops[0] if len(ops) == 1 else "ops")
    stem += "".join(f"_{part}" for part in (preset if preset != "default" else None,
                                            "reuse_memory" if reuse_memory else None) if part)
    return runner.run(report, jobs, device, options, f"{stem}_{env.slug}")
