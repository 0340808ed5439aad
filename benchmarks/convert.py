"""pyimg.convert on toolbox-style models (tests/convert/toolbox.py at benchmark widths): stock
against converted, eager and torch.compile'd, in one run, with how many patterns each
conversion fused.

    python benchmarks/convert.py [--device cpu|cuda] [--quick] [--no-compile] [--out DIR]

Modes: eval (no grad) and train+backward (training-mode forward, the gradients of the input and
every parameter). Writes convert_<device>.md and .csv to --out (default benchmarks/results)
and prints a summary.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

# pyimg is imported from this checkout (built in place, not installed); the models from tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import timing
import torch
from convert import toolbox

from pyimg.conversion import convert_with_report

OP = "convert"
STOCK = "stock eager"
MODES = ("eval", "train+backward")


@dataclass(frozen=True)
class Case:
    name: str
    build: object  # () -> nn.Module
    shape: tuple[int, int, int, int]

    @property
    def label(self) -> str:
        return f"{self.name} {'x'.join(map(str, self.shape))}"


CASES = [
    Case("EDSR", lambda: toolbox.EDSRLike(channels=64, blocks=8), (1, 3, 64, 64)),
    Case("MSRResNet", lambda: toolbox.MSRResNetLike(channels=64, blocks=8), (1, 3, 64, 64)),
    Case("RRDB", lambda: toolbox.RRDBLike(channels=32, blocks=2, growth=16), (1, 3, 64, 64)),
    Case("SRVGG", lambda: toolbox.SRVGGLike(channels=64, convs=16, scale=4), (1, 3, 64, 64)),
    Case("UNet", lambda: toolbox.UNetLike(channels=16), (2, 3, 128, 128)),
    Case("ResNet", lambda: toolbox.ResNetTrunk(width=32), (4, 3, 128, 128)),
]


def timed_call(model, x, mode: str):
    model.train(mode != "eval")
    if mode == "eval":
        def forward():
            with torch.no_grad():
                return model(x)

        return forward
    xg = x.detach().requires_grad_(True)
    params = list(model.parameters())

    def forward_backward():
        y = model(xg)
        return torch.autograd.grad(y, [xg, *params], torch.ones_like(y))

    return forward_backward


def bench_case(case: Case, device, settings, compile_: bool):
    torch.manual_seed(0)
    stock = case.build().to(device)
    converted, report = convert_with_report(stock)
    fused = len(report.fused)
    x = torch.rand(case.shape, device=device)
    providers = {STOCK: stock, "pyimg eager": converted}
    if compile_:
        providers["stock compiled"] = torch.compile(stock)
        providers["pyimg compiled"] = torch.compile(converted)
    nbytes = x.numel() * x.element_size()
    results = []
    for mode in MODES:
        for provider, model in providers.items():
            results.append(timing.measure(
                case.label, provider, mode, nbytes,
                lambda m=model, mode=mode: timing.time_on(device, timed_call(m, x, mode),
                                                          settings)))
    return results, fused, report


def summary(rows, fused: dict[str, int], providers) -> str:
    by_key = {(r["case"], r["provider"], r["mode"]): r for r in rows}
    keys = dict.fromkeys((r["case"], r["mode"]) for r in rows)
    lines = []
    for case, mode in keys:
        cells = []
        for provider in providers:
            row = by_key.get((case, provider, mode))
            if row is None or row["error"]:
                cells.append("-" if row is None else "failed")
            else:
                busy = " *" if (row["other_load"] or 0.0) > timing.Settings.cpu_quiet_load else ""
                cells.append(f"{row['p50_us'] / 1e3:.2f} (x{row[f'vs_{STOCK}']:.2f}){busy}")
        lines.append([case, str(fused[case]), mode, *cells])
    return timing.markdown_table(["model input", "fused", "mode", *providers], lines)


def main() -> int:
    parser = timing.argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--no-compile", action="store_true", help="eager providers only")
    args = parser.parse_args()
    device = torch.device(args.device)
    settings = timing.QUICK if args.quick else timing.Settings()
    cases = CASES[:2] if args.quick else CASES
    env = timing.environment(device)
    print(timing.environment_lines(env), flush=True)
    providers = [STOCK, "pyimg eager"] + ([] if args.no_compile else
                                          ["stock compiled", "pyimg compiled"])
    results, fused, reports = [], {}, []
    for case in cases:
        print(f"-- {case.label}", flush=True)
        case_results, fused[case.label], report = bench_case(case, device, settings,
                                                             not args.no_compile)
        results += case_results
        reports.append(f"### {case.name}\n\n```\n{report}\n```")
        table = write_report(args.out, args.quick, env, providers, results, fused, reports)
    return timing.finish(args.out, OP, env, table, results)


def write_report(out, quick: bool, env, providers, results, fused, reports) -> str:
    """The md and csv files of what was measured so far (rewritten after each model, so an
    interrupted run keeps its finished models); returns the summary table."""
    rows = timing.derived(results, (STOCK,))
    table = summary(rows, fused, providers)
    notes = [
        "Models: tests/convert/toolbox.py (EDSR(64 channels, 8 blocks), MSRResNet(64, 8), "
        "RRDB(32, 2 blocks, growth 16), SRVGG(64, 16 convs, x4), U-Net(16), ResNet/VGG trunk("
        "32)), weights as constructed. pyimg: pyimg.convert(model); compiled: torch.compile "
        "with its default backend, timed after warm-up (compilation excluded). Cells: p50 ms "
        "and, in brackets, stock eager's p50 over this one's (above 1: faster); fused: the "
        "patterns convert fused. * other processes used more than "
        f"{timing.Settings.cpu_quiet_load} cores meanwhile.",
        "## What convert did",
        *reports,
    ]
    timing.write_report(out, OP, quick, env, [], notes, "p50 ms (x stock eager)", table, rows,
                        (STOCK,))
    return table


if __name__ == "__main__":
    sys.exit(main())
