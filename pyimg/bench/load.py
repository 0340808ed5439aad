"""How much CPU time other processes take while we time: on a small shared machine one busy
neighbour stalls every parallel region of a multi-threaded op, so the reports show it."""

import os
import time


def _others_busy_ticks() -> int | None:
    """Clock ticks all CPUs spent busy (steal included) less this process's own, from /proc."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(
                int, f.readline().split()[1:9])
        with open("/proc/self/stat") as f:
            # Fields after the name in brackets, which may itself hold spaces.
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    utime, stime = int(own[11]), int(own[12])
    return user + nice + system + irq + softirq + steal - utime - stime


class OthersBusy:
    """Started at construction; ``cores()`` is the cores' worth of CPU time other processes
    used since then (None where /proc cannot be read)."""

    def __init__(self):
        self.ticks, self.start = _others_busy_ticks(), time.perf_counter()

    def cores(self) -> float | None:
        ticks, seconds = _others_busy_ticks(), time.perf_counter() - self.start
        if ticks is None or self.ticks is None or seconds <= 0:
            return None
        return round(max(0.0, (ticks - self.ticks) / os.sysconf("SC_CLK_TCK") / seconds), 2)
