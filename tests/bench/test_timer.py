"""The timing core: interleaved rounds, sample counts, failures, percentiles, peak memory."""

import time

import pytest
import torch

from pyimg.bench import timer
from pyimg.bench.timer import Settings
from pyimg.inference import cpu_memory_cache_info, reuse_cpu_memory

SHORT = Settings(warmup_s=0.0, seconds_per_variant=0.02, min_samples=6, max_samples=50,
                 rounds=3)
CPU = torch.device("cpu")


def test_variants_are_timed_in_interleaved_rounds():
    calls = []
    variants = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timed = timer.measure(variants, CPU, SHORT)
    assert not timed.errors and all(s.n == SHORT.max_samples for s in timed.stats.values())
    blocks = [name for i, name in enumerate(calls) if i == 0 or calls[i - 1] != name]
    # Warm-up one variant after another, then three rounds each starting with the next
    # variant, then one call each for peak memory.
    assert blocks == list("abc" + "abc" "bca" "cab" + "abc")


def test_sample_counts_follow_the_settings():
    fast = lambda: None
    slow = lambda: time.sleep(0.01)
    timed = timer.measure({"fast": fast, "slow": slow}, CPU, SHORT)
    assert timed.stats["fast"].n == SHORT.max_samples
    assert timed.stats["slow"].n == SHORT.min_samples


def test_times_are_per_call_and_ordered():
    timed = timer.measure({"5ms": lambda: time.sleep(0.005), "15ms": lambda: time.sleep(0.015)},
                          CPU, SHORT)
    short, long = timed.stats["5ms"], timed.stats["15ms"]
    assert 5000 <= short.p50_us < long.p50_us
    assert long.p50_us >= 15000
    for s in (short, long):
        assert s.min_us <= s.p25_us <= s.p50_us <= s.p75_us <= s.p90_us <= s.p99_us
        assert s.first_call_us > 0 and s.spread >= 0


def test_a_failing_variant_is_reported_and_the_others_still_run():
    def broken():
        raise RuntimeError("no kernel for this\nsecond line")

    timed = timer.measure({"ok": lambda: None, "broken": broken}, CPU, SHORT)
    assert timed.errors == {"broken": "RuntimeError: no kernel for this"}
    assert "ok" in timed.stats and "broken" not in timed.stats


def test_a_variant_failing_after_warm_up_is_reported():
    count = [0]

    def flaky():
        count[0] += 1
        if count[0] > 3:
            raise ValueError("ran out")

    timed = timer.measure({"flaky": flaky, "ok": lambda: None}, CPU, SHORT)
    assert timed.errors["flaky"] == "ValueError: ran out"


@pytest.fixture
def stock_cpu_allocator():
    """Without pyimg's reuse allocator, which an earlier test (the video engine's optimized
    model) may have installed: it serves a call from blocks already resident."""
    info = cpu_memory_cache_info()
    if info["installed"]:
        reuse_cpu_memory(0)
    yield
    if info["installed"]:
        reuse_cpu_memory(info["limit"])


def test_peak_memory_counts_what_a_call_allocates(stock_cpu_allocator):
    size = 64 * 2**20

    def allocate():
        return torch.ones(size // 4)  # written, so its pages are resident

    timed = timer.measure({"allocate": allocate, "nothing": lambda: None}, CPU, SHORT)
    peak = timed.stats["allocate"].peak_memory
    if peak is None:
        pytest.skip("this kernel does not let a process reset its peak resident set")
    assert size * 0.9 <= peak <= size * 1.5
    assert timed.stats["nothing"].peak_memory < size * 0.1


def test_other_load_is_measured_on_the_cpu():
    timed = timer.measure({"a": lambda: None}, CPU, SHORT)
    assert timed.other_load is None or timed.other_load >= 0
