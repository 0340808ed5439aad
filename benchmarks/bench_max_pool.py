"""max_pool2d_with_indices and max_unpool2d: pyimg's backends (flat int64 and compact uint8
indices) beside stock PyTorch (eager and torch.compile), with a clone of the full-resolution
tensor as the roofline, in one run.

    python benchmarks/bench_max_pool.py [--device cpu|cuda] [--quick] [--reuse-memory] [--out DIR]
    pyimg bench ops max_pool --shape "unpool 8x64x128x128 CL" [--shape "pair 8x64x64x64"]

Shapes: SegNet's 2x2 / 2 pool and its unpool (Badrinarayanan et al. 2017); the shape names
the pool's input and the unpool's output. Cases: pool, unpool, the pool -> unpool pair, and
the unpool's backward alone (the gradient of its input, from a graph built once).

On the CPU a fresh 32 MB output (the unpool's, and the clone's) comes from mmap on every call,
and faulting its pages in costs more than the op itself on a small VM; --reuse-memory sets
glibc's mmap threshold so freed buffers are reused, timing the kernels without that floor.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

# pyimg is imported from this checkout (built in place, not installed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F

import pyimg
from pyimg.bench import OpSuite, Variant, script_main
from pyimg.bench.suite import SHORT_DTYPE, clone_variant, on_backend, timed_call

OPS = ("pool", "unpool", "pair", "unpool backward")


@dataclass(frozen=True)
class Case:
    op: str  # one of OPS
    shape: tuple[int, int, int, int]  # the full-resolution tensor (pool in, unpool out)
    dtype: torch.dtype = torch.float32
    channels_last: bool = False

    @property
    def name(self) -> str:
        layout = "CL" if self.channels_last else "NCHW"
        return f"{self.op} {'x'.join(map(str, self.shape))} {SHORT_DTYPE[self.dtype]} {layout}"

    @property
    def mode(self) -> str:
        return "backward" if self.op == "unpool backward" else "no-grad"

    def bytes_moved(self, compact: bool) -> int:
        """Full tensor read (pool) or written (unpool; its gradient read by the backward),
        plus the pooled values and indices; twice that for the pair."""
        n, c, h, w = self.shape
        full = n * c * h * w * self.dtype.itemsize
        indices = n * c * h * w // 4 * (1 if compact else 8)
        return (2 if self.op == "pair" else 1) * (full + full // 4 + indices)


CPU_CASES = [
    *(Case(op, (8, 64, 128, 128), torch.float32, cl)
      for op in ("pool", "unpool") for cl in (False, True)),
    Case("pair", (8, 64, 128, 128)),
    Case("unpool backward", (8, 64, 128, 128)),
]
GPU_CASES = [
    *(Case(op, (8, 64, 256, 256), dtype, cl) for op in ("pool", "unpool", "pair")
      for dtype in (torch.float32, torch.float16) for cl in (False, True)),
    Case("unpool", (8, 512, 32, 32)),
    *(Case("unpool backward", (8, 64, 256, 256), dtype)
      for dtype in (torch.float32, torch.float16)),
]
GPU_QUICK = [Case(op, (8, 64, 256, 256), torch.float16, op != "unpool backward")
             for op in ("pool", "unpool", "unpool backward")]


def case_from_spec(spec) -> Case:
    op = " ".join(w for w in spec.words if w in ("pool", "unpool", "pair", "backward"))
    if op not in OPS:
        raise ValueError(f"max_pool: name the op, one of {OPS} (got {' '.join(spec.words)!r})")
    if len(spec.shape) != 4 or spec.shape[2] % 2 or spec.shape[3] % 2:
        raise ValueError(f"max_pool: an NxCxHxW shape with even H and W, not {spec.shape}")
    return Case(op, spec.shape, spec.dtype or torch.float32, bool(spec.channels_last))


def variants(case: Case, context) -> list[Variant]:
    x = torch.randn(case.shape, dtype=case.dtype, device=context.device)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    pooled, flat = F.max_pool2d(x, 2, 2, return_indices=True)
    taps = pyimg.ops.max_pool2d_with_indices(x, 2, 2, compact=True)[1] if context.backends \
        else None

    def stock(inp):
        if case.op == "pool":
            return F.max_pool2d(inp, 2, 2, return_indices=True)
        if case.op == "pair":
            return F.max_unpool2d(*F.max_pool2d(inp, 2, 2, return_indices=True), 2, 2)
        return F.max_unpool2d(inp, flat, 2, 2)

    def ours(compact: bool):
        def run(inp):
            if case.op == "pool":
                return pyimg.ops.max_pool2d_with_indices(inp, 2, 2, compact=compact)
            if case.op == "pair":
                return pyimg.ops.max_unpool2d(
                    *pyimg.ops.max_pool2d_with_indices(inp, 2, 2, compact=compact), 2, 2)
            return pyimg.ops.max_unpool2d(inp, taps if compact else flat, 2, 2)

        return run

    providers = [("eager", "stock", stock, False)]
    if context.compile:
        providers.append(("compiled", "compiled", context.compiled(stock), False))
    providers += [(f"pyimg {b}{' compact' * compact}", "pyimg", on_backend(b, ours(compact)),
                   compact) for b in context.backends for compact in (False, True)]
    inp = x if case.op in ("pool", "pair") else pooled
    return [clone_variant(x)] + [
        Variant(name, timed_call(fn, inp, case.mode), case.mode, role,
                bytes=case.bytes_moved(compact))
        for name, role, fn, compact in providers]


SUITE = OpSuite(
    name="max_pool",
    description="2x2 max pool with indices, max unpool, their pair, the unpool's backward",
    cases={"cpu": {"default": CPU_CASES, "quick": [CPU_CASES[0], CPU_CASES[2]]},
           "cuda": {"default": GPU_CASES, "quick": GPU_QUICK}},
    variants=variants,
    case_from_spec=case_from_spec,
    notes=("MB counts the full tensor, the pooled values and the indices (int64, or uint8 "
           "for compact); compiled: torch.compile of the stock function.",),
)

if __name__ == "__main__":
    sys.exit(script_main(__file__))
