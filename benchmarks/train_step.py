"""One training step (forward, loss, backward, optimizer step) of whole zoo models: pyimg's
fused modules against the same model on stock modules (``pyimg.use_backend("torch")``),
each eager and under torch.compile, in one run, timed interleaved by pyimg bench's timer.

    python benchmarks/train_step.py [--device cpu|cuda] [--quick] [--out DIR]

Models: SRResNet x4 (MSE, Adam; LR crops as in the SRGAN paper) and SegNet (cross-entropy,
SGD with momentum). Writes train_step_<device>.md, .csv and .json to --out (default
benchmarks/results; train_step_quick_<device> with --quick) and prints a summary.
"""

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

# pyimg is imported from this checkout (built in place, not installed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F

import pyimg
from pyimg.bench import runner, timer
from pyimg.bench.environment import environment
from pyimg.bench.report import Report, default_stem
from pyimg.bench.results import COMPILED, PYIMG, STOCK, Variant
from pyimg.bench.script import application_parser
from pyimg.models import SegNet, SRResNet

MODE = "train step"
# (variant, pyimg backend forced while it runs (None: pyimg's own), compiled, role)
VARIANTS = (("stock eager", "torch", False, STOCK), ("stock compiled", "torch", True, COMPILED),
            ("pyimg eager", None, False, PYIMG), ("pyimg compiled", None, True, PYIMG))
SLOW_STEP = timer.Settings(warmup_s=1.0, seconds_per_variant=8.0, min_samples=3,
                           max_samples=20, rounds=3)
QUICK_STEP = timer.Settings(warmup_s=0.0, seconds_per_variant=1.0, min_samples=2,
                            max_samples=5, rounds=2)


@dataclass(frozen=True)
class Case:
    model: str
    batch: int
    size: int          # input side: LR pixels for SRResNet, image pixels for SegNet
    channels_last: bool

    @property
    def name(self) -> str:
        layout = "CL" if self.channels_last else "NCHW"
        return f"{self.batch}x3x{self.size}x{self.size} {layout}"


CASES = {
    "cpu": [Case("SRResNet", 4, 24, False), Case("SegNet", 2, 96, False),
            Case("SRResNet", 4, 24, True), Case("SegNet", 2, 96, True)],
    "cuda": [Case("SRResNet", 16, 24, False), Case("SegNet", 4, 360, False),
             Case("SRResNet", 16, 24, True), Case("SegNet", 4, 360, True)],
}
QUICK_CASES = {"cpu": [Case("SRResNet", 1, 12, False), Case("SegNet", 1, 32, False)],
               "cuda": [Case("SRResNet", 4, 24, False), Case("SegNet", 2, 128, False)]}


def make_step(case: Case, device: torch.device, compiled: bool):
    """A closure running one training step of a fresh model (seeded: every variant trains
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


def on_backend(backend: str | None, fn):
    """fn run with pyimg's ops forced to ``backend`` (None: pyimg's automatic choice)."""
    def call():
        with pyimg.use_backend(backend):
            return fn()

    return call


def variants(case: Case, device: torch.device) -> list[Variant]:
    return [Variant(name, on_backend(backend, make_step(case, device, compiled)), MODE, role,
                    images=case.batch)
            for name, backend, compiled, role in VARIANTS]


def main() -> int:
    args = application_parser(__doc__.splitlines()[0], __file__).parse_args()
    device = runner.resolve_device(args.device, None)
    env = environment(device)
    settings = QUICK_STEP if args.quick else SLOW_STEP
    notes = [
        "stock: the zoo model with pyimg.use_backend('torch') (every pyimg module on stock "
        "PyTorch ops); pyimg: the same model on pyimg's kernels. compiled: torch.compile of the "
        "model (default mode); the loss, backward and optimizer step stay eager. One step: "
        "zero_grad, forward, loss, backward, optimizer step; fps: images per second.",
        timer.method_note(device, settings),
    ]
    report = Report("models", f"One training step{' (quick)' * args.quick}", env,
                    asdict(settings), notes)
    jobs = [runner.Job(case.model, case.name, lambda case=case: variants(case, device),
                       flush_l2=False)
            for case in (QUICK_CASES if args.quick else CASES)[device.type]]
    options = runner.RunOptions(quick=args.quick, settings=settings, out_dir=args.out,
                                plot=False)
    runner.run(report, jobs, device, options, default_stem("train_step", env, args.quick))
    return 1 if any(r.error and r.role == PYIMG for r in report.rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
