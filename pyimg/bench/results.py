"""What one timed variant becomes: a Row, with its throughput and its speed against the case's
stock, compiled-stock and same-size-clone variants."""

from collections.abc import Callable
from dataclasses import dataclass, fields

from pyimg.bench.timer import Stats

# Variant roles: which variant of a case the others are compared with.
STOCK, COMPILED, ROOFLINE, PYIMG, OTHER = "stock", "compiled", "roofline", "pyimg", "other"
ROLES = (STOCK, COMPILED, ROOFLINE, PYIMG, OTHER)
# A mode's bytes within this factor of the clone's: one pass over memory, comparable with it.
_ONE_PASS = (0.5, 1.5)


@dataclass
class Variant:
    """One way to run a case. fn takes no arguments and does one call's work; bytes is the
    least memory traffic that work needs, flops its arithmetic, images and megapixels what it
    processes (a model's batch and its output image's size)."""

    name: str
    fn: Callable[[], object]
    mode: str = "forward"
    role: str = OTHER
    bytes: int | None = None
    flops: int | None = None
    images: int | None = None
    megapixels: float | None = None

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"variant {self.name!r}: role {self.role!r} is not one of {ROLES}")


@dataclass
class Row:
    kind: str  # "ops" or "models"
    suite: str  # the op's benchmark, or the model
    case: str
    variant: str
    mode: str
    role: str
    n: int | None = None
    p25_us: float | None = None
    p50_us: float | None = None
    p75_us: float | None = None
    p90_us: float | None = None
    p99_us: float | None = None
    mean_us: float | None = None
    min_us: float | None = None
    spread: float | None = None
    first_call_us: float | None = None
    peak_memory_bytes: int | None = None
    bytes: int | None = None
    flops: int | None = None
    images: int | None = None
    megapixels: float | None = None
    gbps: float | None = None
    tflops: float | None = None
    fps: float | None = None
    mpps: float | None = None
    # Speed against the case's reference: its p50 over this row's (above 1: this is faster).
    vs_stock: float | None = None
    vs_compiled: float | None = None
    vs_clone: float | None = None
    other_load: float | None = None
    graph_breaks: int | None = None
    error: str | None = None

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.kind, self.suite, self.case, self.variant, self.mode)


def _per_second(amount, p50_us: float, scale: float):
    return None if amount is None else amount / (p50_us * 1e-6) / scale


def make_row(kind: str, suite: str, case: str, v: Variant, stats: Stats | None,
             error: str | None, other_load: float | None) -> Row:
    row = Row(kind, suite, case, v.name, v.mode, v.role, bytes=v.bytes, flops=v.flops,
              images=v.images, megapixels=v.megapixels, other_load=other_load, error=error)
    if stats is None:
        return row
    for name in ("n", "p25_us", "p50_us", "p75_us", "p90_us", "p99_us", "mean_us", "min_us",
                 "first_call_us"):
        setattr(row, name, getattr(stats, name))
    row.spread, row.peak_memory_bytes = stats.spread, stats.peak_memory
    row.graph_breaks = stats.graph_breaks
    row.gbps = _per_second(v.bytes, stats.p50_us, 1e9)
    row.tflops = _per_second(v.flops, stats.p50_us, 1e12)
    row.fps = _per_second(v.images, stats.p50_us, 1)
    row.mpps = _per_second(v.megapixels, stats.p50_us, 1)
    return row


def _speed(reference: Row | None, row: Row) -> float | None:
    if reference is None or reference.p50_us is None or row.p50_us is None:
        return None
    return reference.p50_us / row.p50_us


def add_ratios(case_rows: list[Row]) -> None:
    """Fill vs_stock / vs_compiled (same mode) and vs_clone (the case's clone, for rows whose
    mode moves about as many bytes as the clone: one pass over memory) of one case's rows."""
    by_role = {(r.role, r.mode): r for r in case_rows if r.role in (STOCK, COMPILED)}
    clone = next((r for r in case_rows if r.role == ROOFLINE), None)
    for row in case_rows:
        row.vs_stock = _speed(by_role.get((STOCK, row.mode)), row)
        row.vs_compiled = _speed(by_role.get((COMPILED, row.mode)), row)
        if clone is not None and clone.bytes and row.bytes:
            low, high = _ONE_PASS
            if low <= row.bytes / clone.bytes <= high:
                row.vs_clone = _speed(clone, row)
