"""The timing harness every op's benchmark shares.

GPU time comes from CUDA events around each call, with L2 flushed before each one
(``triton.testing.do_bench``, or the same loop in torch when triton is missing); CPU time from the
wall clock. Each measurement is summarised by its 20/50/80% quantiles. Rows carry the bytes the
op must move, so bandwidth can be compared with a ``clone`` of the same input measured in the
same run: the roofline for a memory-bound op (see shared/anchors.md).
"""

import argparse
import csv
import datetime
import importlib.metadata
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import pyimg
from pyimg import _backend

QUANTILES = (0.2, 0.5, 0.8)
ROOFLINE = "clone"
_L2_FLUSH_BYTES = 256 * 2**20  # larger than any current GPU's L2, as triton's do_bench uses


@dataclass(frozen=True)
class Settings:
    """How long to time: GPU in milliseconds of warm-up and of timed repeats, CPU in seconds
    of timed repeats (bounded by a repeat count), retried while other processes load the host."""

    gpu_warmup_ms: int = 25
    gpu_rep_ms: int = 100
    cpu_warmup: int = 3
    cpu_budget_s: float = 1.0
    cpu_min_repeats: int = 10
    cpu_max_repeats: int = 500
    # Cores' worth of other processes' CPU time above which the host counts as busy: on a
    # 2-core machine one busy neighbour stalls every parallel region of a 2-thread op. Each
    # attempt first waits up to cpu_max_wait_s for a quiet host; a busy attempt is retried.
    cpu_quiet_load: float = 0.2
    cpu_max_wait_s: float = 3.0
    cpu_attempts: int = 2


QUICK = Settings(gpu_warmup_ms=10, gpu_rep_ms=30, cpu_warmup=2, cpu_budget_s=0.3,
                 cpu_min_repeats=5, cpu_max_repeats=100, cpu_max_wait_s=0.0, cpu_attempts=1)


@dataclass(frozen=True)
class Timing:
    """Quantiles of one measurement in microseconds; other_load (CPU only): the cores' worth
    of CPU time other processes used meanwhile."""

    p20_us: float
    p50_us: float
    p80_us: float
    other_load: float | None = None


def _timing(samples_us: Sequence[float], other_load: float | None = None) -> Timing:
    q = torch.tensor(samples_us, dtype=torch.float64).quantile(
        torch.tensor(QUANTILES, dtype=torch.float64))
    return Timing(*q.tolist(), other_load=other_load)


def _time_gpu_events(fn: Callable[[], object], s: Settings) -> Timing:
    """triton.testing.do_bench's method in plain torch, so numbers compare with it."""
    flush = torch.empty(_L2_FLUSH_BYTES, dtype=torch.int8, device="cuda")
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        flush.zero_()
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate_ms = start.elapsed_time(end) / 5
    for _ in range(max(1, int(s.gpu_warmup_ms / estimate_ms))):
        fn()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(max(1, int(s.gpu_rep_ms / estimate_ms)))]
    for begin, finish in events:
        flush.zero_()
        begin.record()
        fn()
        finish.record()
    torch.cuda.synchronize()
    return _timing([begin.elapsed_time(finish) * 1e3 for begin, finish in events])


def time_gpu(fn: Callable[[], object], s: Settings = Settings()) -> Timing:
    """fn's GPU time from CUDA events, L2 flushed before each call."""
    try:
        from triton.testing import do_bench
    except ImportError:
        return _time_gpu_events(fn, s)
    ms = do_bench(fn, warmup=s.gpu_warmup_ms, rep=s.gpu_rep_ms, quantiles=list(QUANTILES))
    return Timing(*(t * 1e3 for t in ms))


def _others_busy_ticks() -> int | None:
    """Clock ticks all CPUs spent busy (steal included) less this process's own, from /proc."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(
                int, f.readline().split()[1:9])
        with open("/proc/self/stat") as f:
            # Fields from the 3rd on: the 2nd, the name in brackets, may hold spaces.
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    utime, stime = int(own[11]), int(own[12])
    return user + nice + system + irq + softirq + steal - utime - stime


def _others_load(ticks_before: int | None, ticks_after: int | None, seconds: float):
    if ticks_before is None or ticks_after is None:
        return None
    return max(0.0, (ticks_after - ticks_before) / os.sysconf("SC_CLK_TCK") / seconds)


def _wait_until_quiet(s: Settings) -> None:
    deadline = time.perf_counter() + s.cpu_max_wait_s
    while time.perf_counter() < deadline:
        before = _others_busy_ticks()
        time.sleep(0.5)
        load = _others_load(before, _others_busy_ticks(), 0.5)
        if load is None or load <= s.cpu_quiet_load:
            return


def _time_cpu_once(fn: Callable[[], object], s: Settings) -> Timing:
    _wait_until_quiet(s)
    for _ in range(s.cpu_warmup):
        fn()
    start = time.perf_counter()
    fn()
    estimate_s = time.perf_counter() - start
    repeats = min(s.cpu_max_repeats, max(s.cpu_min_repeats, int(s.cpu_budget_s / estimate_s)))
    samples_us = []
    ticks_before, wall_before = _others_busy_ticks(), time.perf_counter()
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples_us.append((time.perf_counter() - start) * 1e6)
    load = _others_load(ticks_before, _others_busy_ticks(), time.perf_counter() - wall_before)
    return _timing(samples_us, load)


def time_cpu(fn: Callable[[], object], s: Settings = Settings()) -> Timing:
    """fn's wall-clock time; repeats fill about cpu_budget_s. A measurement taken while other
    processes used more than cpu_quiet_load cores is retried, and the quietest attempt kept."""
    best = None
    for _ in range(s.cpu_attempts):
        timing = _time_cpu_once(fn, s)
        if best is None or (timing.other_load or 0.0) < (best.other_load or 0.0):
            best = timing
        if (best.other_load or 0.0) <= s.cpu_quiet_load:
            break
    return best


def time_on(device: torch.device, fn: Callable[[], object], s: Settings = Settings()) -> Timing:
    return time_gpu(fn, s) if device.type == "cuda" else time_cpu(fn, s)


# -- what was measured where -----------------------------------------------------------------


def _cpu_name() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class Environment:
    device: str
    torch: str
    triton: str
    cuda: str
    date: str
    # The host's 1-minute load average at the start: other work on a small CPU skews its times.
    load: float

    @property
    def slug(self) -> str:
        """The device as a file-name part: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
        return re.sub(r"[^a-z0-9]+", "-", self.device.lower()).strip("-")


def environment(device: torch.device) -> Environment:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return Environment(
        device=name,
        torch=torch.__version__,
        triton=_version("triton"),
        cuda=torch.version.cuda or "none",
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        load=round(os.getloadavg()[0], 2),
    )


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One timed (case, provider, mode); error instead of times when the provider failed."""

    case: str
    provider: str
    mode: str
    bytes: int
    p20_us: float | None = None
    p50_us: float | None = None
    p80_us: float | None = None
    other_load: float | None = None
    error: str | None = None

    @property
    def gbps(self) -> float | None:
        return None if self.p50_us is None else self.bytes / self.p50_us / 1e3


def measure(case: str, provider: str, mode: str, nbytes: int,
            timer: Callable[[], Timing]) -> Result:
    """Run timer() into a Result; a provider that raises (torch.compile without a working
    compiler, say) becomes a failed row rather than ending the whole run."""
    try:
        t = timer()
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        message = f"{type(error).__name__}: {first_line[:200]}"
        print(f"FAILED {case} / {provider} / {mode}: {message}", flush=True)
        return Result(case, provider, mode, nbytes, error=message)
    return Result(case, provider, mode, nbytes, t.p20_us, t.p50_us, t.p80_us, t.other_load)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or denominator is None else numerator / denominator


def derived(results: Sequence[Result], baselines: Sequence[str]) -> list[dict]:
    """Each result with its bandwidth, its fraction of the clone's bandwidth in the same case,
    and its speedup over each baseline provider in the same case and mode (p50 against p50)."""
    by_key = {(r.case, r.provider, r.mode): r for r in results}
    clone = {r.case: r for r in results if r.provider == ROOFLINE}
    rows = []
    for r in results:
        row = asdict(r)
        row["gbps"] = r.gbps
        roofline = clone.get(r.case)
        row["of_clone"] = _ratio(r.gbps, roofline.gbps if roofline else None)
        for name in baselines:
            base = by_key.get((r.case, name, r.mode))
            row[f"vs_{name}"] = _ratio(base.p50_us if base else None, r.p50_us)
        rows.append(row)
    return rows


# -- writers ---------------------------------------------------------------------------------


def result_paths(out_dir: Path, op: str, env: Environment) -> tuple[Path, Path]:
    stem = Path(out_dir) / f"{op}_{env.slug}"
    return stem.with_suffix(".md"), stem.with_suffix(".csv")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"


def markdown_table(headers: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def results_table(rows: Sequence[dict], baselines: Sequence[str]) -> str:
    """Every row; an 'other load' column when the rows were timed on the CPU."""
    with_load = any(row["other_load"] is not None for row in rows)
    headers = ["case", "provider", "mode", "p20 us", "p50 us", "p80 us", "MB", "GB/s",
               "of clone", *(f"x {name}" for name in baselines), *["other load"] * with_load]
    lines = []
    for row in rows:
        if row["error"]:
            lines.append([row["case"], row["provider"], row["mode"], "failed", row["error"],
                          *["-"] * (len(headers) - 5)])
            continue
        lines.append([
            row["case"], row["provider"], row["mode"],
            _fmt(row["p20_us"], ".1f"), _fmt(row["p50_us"], ".1f"), _fmt(row["p80_us"], ".1f"),
            _fmt(row["bytes"] / 1e6, ".1f"), _fmt(row["gbps"], ".1f"),
            _percent(row["of_clone"]),
            *(_fmt(row[f"vs_{name}"], ".2f") for name in baselines),
            *[_fmt(row["other_load"], ".2f")] * with_load,
        ])
    return markdown_table(headers, lines)


def _cell(row: dict | None, busy_above: float) -> str:
    if row is None:
        return "-"
    if row["error"]:
        return "failed"
    busy = " *" if (row["other_load"] or 0.0) > busy_above else ""
    return f"{row['p50_us']:.1f} ({_percent(row['of_clone'])}){busy}"


def summary_table(rows: Sequence[dict], providers: Sequence[str],
                  busy_above: float = Settings.cpu_quiet_load) -> str:
    """One line per (case, mode), one column per provider: p50 us and, in brackets, the
    fraction of the clone's bandwidth; * marks a time taken while other processes used more
    than busy_above cores. The clone column repeats the case's clone."""
    by_key = {(row["case"], row["provider"], row["mode"]): row for row in rows}
    keys = dict.fromkeys((row["case"], row["mode"]) for row in rows if row["provider"] != ROOFLINE)
    lines = []
    for case, mode in keys:
        cells = [_cell(by_key.get((case, p, "copy" if p == ROOFLINE else mode)), busy_above)
                 for p in providers]
        lines.append([case, mode, *cells])
    return markdown_table(["case", "mode", *providers], lines)


def environment_lines(env: Environment) -> str:
    return (f"device: {env.device}; torch {env.torch}; triton {env.triton}; CUDA {env.cuda}; "
            f"{env.date}; host load average {env.load}")


def write_csv(path: Path, env: Environment, rows: Sequence[dict]) -> None:
    """One line per result, with the environment repeated so each line stands alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    env_fields = asdict(env)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], *env_fields])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, **env_fields})


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- what every bench_<op>.py shares -------------------------------------------------------------


def argument_parser(description: str) -> argparse.ArgumentParser:
    """--device, --quick and --out (default benchmarks/results)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="fewer cases, shorter timing")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return parser


def pyimg_backends(candidates: Sequence[str], device: torch.device) -> tuple[list[str], list[str]]:
    """The pyimg backends of candidates this device runs, and why the others are left out."""
    runnable, skipped = [], []
    for backend in candidates:
        reason = _backend.unavailable(backend, device)
        if reason is None:
            runnable.append(backend)
        else:
            skipped.append(f"pyimg {backend}: {reason}")
    return runnable, skipped


def write_report(out_dir: Path, op: str, quick: bool, env: Environment, skipped: Sequence[str],
                 notes: Sequence[str], summary_title: str, summary: str, rows: Sequence[dict],
                 baselines: Sequence[str]) -> None:
    """The md file (title, environment, build, notes, summary, every row) and the csv file of
    op's results."""
    sections = [
        f"# {op}{' (quick)' * quick}",
        environment_lines(env),
        f"pyimg build: {pyimg.build_info}; providers left out: {skipped or 'none'}",
        *notes,
        f"## Summary: {summary_title}",
        summary,
        "## All rows",
        results_table(rows, baselines),
    ]
    md_path, csv_path = result_paths(out_dir, op, env)
    write_text(md_path, "\n\n".join(sections) + "\n")
    write_csv(csv_path, env, rows)


def finish(out_dir: Path, op: str, env: Environment, summary: str,
           results: Sequence[Result]) -> int:
    """Print where the report went and its summary; the exit status: 1 if a pyimg provider
    failed."""
    print(f"\nwrote {', '.join(map(str, result_paths(out_dir, op, env)))}\n")
    print(summary)
    return 1 if any(r.error and r.provider.startswith("pyimg") for r in results) else 0
