"""Timing several variants of one computation side by side, interleaved.

Each variant is warmed up (its first call, which may compile, is timed apart), then the timed
calls are taken in rounds: every round runs a block of calls of each variant, in an order
that rotates from round to round, so that a burst of load from other processes on the machine
slows every variant alike instead of whichever happened to be running.

One sample is one call: on the CPU, ``time.perf_counter`` around it; on a GPU, a pair of CUDA
events around it, with the L2 cache cleared before each call for ops (as
``triton.testing.do_bench`` does) and not for whole models. ``do_bench`` and
``torch.utils.benchmark`` each time one function to completion (no interleaving) and
``torch.utils.benchmark`` keeps per-block means, not per-call times, so neither gives the
p90/p99 of calls taken in alternation; this module uses their method on those two points.
"""

import gc
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pyimg.bench import load, memory

_L2_FLUSH_BYTES = 256 * 2**20  # more than any current GPU's L2, as do_bench clears
_CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}


@dataclass(frozen=True)
class Settings:
    """How long to time each variant: warm-up seconds after its first call, then timed calls
    filling about ``seconds_per_variant`` (at least ``min_samples``, at most ``max_samples``),
    spread over ``rounds`` interleaved rounds.

    clock (CPU): "wall" times a call by the wall clock; "thread" by the calling thread's CPU
    time, which other processes' load hardly inflates (it misses the work of other threads:
    for one-thread runs). order: "rotate" starts each round with the next variant; "shuffle"
    draws a new (seeded) order each round, so that no variant always runs right after the one
    whose spinning worker threads (OpenMP's, onnxruntime's) slow whatever follows."""

    warmup_s: float = 0.2
    seconds_per_variant: float = 1.0
    min_samples: int = 10
    max_samples: int = 2000
    rounds: int = 10
    clock: str = "wall"
    order: str = "rotate"

    def __post_init__(self):
        if self.clock not in _CLOCKS:
            raise ValueError(f"Settings.clock {self.clock!r} is not one of {sorted(_CLOCKS)}")
        if self.order not in ("rotate", "shuffle"):
            raise ValueError(f"Settings.order {self.order!r} is not 'rotate' or 'shuffle'")


DEFAULT = Settings()
QUICK = Settings(warmup_s=0.05, seconds_per_variant=0.25, min_samples=5, max_samples=400,
                 rounds=5)


@dataclass(frozen=True)
class Stats:
    """One variant's timed calls, in microseconds. first_call_us: its first call, compile or
    autotuning included; peak_memory: bytes above what was in use before one call (CUDA
    allocator on a GPU, resident memory on the CPU; None where it cannot be read)."""

    n: int
    p25_us: float
    p50_us: float
    p75_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    min_us: float
    first_call_us: float
    peak_memory: int | None
    graph_breaks: int | None = None  # torch.compile's during the warm-up, when any

    @property
    def spread(self) -> float:
        """Interquartile range over the median: how far single calls stray."""
        return (self.p75_us - self.p25_us) / self.p50_us if self.p50_us > 0 else 0.0


@dataclass(frozen=True)
class Timed:
    """What measure() returns: per variant its Stats or the error that stopped it, and the
    cores' worth of CPU time other processes used while the case was timed (None on a GPU or
    where /proc cannot be read)."""

    stats: dict[str, Stats]
    errors: dict[str, str]
    other_load: float | None


def error_text(error: BaseException) -> str:
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line[:300]}"


def summarize(samples_us: Sequence[float], first_call_us: float, peak_memory: int | None,
              graph_breaks: int | None = None) -> Stats:
    q = np.percentile(np.asarray(samples_us, dtype=np.float64), [25, 50, 75, 90, 99])
    return Stats(len(samples_us), *map(float, q), float(np.mean(samples_us)),
                 float(np.min(samples_us)), first_call_us, peak_memory, graph_breaks)


def _graph_breaks_so_far() -> int:
    """Graph breaks torch.compile has met in this process: a compiled variant that breaks
    runs partly eager, which its row should say."""
    dynamo_utils = sys.modules.get("torch._dynamo.utils")  # not loaded: nothing compiled yet
    return 0 if dynamo_utils is None else sum(dynamo_utils.counters["graph_break"].values())


class _Sampler:
    """Timed calls of one function on one device."""

    def __init__(self, fn: Callable[[], object], device: torch.device, flush: torch.Tensor | None,
                 clock: Callable[[], float] = time.perf_counter):
        self.fn, self.device, self.flush, self.clock = fn, device, flush, clock
        self.samples_us: list[float] = []

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def warm_up(self, seconds: float) -> tuple[float, float]:
        """Call until ``seconds`` have passed after the first call (two calls at least);
        return the first call's time and the median of the others, in microseconds."""
        start = time.perf_counter()
        self.fn()
        self.sync()
        first = time.perf_counter() - start
        times: list[float] = []
        deadline = time.perf_counter() + seconds
        while len(times) < 2 or time.perf_counter() < deadline:
            start = time.perf_counter()
            self.fn()
            self.sync()
            times.append(time.perf_counter() - start)
        return first * 1e6, float(np.median(times)) * 1e6

    def take(self, count: int) -> None:
        if self.device.type == "cuda":
            self._take_cuda(count)
            return
        for _ in range(count):
            start = self.clock()
            self.fn()
            self.samples_us.append((self.clock() - start) * 1e6)

    def _take_cuda(self, count: int) -> None:
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(count)]
        for begin, end in events:
            if self.flush is not None:
                self.flush.zero_()
            begin.record()
            self.fn()
            end.record()
        torch.cuda.synchronize(self.device)
        self.samples_us += [begin.elapsed_time(end) * 1e3 for begin, end in events]


def _sample_counts(estimates_us: dict[str, float], s: Settings) -> dict[str, int]:
    return {name: min(s.max_samples, max(s.min_samples,
                                         round(s.seconds_per_variant * 1e6 / max(t, 1e-3))))
            for name, t in estimates_us.items()}


def _rotated(names: list[str], r: int) -> list[str]:
    k = r % len(names) if names else 0
    return names[k:] + names[:k]


def round_order(names: list[str], r: int, order: str) -> list[str]:
    """The variants' order in round r."""
    if order == "shuffle":
        return random.Random(r).sample(names, len(names))
    return _rotated(names, r)


def measure(variants: dict[str, Callable[[], object]], device: torch.device, s: Settings,
            flush_l2: bool = True) -> Timed:
    """Warm up, then time every variant in interleaved rounds; then one call of each for its
    peak memory. A variant that raises is reported with its error and left out of the rest."""
    flush = None
    if device.type == "cuda" and flush_l2:
        flush = torch.empty(_L2_FLUSH_BYTES, dtype=torch.int8, device=device)
    samplers, errors, first_us, estimates, breaks = {}, {}, {}, {}, {}
    for name, fn in variants.items():
        sampler = _Sampler(fn, device, flush, _CLOCKS[s.clock])
        before = _graph_breaks_so_far()
        try:
            first_us[name], estimates[name] = sampler.warm_up(s.warmup_s)
        except Exception as error:  # a provider that cannot run this case is a failed row
            errors[name] = error_text(error)
            continue
        breaks[name] = _graph_breaks_so_far() - before or None
        samplers[name] = sampler
    counts = _sample_counts(estimates, s)
    rounds = max(1, min(s.rounds, *counts.values())) if counts else 1
    names = list(samplers)
    busy = load.OthersBusy()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            for name in round_order(names, r, s.order):
                if name in errors:
                    continue
                sampler = samplers[name]
                left = counts[name] - len(sampler.samples_us)
                try:
                    sampler.take(min(math.ceil(counts[name] / rounds), left))
                except Exception as error:
                    errors[name] = error_text(error)
    finally:
        if gc_was_enabled:
            gc.enable()
    other_load = busy.cores() if device.type == "cpu" else None
    gc.collect()
    stats = {}
    for name, sampler in samplers.items():
        if name in errors:
            continue
        try:
            peak = memory.peak_bytes(sampler.fn, device)
        except Exception as error:
            errors[name] = error_text(error)
            continue
        stats[name] = summarize(sampler.samples_us, first_us[name], peak, breaks[name])
    return Timed(stats, errors, other_load)


def method_note(device: torch.device, settings: Settings) -> str:
    """How the report's numbers were taken, for its notes."""
    cpu_clock = "time.thread_time" if settings.clock == "thread" else "time.perf_counter"
    how = ("CUDA events around each call, L2 cleared before each op's call"
           if device.type == "cuda" else f"{cpu_clock} around each call")
    order = "shuffled" if settings.order == "shuffle" else "rotating"
    return (f"Each variant is warmed up (its first call, compile included, is the 'first call' "
            f"column), then timed in {settings.rounds} interleaved rounds ({how}; {order} "
            "order, so other load on the machine hits every variant alike). spread: "
            "interquartile range over the median. x stock / x compiled: that variant's p50 "
            "over this row's, same case and mode (above 1: faster). peak MB: memory above "
            "what was in use before one call (CUDA allocator, or resident set on the CPU). "
            "other load: cores' worth of CPU time other processes used during the case.")
