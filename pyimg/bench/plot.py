"""The report as a PNG: per (case, mode), each variant's speed relative to stock as a bar,
its whiskers the interquartile range, the device, versions and date in the title."""

import io

from pyimg.bench.results import ROOFLINE

_MAX_LABEL = 60


def _groups(rows):
    """[(label, [(variant, speed, low, high), ...])] for every case and mode with a stock."""
    stock = {(r.suite, r.case, r.mode): r for r in rows if r.role == "stock" and r.p50_us}
    groups = {}
    for r in rows:
        base = stock.get((r.suite, r.case, r.mode))
        if base is None or r.p50_us is None or r.role == ROOFLINE:
            continue
        label = f"{r.suite}: {r.case} {r.mode}"
        if len(label) > _MAX_LABEL:
            label = label[:_MAX_LABEL - 3] + "..."
        speed = base.p50_us / r.p50_us
        groups.setdefault(label, []).append(
            (r.variant, speed, base.p50_us / r.p75_us, base.p50_us / r.p25_us))
    return list(groups.items())


def plot_png(report) -> bytes | None:
    """The PNG's bytes, or None when no case has both a stock variant and another."""
    groups = [(label, bars) for label, bars in _groups(report.rows) if len(bars) > 1]
    if not groups:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    variants = list(dict.fromkeys(v for _, bars in groups for v, *_ in bars))
    colors = {v: plt.get_cmap("tab10")(i % 10) for i, v in enumerate(variants)}
    height = 0.8 / len(variants)
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.28 * len(variants) * len(groups)))
    extent = 1.0
    for g, (_, bars) in enumerate(groups):
        for variant, speed, low, high in bars:
            y = g + (variants.index(variant) - (len(variants) - 1) / 2) * height
            # Bars grow from 1 (stock's speed): right for faster, left for slower.
            ax.barh(y, speed - 1.0, height, left=1.0, color=colors[variant],
                    xerr=[[max(0.0, speed - low)], [max(0.0, high - speed)]], capsize=2)
            extent = max(extent, high, 1.0 / low)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(groups)), [label for label, _ in groups], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log", base=2)
    ax.set_xlim(1.0 / (extent * 1.15), extent * 1.15)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    ax.set_xlabel("speed relative to stock (stock p50 / p50; right of 1 is faster; "
                  "whiskers: interquartile range)")
    env = report.environment
    ax.set_title(f"{report.title}\n{env.device}; torch {env.torch}, triton {env.triton}, "
                 f"CUDA {env.cuda}; {env.date}", fontsize=9)
    ax.legend(handles=[Patch(color=colors[v], label=v) for v in variants],
              fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
