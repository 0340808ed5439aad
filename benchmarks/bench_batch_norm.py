"""BatchNorm2d + PReLU: pyimg.nn.BatchNormPReLU beside the stock module pair (eager and
torch.compile), with a clone of the same input as the roofline, in one run.

    python benchmarks/bench_batch_norm.py [--device cpu|cuda] [--quick] [--out DIR]
    pyimg bench ops batch_norm --shape "16x64x96x96 fp32 CL"

Modes: eval (running statistics, no grad), train (batch statistics and the running-statistics
update, no grad), train+backward (forward and the gradients of x and every parameter).
"""

import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

# pyimg is imported from this checkout (built in place, not installed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn

import pyimg
from pyimg.bench import OpSuite, Variant, script_main
from pyimg.bench.suite import SHORT_DTYPE, clone_variant, on_backend

MODES = ("eval", "train", "train+backward")


@dataclass(frozen=True)
class Case:
    shape: tuple[int, int, int, int]
    dtype: torch.dtype = torch.float32
    channels_last: bool = False

    @property
    def name(self) -> str:
        layout = "CL" if self.channels_last else "NCHW"
        return f"{'x'.join(map(str, self.shape))} {SHORT_DTYPE[self.dtype]} {layout}"

    def bytes_moved(self, mode: str) -> int:
        """The least traffic: eval reads x and writes y; train reads x once more for the
        statistics; the backward reads g and x twice (sums, then grad_x) and writes grad_x."""
        n, c, h, w = self.shape
        return {"eval": 2, "train": 3, "train+backward": 8}[mode] * n * c * h * w * \
            self.dtype.itemsize


CPU_CASES = [Case((16, 64, 96, 96), torch.float32, cl) for cl in (False, True)]
GPU_CASES = [
    *(Case((16, 64, 96, 96), torch.float32, cl) for cl in (False, True)),
    *(Case((8, 64, 270, 480), torch.float16, cl) for cl in (False, True)),
]


def case_from_spec(spec) -> Case:
    if len(spec.shape) != 4:
        raise ValueError(f"batch_norm takes an NxCxHxW shape, not {spec.shape}")
    return Case(spec.shape, spec.dtype or torch.float32, bool(spec.channels_last))


def timed_call(module: nn.Module, x: torch.Tensor, mode: str):
    """The call for mode; it sets train/eval itself, as the modes' variants interleave."""
    training = mode != "eval"
    if mode != "train+backward":
        def no_grad():
            module.train(training)
            with torch.no_grad():
                return module(x)

        return no_grad
    parameters = list(module.parameters())
    xg = x.detach().requires_grad_(True)
    grad = torch.randn_like(x)

    def forward_backward():
        module.train(training)
        return torch.autograd.grad(module(xg), [xg, *parameters], grad)

    return forward_backward


def variants(case: Case, context) -> list[Variant]:
    x = torch.randn(case.shape, dtype=case.dtype, device=context.device)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    c = case.shape[1]
    stock = nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(c), prelu=nn.PReLU(c)))
    stock = stock.to(device=context.device, dtype=case.dtype)
    fused = pyimg.nn.BatchNormPReLU.from_modules(stock.bn, stock.prelu)
    result = [clone_variant(x)]
    compiled = context.compiled(stock) if context.compile else None
    for mode in MODES:
        providers = [("eager", "stock", timed_call(stock, x, mode))]
        if compiled is not None:
            providers.append(("compiled", "compiled", timed_call(compiled, x, mode)))
        providers += [(f"pyimg {b}", "pyimg", on_backend(b, timed_call(fused, x, mode)))
                      for b in context.backends]
        result += [Variant(name, fn, mode, role, bytes=case.bytes_moved(mode))
                   for name, role, fn in providers]
    return result


SUITE = OpSuite(
    name="batch_norm",
    description="BatchNorm2d + PReLU fused, eval, train and train+backward",
    cases={"cpu": {"default": CPU_CASES, "quick": CPU_CASES[:1]},
           "cuda": {"default": GPU_CASES, "quick": GPU_CASES[3:]}},
    variants=variants,
    case_from_spec=case_from_spec,
    notes=("eager: nn.Sequential(nn.BatchNorm2d, nn.PReLU(C)); pyimg: nn.BatchNormPReLU with "
           "the same weights; compiled: torch.compile of the stock pair.",),
)

if __name__ == "__main__":
    sys.exit(script_main(__file__))
