"""Rows as tables: markdown (aligned, so the same text reads well in a terminal)."""

from collections.abc import Sequence

from pyimg.bench.results import PYIMG, ROOFLINE, STOCK, Row


def time_text(us: float | None) -> str:
    if us is None:
        return "-"
    if us < 1e3:
        return f"{us:.1f} us"
    if us < 1e6:
        return f"{us / 1e3:.2f} ms"
    return f"{us / 1e6:.2f} s"


def number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def ratio_text(value: float | None) -> str:
    return "-" if value is None else f"x{value:.2f}"


def markdown_table(headers: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(headers)]

    def join(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([join(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *map(join, lines)])


def _cell(row: Row | None) -> str:
    if row is None:
        return "-"
    if row.error:
        return "failed"
    ratio = "" if row.role in (STOCK, ROOFLINE) or row.vs_stock is None else \
        f" {ratio_text(row.vs_stock)}"
    return time_text(row.p50_us) + ratio


def summary_table(rows: Sequence[Row]) -> str:
    """One line per (case, mode), one column per variant: p50 and its speed over stock. The
    clone's cell repeats on every line of its case."""
    variants = list(dict.fromkeys(r.variant for r in rows))
    by_key = {(r.case, r.variant, r.mode): r for r in rows}
    clones = {r.case: r for r in rows if r.role == ROOFLINE}
    keys = dict.fromkeys((r.case, r.mode) for r in rows if r.role != ROOFLINE)
    lines = []
    for case, mode in keys:
        cells = []
        for variant in variants:
            clone = clones.get(case)
            row = clone if clone is not None and clone.variant == variant else \
                by_key.get((case, variant, mode))
            cells.append(_cell(row))
        lines.append([case, mode, *cells])
    return markdown_table(["case", "mode", *variants], lines)


def pyimg_table(rows: Sequence[Row]) -> str:
    """pyimg's variants against stock, torch.compile and a same-size clone."""
    headers = ["op", "case", "mode", "variant", "p50", "spread", "x stock", "x compiled",
               "x clone"]
    lines = [[r.suite, r.case, r.mode, r.variant, time_text(r.p50_us), number(r.spread, ".0%"),
              ratio_text(r.vs_stock), ratio_text(r.vs_compiled), ratio_text(r.vs_clone)]
             for r in rows if r.role == PYIMG and not r.error]
    return markdown_table(headers, lines) if lines else "(no pyimg variant ran)"


# (header, how a row shows it); columns that are empty on every row are left out.
_COLUMNS = [
    ("suite", lambda r: r.suite),
    ("case", lambda r: r.case),
    ("variant", lambda r: r.variant),
    ("mode", lambda r: r.mode),
    ("n", lambda r: number(r.n, "d")),
    ("p50", lambda r: time_text(r.p50_us)),
    ("p90", lambda r: time_text(r.p90_us)),
    ("p99", lambda r: time_text(r.p99_us)),
    ("spread", lambda r: number(r.spread, ".0%")),
    ("first call", lambda r: time_text(r.first_call_us)),
    ("peak MB", lambda r: number(None if r.peak_memory_bytes is None
                                 else r.peak_memory_bytes / 1e6, ".1f")),
    ("GB/s", lambda r: number(r.gbps, ".1f")),
    ("TFLOP/s", lambda r: number(r.tflops, ".2f")),
    ("fps", lambda r: number(r.fps, ".2f")),
    ("MP/s", lambda r: number(r.mpps, ".2f")),
    ("x stock", lambda r: ratio_text(r.vs_stock)),
    ("x compiled", lambda r: ratio_text(r.vs_compiled)),
    ("x clone", lambda r: ratio_text(r.vs_clone)),
    ("other load", lambda r: number(r.other_load, ".2f")),
    ("graph breaks", lambda r: number(r.graph_breaks, "d")),
    ("error", lambda r: r.error or "-"),
]


def rows_table(rows: Sequence[Row]) -> str:
    cells = [[show(r) for _, show in _COLUMNS] for r in rows]
    keep = [i for i in range(len(_COLUMNS)) if i < 4 or any(line[i] != "-" for line in cells)]
    return markdown_table([_COLUMNS[i][0] for i in keep], [[line[i] for i in keep]
                                                           for line in cells])
