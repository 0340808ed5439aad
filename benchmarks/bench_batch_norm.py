"""BatchNorm2d + PReLU: pyimg.nn.BatchNormPReLU beside the stock module pair (eager), with a
clone of the same input as the roofline, in one run.

    python benchmarks/bench_batch_norm.py [--device cpu|cuda] [--quick] [--out DIR]

Modes: eval (running statistics, no grad), train (batch statistics and the running-statistics
update, no grad), train+backward (forward and the gradients of x and every parameter). Writes
batch_norm_<device>.md and .csv to --out (default benchmarks/results) and prints a summary.
"""

import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

# pyimg is imported from this checkout (built in place, not installed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import timing
import torch
from torch import nn

import pyimg

OP = "batch_norm"
STOCK = "eager"
MODES = ("eval", "train", "train+backward")
PYIMG_BACKENDS = {"cuda": ("cuda", "triton"), "cpu": ("cpu",)}
SHORT_DTYPE = {torch.float16: "fp16", torch.float32: "fp32"}


@dataclass(frozen=True)
class Case:
    shape: tuple[int, int, int, int]
    dtype: torch.dtype
    channels_last: bool

    @property
    def name(self) -> str:
        layout = "CL" if self.channels_last else "NCHW"
        return f"{'x'.join(map(str, self.shape))} {SHORT_DTYPE[self.dtype]} {layout}"

    def bytes_moved(self, mode: str) -> int:
        """The least traffic: eval reads x and writes y; train reads x once more for the
        statistics; the backward reads g and x twice (sums, then grad_x) and writes grad_x."""
        n, c, h, w = self.shape
        data = n * c * h * w * self.dtype.itemsize
        return {"copy": 2, "eval": 2, "train": 3, "train+backward": 8}[mode] * data


CPU_CASES = [Case((16, 64, 96, 96), torch.float32, cl) for cl in (False, True)]
GPU_CASES = [
    *(Case((16, 64, 96, 96), torch.float32, cl) for cl in (False, True)),
    *(Case((8, 64, 270, 480), torch.float16, cl) for cl in (False, True)),
]


def modules(case: Case, device: torch.device, backends):
    """The stock pair and, per pyimg backend, the fused module with the same weights."""
    c = case.shape[1]
    stock = nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(c), prelu=nn.PReLU(c)))
    stock = stock.to(device=device, dtype=case.dtype)
    fused = pyimg.nn.BatchNormPReLU.from_modules(stock.bn, stock.prelu)
    providers = {STOCK: stock}
    providers.update({f"pyimg {b}": (b, fused) for b in backends})
    return providers


def timed_call(module: nn.Module, backend: str | None, x: torch.Tensor, mode: str):
    module.train(mode != "eval")
    params = list(module.parameters())

    def forward(inp):
        with pyimg.use_backend(backend):
            return module(inp)

    if mode != "train+backward":
        def no_grad():
            with torch.no_grad():
                return forward(x)

        return no_grad
    xg = x.detach().requires_grad_(True)
    grad = torch.randn_like(x)
    return lambda: torch.autograd.grad(forward(xg), [xg, *params], grad)


def bench_case(case: Case, device: torch.device, backends, settings):
    x = torch.randn(case.shape, dtype=case.dtype, device=device)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    results = [timing.measure(case.name, timing.ROOFLINE, "copy", case.bytes_moved("copy"),
                              lambda: timing.time_on(device, x.clone, settings))]
    for provider, entry in modules(case, device, backends).items():
        backend, module = entry if isinstance(entry, tuple) else (None, entry)
        for mode in MODES:
            results.append(timing.measure(
                case.name, provider, mode, case.bytes_moved(mode),
                lambda m=module, b=backend, mode=mode: timing.time_on(
                    device, timed_call(m, b, x, mode), settings),
            ))
    return results


def write_report(out: Path, quick: bool, settings, env, backends, skipped, results) -> str:
    rows = timing.derived(results, (STOCK,))
    providers = [timing.ROOFLINE, STOCK, *(f"pyimg {b}" for b in backends)]
    summary = timing.summary_table(rows, providers, settings.cpu_quiet_load)
    notes = [
        "eager: nn.Sequential(nn.BatchNorm2d, nn.PReLU(C)); pyimg: nn.BatchNormPReLU with the "
        "same weights. Times are p20/p50/p80 (GPU: CUDA events, L2 flushed; CPU: wall clock). "
        "x eager: the stock p50 over this row's (above 1: this row is faster). of clone: GB/s "
        "over x.clone()'s in the same case.",
    ]
    timing.write_report(out, OP, quick, env, skipped, notes,
                        "p50 us (of clone; * other processes were busy)", summary, rows, (STOCK,))
    return summary


def main() -> int:
    args = timing.argument_parser(__doc__.split("\n\n")[0]).parse_args()

    device = torch.device(args.device)
    cases = GPU_CASES if device.type == "cuda" else CPU_CASES
    cases = cases[:1] if args.quick else cases
    settings = timing.QUICK if args.quick else timing.Settings()
    backends, skipped = timing.pyimg_backends(PYIMG_BACKENDS[device.type], device)
    env = timing.environment(device)
    print(timing.environment_lines(env), flush=True)

    results = []
    for case in cases:
        print(f"-- {case.name}", flush=True)
        results += bench_case(case, device, backends, settings)
        summary = write_report(args.out, args.quick, settings, env, backends, skipped, results)
    return timing.finish(args.out, OP, env, summary, results)


if __name__ == "__main__":
    sys.exit(main())
