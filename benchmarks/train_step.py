"""One training step (forward, loss, backward, optimizer step) of whole zoo models: pyimg's
fused modules against the same model on stock modules (``pyimg.use_backend("torch")``),
each eager and under torch.compile, in one run.

    python benchmarks/train_step.py [--device cpu|cuda] [--quick] [--out DIR]

Models: SRResNet x4 (MSE, Adam; LR crops as in the SRGAN paper) and SegNet (cross-entropy,
SGD with momentum). Writes train_step_<device>.md and .csv to --out (default
benchmarks/results) and prints a summary.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

# pyimg is imported from this checkout (built in place, not installed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import timing
import torch
import torch.nn.functional as F

import pyimg
from pyimg.models import SegNet, SRResNet

OP = "train_step"
PROVIDERS = ("stock eager", "stock compiled", "pyimg eager", "pyimg compiled")
BASELINES = ("stock eager", "stock compiled")
SLOW_STEP = timing.Settings(cpu_warmup=1, cpu_budget_s=8.0, cpu_min_repeats=3,
                            cpu_max_repeats=20, gpu_warmup_ms=200, gpu_rep_ms=1000)
QUICK_STEP = timing.Settings(cpu_warmup=1, cpu_budget_s=1.0, cpu_min_repeats=2,
                             cpu_max_repeats=5, cpu_max_wait_s=0.0, cpu_attempts=1,
                             gpu_warmup_ms=50, gpu_rep_ms=200)


@dataclass(frozen=True)
class Case:
    model: str
    batch: int
    size: int          # input side: LR pixels for SRResNet, image pixels for SegNet
    channels_last: bool

    @property
    def name(self) -> str:
        layout = "CL" if self.channels_last else "NCHW"
        return f"{self.model} {self.batch}x3x{self.size}x{self.size} {layout}"


CASES = {
    "cpu": [Case("SRResNet", 4, 24, False), Case("SegNet", 2, 96, False),
            Case("SRResNet", 4, 24, True), Case("SegNet", 2, 96, True)],
    "cuda": [Case("SRResNet", 16, 24, False), Case("SegNet", 4, 360, False),
             Case("SRResNet", 16, 24, True), Case("SegNet", 4, 360, True)],
}
QUICK_CASES = {"cpu": [Case("SRResNet", 1, 12, False), Case("SegNet", 1, 32, False)],
               "cuda": [Case("SRResNet", 4, 24, False), Case("SegNet", 2, 128, False)]}


def make_step(case: Case, device: torch.device, compiled: bool):
    """A closure running one training step of a fresh model (seeded: every provider trains
    the same weights on the same batch)."""
    torch.manual_seed(0)
    fmt = torch.channels_last if case.channels_last else torch.contiguous_format
    x = torch.rand(case.batch, 3, case.size, case.size, device=device).contiguous(
        memory_format=fmt)
    if case.model == "SRResNet":
        model = SRResNet(upscale_factor=4).to(device)
        target = torch.rand(case.batch, 3, 4 * case.size, 4 * case.size, device=device)
        loss_fn = F.mse_loss
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    else:
        model = SegNet(num_classes=11).to(device)
        target = torch.randint(0, 11, (case.batch, case.size, case.size), device=device)
        loss_fn = F.cross_entropy
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model = model.to(memory_format=fmt).train()
    forward = torch.compile(model) if compiled else model

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(forward(x), target)
        loss.backward()
        optimizer.step()
        return loss

    return step


def run_case(case: Case, provider: str, device: torch.device, settings) -> timing.Result:
    backend = "torch" if provider.startswith("stock") else None

    def timer():
        with pyimg.use_backend(backend):
            step = make_step(case, device, provider.endswith("compiled"))
            return timing.time_on(device, step, settings)

    return timing.measure(case.name, provider, "train step", 0, timer)


def summary(rows) -> str:
    by_key = {(r["case"], r["provider"]): r for r in rows}
    lines = []
    for case in dict.fromkeys(r["case"] for r in rows):
        cells = []
        for provider in PROVIDERS:
            row = by_key.get((case, provider))
            cells.append("failed" if row is None or row["error"] else f"{row['p50_us'] / 1e3:.1f}")
        pyimg_eager = by_key.get((case, "pyimg eager"))
        ratios = [timing._fmt(pyimg_eager.get(f"vs_{b}") if pyimg_eager else None, ".2f")
                  for b in BASELINES]
        lines.append([case, *cells, *ratios])
    headers = ["case", *(f"{p} ms" for p in PROVIDERS),
               *(f"pyimg eager x {b}" for b in BASELINES)]
    return timing.markdown_table(headers, lines)


def main() -> int:
    args = timing.argument_parser(__doc__.splitlines()[0]).parse_args()
    device = torch.device(args.device)
    env = timing.environment(device)
    settings = QUICK_STEP if args.quick else SLOW_STEP
    cases = (QUICK_CASES if args.quick else CASES)[device.type]
    results = []
    for case in cases:
        for provider in PROVIDERS:
            result = run_case(case, provider, device, settings)
            print(f"{case.name:36} {provider:15} "
                  + (result.error or f"p50 {result.p50_us / 1e3:9.1f} ms"), flush=True)
            results.append(result)
    rows = timing.derived(results, BASELINES)
    table = summary(rows)
    notes = [
        "stock: the zoo model with pyimg.use_backend('torch') (every pyimg module on stock "
        "PyTorch ops); pyimg: the same model on pyimg's kernels. compiled: torch.compile of the "
        "model (default mode); the loss, backward and optimizer step stay eager. One step: "
        "zero_grad, forward, loss, backward, optimizer step. Times: p20/p50/p80 of the wall "
        "clock (CPU) or CUDA events (GPU); x <baseline>: the baseline's p50 over this row's.",
        f"torch threads: {torch.get_num_threads()}",
    ]
    timing.write_report(args.out, OP, args.quick, env, [], notes,
                        "p50 ms per training step", table, rows, BASELINES)
    return timing.finish(args.out, OP, env, table, results)


if __name__ == "__main__":
    raise SystemExit(main())
