"""What got faster or slower between two runs, with a noise threshold from their spread.

A row's change counts when its p50 moved by more than both ``threshold`` (a floor for what
the run-to-run drift of a machine hides) and twice the standard error of the difference of
the two medians. A median's standard error is estimated from its run's spread:
sigma ~ IQR / 1.349 for a roughly normal core, and the median's error ~ 1.2533 sigma / sqrt(n).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pyimg.bench.results import Row
from pyimg.bench.tables import markdown_table, time_text

DEFAULT_THRESHOLD = 0.05


def _relative_error(row: Row) -> float:
    if not row.n or row.spread is None:
        return 0.0
    return 1.2533 * row.spread / 1.349 / math.sqrt(row.n)


@dataclass(frozen=True)
class Change:
    row: Row
    old_p50_us: float | None
    noise: float | None
    verdict: str  # faster, slower, same, new, gone, failed

    @property
    def speedup(self) -> float | None:
        if self.verdict == "gone" or self.old_p50_us is None or self.row.p50_us is None:
            return None
        return self.old_p50_us / self.row.p50_us


def _judge(old: Row, new: Row, threshold: float) -> Change:
    if new.error or new.p50_us is None:
        return Change(new, old.p50_us, None, "failed")
    if old.error or old.p50_us is None:
        return Change(new, None, None, "new")
    noise = max(threshold, 2 * math.hypot(_relative_error(old), _relative_error(new)))
    change = new.p50_us / old.p50_us - 1
    verdict = "slower" if change > noise else "faster" if change < -noise else "same"
    return Change(new, old.p50_us, noise, verdict)


def compare(old_rows: Sequence[Row], new_rows: Sequence[Row],
            threshold: float = DEFAULT_THRESHOLD) -> list[Change]:
    """Each new row against the old row of the same kind, suite, case, variant and mode;
    old rows with no counterpart come last as 'gone'."""
    old_by_key = {r.key: r for r in old_rows}
    changes = []
    for row in new_rows:
        old = old_by_key.pop(row.key, None)
        changes.append(Change(row, None, None, "new") if old is None
                       else _judge(old, row, threshold))
    changes += [Change(old, old.p50_us, None, "gone") for old in old_by_key.values()]
    return changes


def comparison_table(changes: Sequence[Change]) -> str:
    headers = ["suite", "case", "variant", "mode", "old p50", "new p50", "speedup", "noise",
               "verdict"]
    lines = []
    for c in changes:
        r = c.row
        new = "-" if c.verdict == "gone" else time_text(r.p50_us)
        lines.append([r.suite, r.case, r.variant, r.mode, time_text(c.old_p50_us), new,
                      "-" if c.speedup is None else f"x{c.speedup:.2f}",
                      "-" if c.noise is None else f"{c.noise:.0%}", c.verdict])
    return markdown_table(headers, lines)


def verdict_counts(changes: Sequence[Change]) -> str:
    counts = {}
    for c in changes:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    order = ("faster", "slower", "same", "new", "gone", "failed")
    return ", ".join(f"{counts[v]} {v}" for v in order if v in counts) or "nothing to compare"
