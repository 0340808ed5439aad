"""The timer's clock (wall or the calling thread's CPU time) and round order (rotating or
shuffled)."""

import time

import pytest
import torch

from pyimg.bench import timer
from pyimg.bench.timer import Settings

CPU = torch.device("cpu")
SHORT = Settings(warmup_s=0.0, seconds_per_variant=0.05, min_samples=3, max_samples=4,
                 rounds=2)


def test_thread_clock_leaves_out_time_spent_waiting():
    def sleep():
        time.sleep(0.02)

    wall = timer.measure({"sleep": sleep}, CPU, SHORT).stats["sleep"]
    thread = timer.measure({"sleep": sleep}, CPU, Settings(**{**SHORT.__dict__,
                                                              "clock": "thread"})).stats["sleep"]
    assert wall.p50_us >= 20_000
    assert thread.p50_us < 5_000


def test_shuffled_rounds_are_seeded_permutations_that_change_neighbours():
    names = list("abcd")
    orders = [timer.round_order(names, r, "shuffle") for r in range(10)]
    assert all(sorted(order) == names for order in orders)
    assert orders == [timer.round_order(names, r, "shuffle") for r in range(10)]
    after_a = {order[order.index("a") + 1] for order in orders if order[-1] != "a"}
    assert len(after_a) > 1  # rotation would always put "b" after "a"
    assert timer.round_order(names, 1, "rotate") == list("bcda")


def test_shuffled_measure_times_every_variant():
    calls = []
    variants = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timed = timer.measure(variants, CPU, Settings(**{**SHORT.__dict__, "order": "shuffle"}))
    assert not timed.errors and all(s.n == SHORT.max_samples for s in timed.stats.values())


@pytest.mark.parametrize("field", ["clock", "order"])
def test_unknown_clock_or_order_is_refused(field):
    with pytest.raises(ValueError, match=field):
        Settings(**{field: "sundial"})
