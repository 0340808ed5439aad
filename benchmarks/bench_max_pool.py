"""max_pool2d_with_indices and max_unpool2d: pyimg's backends (flat int64 and compact uint8
indices) beside stock PyTorch, with a clone of the op's output as the roofline, in one run.

    python benchmarks/bench_max_pool.py [--device cpu|cuda] [--quick] [--reuse-memory] [--out DIR]

Writes max_pool_<device>.md and .csv to --out (default benchmarks/results) and prints the
summary table. Shapes: SegNet's 2x2 / 2 pool and its unpool (Badrinarayanan et al. 2017);
"(8,64,128,128)" names the pool's input and the unpool's output. Cases: pool, unpool, the
pool -> unpool pair (also as torch.compile of the stock pair), and the unpool's backward
alone (the gradient of its input, from a graph built once).

On the CPU a fresh 32 MB output (the unpool's, and the clone's) comes from mmap on every call,
and faulting its pages in costs more than the op itself on a small VM; --reuse-memory sets
glibc's mmap threshold so freed buffers are reused, timing the kernels without that floor.
"""

import argparse
import ctypes
import sys
from dataclasses import dataclass
from pathlib import Path

# pyimg is imported from this checkout (built in place, not installed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import timing
import torch
import torch.nn.functional as F

import pyimg

OP = "max_pool"
PYIMG_BACKENDS = {"cuda": ("cuda", "triton"), "cpu": ("cpu",)}


@dataclass(frozen=True)
class Case:
    op: str  # "pool", "unpool", "pair" (pool, then unpool) or "unpool backward"
    shape: tuple[int, int, int, int]  # the full-resolution tensor (pool in, unpool out)
    dtype: torch.dtype
    channels_last: bool

    @property
    def name(self) -> str:
        layout = "CL" if self.channels_last else "NCHW"
        return f"{self.op} {'x'.join(map(str, self.shape))} {str(self.dtype)[6:]} {layout}"

    def bytes_moved(self, compact: bool) -> int:
        """Full tensor read (pool) or written (unpool; its gradient read by the backward),
        plus the pooled values and indices; twice that for the pair."""
        n, c, h, w = self.shape
        full = n * c * h * w * self.dtype.itemsize
        pooled = full // 4
        indices = n * c * h * w // 4 * (1 if compact else 8)
        return (2 if self.op == "pair" else 1) * (full + pooled + indices)


CPU_CASES = [
    *(Case(op, (8, 64, 128, 128), torch.float32, cl)
      for op in ("pool", "unpool") for cl in (False, True)),
    Case("pair", (8, 64, 128, 128), torch.float32, False),
    Case("unpool backward", (8, 64, 128, 128), torch.float32, False),
]
GPU_CASES = [
    *(Case(op, (8, 64, 256, 256), dtype, cl) for op in ("pool", "unpool", "pair")
      for dtype in (torch.float32, torch.float16) for cl in (False, True)),
    Case("unpool", (8, 512, 32, 32), torch.float32, False),
    *(Case("unpool backward", (8, 64, 256, 256), dtype, False)
      for dtype in (torch.float32, torch.float16)),
]


def bench_case(case: Case, device: torch.device, backends, settings) -> list[timing.Result]:
    x = torch.randn(case.shape, dtype=case.dtype, device=device)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y, flat = F.max_pool2d(x, 2, 2, return_indices=True)
    _, taps = pyimg.ops.max_pool2d_with_indices(x, 2, 2, compact=True)

    def stock_pair(x):
        pooled, indices = F.max_pool2d(x, 2, 2, return_indices=True)
        return F.max_unpool2d(pooled, indices, 2, 2)

    def ours_pair(x, compact):
        pooled, indices = pyimg.ops.max_pool2d_with_indices(x, 2, 2, compact=compact)
        return pyimg.ops.max_unpool2d(pooled, indices, 2, 2)

    def unpool_backward(unpool, indices):
        y_leaf = y.detach().requires_grad_()
        out = unpool(y_leaf, indices)
        grad = torch.randn_like(out)
        return lambda: torch.autograd.grad(out, y_leaf, grad, retain_graph=True)

    stock_ops = {
        "pool": lambda: F.max_pool2d(x, 2, 2, return_indices=True),
        "unpool": lambda: F.max_unpool2d(y, flat, 2, 2),
        "pair": lambda: stock_pair(x),
        "unpool backward": lambda: unpool_backward(
            lambda v, i: F.max_unpool2d(v, i, 2, 2), flat),
    }

    def ours(backend: str, compact: bool):
        indices = taps if compact else flat

        def run():
            with pyimg.use_backend(backend):
                if case.op == "pool":
                    return pyimg.ops.max_pool2d_with_indices(x, 2, 2, compact=compact)
                if case.op == "pair":
                    return ours_pair(x, compact)
                return pyimg.ops.max_unpool2d(y, indices, 2, 2)

        if case.op != "unpool backward":
            return run
        with pyimg.use_backend(backend):
            return unpool_backward(lambda v, i: pyimg.ops.max_unpool2d(v, i, 2, 2), indices)

    stock = stock_ops[case.op]
    if case.op == "unpool backward":
        stock = stock()
    mode = "backward" if case.op == "unpool backward" else "forward"
    copy_bytes = 2 * x.numel() * x.element_size()
    results = [timing.measure(case.name, timing.ROOFLINE, "copy", copy_bytes,
                              lambda: timing.time_on(device, x.clone, settings)),
               timing.measure(case.name, "stock", mode, case.bytes_moved(False),
                              lambda: timing.time_on(device, stock, settings))]
    if case.op == "pair":
        torch._dynamo.reset()
        compiled = torch.compile(stock_pair, dynamic=False)
        results.append(timing.measure(case.name, "compiled", mode, case.bytes_moved(False),
                                      lambda: timing.time_on(device, lambda: compiled(x),
                                                             settings)))
    for backend in backends:
        for compact in (False, True):
            provider = f"pyimg {backend}{' compact' if compact else ''}"
            results.append(timing.measure(
                case.name, provider, mode, case.bytes_moved(compact),
                lambda b=backend, c=compact: timing.time_on(device, ours(b, c), settings)))
    return results


def _reuse_freed_memory() -> None:
    """glibc: serve large allocations from the heap and never trim it (mallopt's
    M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 1 << 30)
    libc.mallopt(-1, 1 << 31)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reuse-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.reuse_memory:
        _reuse_freed_memory()
    device = torch.device(args.device)
    settings = timing.QUICK if args.quick else timing.Settings()
    backends, _ = timing.pyimg_backends(PYIMG_BACKENDS[device.type], device)
    cases = GPU_CASES if device.type == "cuda" else CPU_CASES
    results = []
    for case in cases[:2] if args.quick else cases:
        results += bench_case(case, device, backends, settings)
    env = timing.environment(device)
    rows = timing.derived(results, ("stock",))
    providers = [timing.ROOFLINE, "stock", "compiled",
                 *(f"pyimg {b}{s}" for b in backends for s in ("", " compact"))]
    summary = timing.summary_table(rows, providers)
    op = f"{OP}_reuse_memory" if args.reuse_memory else OP
    md, csv_path = timing.result_paths(args.out, op, env)
    timing.write_text(md, "\n\n".join([
        f"# {op}{' (quick)' * args.quick}", timing.environment_lines(env),
        f"pyimg build: {pyimg.build_info}",
        "p50 us (fraction of the clone's bandwidth); MB counts the full tensor, the pooled "
        "values and the indices (int64, or uint8 for compact).",
        summary, timing.results_table(rows, ("stock",)), ""]))
    timing.write_csv(csv_path, env, rows)
    print(summary)


if __name__ == "__main__":
    main()
