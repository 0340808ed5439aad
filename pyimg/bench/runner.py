"""The loop every benchmark shares: build one case's variants, time them interleaved, turn them
into rows, write the report after every case (so a run stopped part-way keeps what it
measured), stop starting cases once a time budget is spent."""

import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pyimg.bench import timer
from pyimg.bench.compare import DEFAULT_THRESHOLD, compare, comparison_table, verdict_counts
from pyimg.bench.report import Report, load_rows, write_files
from pyimg.bench.results import OTHER, Row, Variant, add_ratios, make_row


@dataclass(frozen=True)
class Job:
    """One case: build() makes its variants (inputs and models live only while it is timed)."""

    suite: str
    case: str
    build: Callable[[], list[Variant]]
    flush_l2: bool = True  # GPU: clear L2 before each call (ops, not whole models)


@dataclass(frozen=True)
class RunOptions:
    """How to run and where to write, shared by ops and models. settings None: the preset's
    (QUICK with quick). out_dir None: print only. name: the files' stem before the preset and
    the device."""

    device: str | None = None
    threads: int | None = None
    quick: bool = False
    compile: bool = True
    settings: timer.Settings | None = None
    out_dir: Path | None = None
    name: str | None = None
    plot: bool = True
    compare_with: Path | None = None
    threshold: float = DEFAULT_THRESHOLD
    budget_s: float | None = None

    def timer_settings(self) -> timer.Settings:
        return self.settings or (timer.QUICK if self.quick else timer.DEFAULT)


def resolve_device(name: str | None, threads: int | None) -> torch.device:
    """The device to time on (default: CUDA when present), torch's CPU threads set first."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be at least 1, not {threads}")
        torch.set_num_threads(threads)
    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"bad --device {name!r}: pyimg bench times cpu or cuda[:N]")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: no CUDA device is visible")
        torch.cuda.set_device(device)  # CUDA events time the current device's stream
    return device


def run_job(kind: str, job: Job, device: torch.device, settings: timer.Settings) -> list[Row]:
    try:
        variants = job.build()
    except Exception as error:  # a case this machine cannot set up is a failed row
        return [Row(kind, job.suite, job.case, "-", "-", OTHER, error=timer.error_text(error))]
    labels = [(v.name, v.mode) for v in variants]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{job.suite} / {job.case}: two variants share a name and mode")
    timed = timer.measure({str(i): v.fn for i, v in enumerate(variants)}, device, settings,
                          job.flush_l2)
    rows = [make_row(kind, job.suite, job.case, v, timed.stats.get(str(i)),
                     timed.errors.get(str(i)), timed.other_load)
            for i, v in enumerate(variants)]
    add_ratios(rows)
    return rows


def _release(device: torch.device) -> None:
    if "torch._dynamo" in sys.modules:  # compiled graphs of this case; a fresh compile next
        torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run(report: Report, jobs: list[Job], device: torch.device, options: RunOptions,
        stem: str) -> Report:
    """Time every job into report.rows, writing <stem>.* to options.out_dir after each."""
    old_rows = None if options.compare_with is None else load_rows(options.compare_with)
    settings, budget_s = options.timer_settings(), options.budget_s
    start = time.perf_counter()

    def save():
        if old_rows is not None:
            report.comparison = (str(options.compare_with),
                                 compare(old_rows, report.rows, options.threshold))
        if options.out_dir is not None:
            return write_files(report, options.out_dir, stem, options.plot)
        return []

    print(report.environment.line(), flush=True)
    # What exists now lives for the whole run: frozen, it stays out of every gc.collect()
    # between cases, which otherwise takes a good part of a second each.
    gc.freeze()
    try:
        with tqdm(total=len(jobs), unit="case", file=sys.stderr, dynamic_ncols=True) as bar:
            for i, job in enumerate(jobs):
                if budget_s is not None and time.perf_counter() - start > budget_s:
                    report.left_out.append(
                        f"{len(jobs) - i} cases not run, the {budget_s:g} s budget being "
                        f"spent (from {job.suite} {job.case})")
                    break
                bar.set_description(f"{job.suite} {job.case}"[:60])
                _release(device)
                try:
                    report.rows += run_job(report.kind, job, device, settings)
                except KeyboardInterrupt:
                    report.left_out.append(f"interrupted at {job.suite} {job.case}")
                    save()
                    raise
                save()
                bar.update()
    finally:
        gc.unfreeze()
    _release(device)
    paths = save()
    print("\n" + report.summary())
    if report.comparison is not None:
        print(f"\ncompared with {options.compare_with}: {verdict_counts(report.comparison[1])}")
        print(comparison_table(report.comparison[1]))
    if paths:
        print("\nwrote " + ", ".join(map(str, paths)))
    return report
