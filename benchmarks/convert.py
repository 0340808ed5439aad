"""pyimg.convert on toolbox-style models (tests/convert/toolbox.py at benchmark widths): stock
against converted, eager and torch.compile'd, in one run, timed interleaved by pyimg bench's
timer, with what each conversion fused.

    python benchmarks/convert.py [--device cpu|cuda] [--quick] [--no-compile] [--out DIR]

Modes: eval (no grad) and train+backward (training-mode forward, the gradients of the input and
every parameter). Writes convert_<device>.md, .csv and .json to --out (default
benchmarks/results; convert_quick_<device> with --quick) and prints a summary.
"""

import importlib.util
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

# pyimg is imported from this checkout (built in place, not installed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from pyimg.bench import runner, timer
from pyimg.bench.environment import environment
from pyimg.bench.report import Report, default_stem
from pyimg.bench.results import COMPILED, PYIMG, STOCK, Variant
from pyimg.bench.script import application_parser
from pyimg.conversion import convert_with_report


def _load_toolbox():
    """tests/convert/toolbox.py, loaded by its path: ``from convert import toolbox`` finds
    this very script first (tests/convert/ has no __init__.py, and a module beats a folder)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "convert" / "toolbox.py"
    spec = importlib.util.spec_from_file_location("convert_toolbox", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


toolbox = _load_toolbox()

MODES = ("eval", "train+backward")


@dataclass(frozen=True)
class Case:
    name: str
    build: object  # () -> nn.Module
    shape: tuple[int, int, int, int]

    @property
    def input(self) -> str:
        return "x".join(map(str, self.shape))


CASES = [
    Case("EDSR", lambda: toolbox.EDSRLike(channels=64, blocks=8), (1, 3, 64, 64)),
    Case("MSRResNet", lambda: toolbox.MSRResNetLike(channels=64, blocks=8), (1, 3, 64, 64)),
    Case("RRDB", lambda: toolbox.RRDBLike(channels=32, blocks=2, growth=16), (1, 3, 64, 64)),
    Case("SRVGG", lambda: toolbox.SRVGGLike(channels=64, convs=16, scale=4), (1, 3, 64, 64)),
    Case("UNet", lambda: toolbox.UNetLike(channels=16), (2, 3, 128, 128)),
    Case("ResNet", lambda: toolbox.ResNetTrunk(width=32), (4, 3, 128, 128)),
]


def timed_call(model, x, mode: str):
    if mode == "eval":
        def forward():
            model.eval()
            with torch.no_grad():
                return model(x)

        return forward
    xg = x.detach().requires_grad_(True)
    params = list(model.parameters())

    def forward_backward():
        model.train()
        y = model(xg)
        return torch.autograd.grad(y, [xg, *params], torch.ones_like(y))

    return forward_backward


def case_variants(case: Case, device: torch.device, compile_: bool,
                  conversions: list[str]) -> list[Variant]:
    """Stock and converted (each also compiled) in both modes; what convert did is appended
    to conversions (the report's notes)."""
    torch.manual_seed(0)
    stock = case.build().to(device)
    converted, report = convert_with_report(stock)
    conversions.append(f"### {case.name} (fused {len(report.fused)})\n\n```\n{report}\n```")
    x = torch.rand(case.shape, device=device)
    models = [("stock eager", stock, STOCK), ("pyimg eager", converted, PYIMG)]
    if compile_:
        models += [("stock compiled", stock, COMPILED), ("pyimg compiled", converted, PYIMG)]
    variants = []
    for mode in MODES:
        for name, model, role in models:
            run = torch.compile(model) if name.endswith("compiled") else model
            variants.append(Variant(name, timed_call(run, x, mode), mode, role,
                                    images=case.shape[0]))
    return variants


def main() -> int:
    parser = application_parser(__doc__.split("\n\n")[0], __file__)
    parser.add_argument("--no-compile", action="store_true", help="eager variants only")
    args = parser.parse_args()
    device = runner.resolve_device(args.device, None)
    settings = timer.QUICK if args.quick else timer.DEFAULT
    env = environment(device)
    notes = [
        "Models: tests/convert/toolbox.py (EDSR(64 channels, 8 blocks), MSRResNet(64, 8), "
        "RRDB(32, 2 blocks, growth 16), SRVGG(64, 16 convs, x4), U-Net(16), ResNet/VGG trunk("
        "32)), weights as constructed. pyimg: pyimg.convert(model); compiled: torch.compile "
        "with its default backend, timed after warm-up (compilation in 'first call'). eval: "
        "no grad; train+backward: training-mode forward and the gradients of the input and "
        "every parameter.",
        timer.method_note(device, settings),
        "## What convert did",
    ]
    report = Report("models", f"pyimg.convert{' (quick)' * args.quick}", env,
                    {"compile": not args.no_compile, **asdict(settings)}, notes)
    jobs = [runner.Job(case.name, case.input,
                       lambda case=case: case_variants(case, device, not args.no_compile,
                                                       report.notes),
                       flush_l2=False)
            for case in (CASES[:2] if args.quick else CASES)]
    options = runner.RunOptions(quick=args.quick, settings=settings, out_dir=args.out,
                                plot=False)
    runner.run(report, jobs, device, options, default_stem("convert", env, args.quick))
    return 1 if any(r.error and r.role == PYIMG for r in report.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
