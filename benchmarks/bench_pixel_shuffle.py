"""pixel_shuffle: pyimg's backends beside stock PyTorch (eager and torch.compile), with a clone of
the same input as the roofline, in one run.

    python benchmarks/bench_pixel_shuffle.py [--device cpu|cuda] [--quick] [--out DIR]

Writes pixel_shuffle_<device>.md and .csv to --out (default benchmarks/results) and prints a
summary table last. The cases are the stock anchors of shared/anchors.md.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# pyimg is imported from this checkout (built in place, not installed): the repository root,
# not this script's folder, must be on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import timing
import torch
import torch.nn.functional as F

import pyimg

OP = "pixel_shuffle"
EAGER, COMPILED = "eager", "compiled"
GPU_MODES = ("forward", "backward", "forward+backward", "no-grad")
CPU_MODES = ("forward", "no-grad")
# Backends benchmarked per device. Triton on CPU is its interpreter, a test tool, never timed.
PYIMG_BACKENDS = {"cuda": ("cuda", "triton"), "cpu": ("cpu",)}
COMPILE_MODE = {"cuda": "max-autotune-no-cudagraphs", "cpu": None}
SHORT_DTYPE = {torch.float16: "fp16", torch.float32: "fp32"}


@dataclass(frozen=True)
class Case:
    shape: tuple[int, int, int, int]
    r: int
    dtype: torch.dtype
    channels_last: bool
    # bias (one per input channel, the feeding conv's) + PReLU (one weight per output channel)
    fused: bool = False

    @property
    def name(self) -> str:
        shape = "x".join(map(str, self.shape))
        layout = "CL" if self.channels_last else "NCHW"
        prefix = "bias+shuffle+prelu " if self.fused else ""
        return f"{prefix}{shape} r{self.r} {SHORT_DTYPE[self.dtype]} {layout}"

    def numel_bytes(self) -> int:
        n, c, h, w = self.shape
        return n * c * h * w * self.dtype.itemsize

    def parameter_bytes(self) -> int:
        c = self.shape[1]
        return (c + c // self.r**2) * self.dtype.itemsize if self.fused else 0

    def bytes_moved(self, mode: str) -> int:
        """The least traffic the mode needs: forward reads x and writes y; backward reads the
        output gradient (and x, whose sign PReLU's gradient needs) and writes x's gradient."""
        data = self.numel_bytes()
        forward = 2 * data + self.parameter_bytes()
        backward = (3 * data if self.fused else 2 * data) + self.parameter_bytes()
        return {"copy": 2 * data, "forward": forward, "no-grad": forward, "backward": backward,
                "forward+backward": forward + backward}[mode]


def _layouts(shape, r, dtype) -> list[Case]:
    return [Case(shape, r, dtype, channels_last) for channels_last in (False, True)]


GPU_CASES = [
    *_layouts((1, 48, 270, 480), 4, torch.float16),
    *_layouts((1, 256, 540, 960), 2, torch.float16),
    *_layouts((16, 256, 96, 96), 2, torch.float32),
    *_layouts((1, 27, 720, 1280), 3, torch.float16),
    *_layouts((8, 256, 270, 480), 2, torch.float16),
    Case((1, 256, 540, 960), 2, torch.float16, channels_last=True, fused=True),
]
GPU_QUICK_CASES = [GPU_CASES[0], GPU_CASES[3], GPU_CASES[-1]]
CPU_CASES = [
    *_layouts((1, 48, 270, 480), 4, torch.float32),
    *_layouts((16, 256, 96, 96), 2, torch.float32),
]
CPU_QUICK_CASES = CPU_CASES[:1]


@dataclass
class Inputs:
    x: torch.Tensor
    bias: torch.Tensor | None
    weight: torch.Tensor | None


def make_inputs(case: Case, device: torch.device) -> Inputs:
    generator = torch.Generator(device).manual_seed(0)
    x = torch.randn(case.shape, dtype=case.dtype, device=device, generator=generator)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if not case.fused:
        return Inputs(x, None, None)
    c = case.shape[1]
    bias = torch.randn(c, dtype=case.dtype, device=device, generator=generator)
    weight = torch.full((c // case.r**2,), 0.25, dtype=case.dtype, device=device)
    return Inputs(x, bias, weight)


def stock(case: Case, inputs: Inputs) -> Callable[[torch.Tensor], torch.Tensor]:
    r, bias, weight = case.r, inputs.bias, inputs.weight
    if case.fused:
        return lambda x: F.prelu(F.pixel_shuffle(x + bias.view(-1, 1, 1), r), weight)
    return lambda x: F.pixel_shuffle(x, r)


def compiled(case: Case, inputs: Inputs, device: torch.device):
    # A fresh compile per case: dynamo would otherwise recompile the same lambda per case and,
    # past its recompile limit, silently run it eager.
    torch._dynamo.reset()
    mode = COMPILE_MODE[device.type]
    return torch.compile(stock(case, inputs), mode=mode, dynamic=False)


def pyimg_op(backend: str, case: Case, inputs: Inputs) -> Callable[[torch.Tensor], torch.Tensor]:
    r, bias, weight = case.r, inputs.bias, inputs.weight
    activation = "prelu" if case.fused else "none"

    def run(x):
        with pyimg.use_backend(backend):
            return pyimg.ops.pixel_shuffle(x, r, bias=bias, activation=activation, weight=weight)

    return run


def timed_call(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: str):
    """The callable to time for mode. backward times only the gradient call, over one forward
    graph kept alive with retain_graph; gradients are of the output with respect to x only."""
    if mode == "no-grad":
        x = x.detach()

        def no_grad():
            with torch.no_grad():
                return fn(x)

        return no_grad
    x = x.detach().requires_grad_(True)
    if mode == "forward":
        return lambda: fn(x)
    y = fn(x)
    grad = torch.randn_like(y)
    if mode == "backward":
        return lambda: torch.autograd.grad(y, x, grad, retain_graph=True)
    return lambda: torch.autograd.grad(fn(x), x, grad)


def bench_case(case: Case, device: torch.device, modes, backends, settings):
    inputs = make_inputs(case, device)
    x = inputs.x
    results = [timing.measure(case.name, timing.ROOFLINE, "copy", case.bytes_moved("copy"),
                              lambda: timing.time_on(device, x.clone, settings))]
    ops = {EAGER: stock(case, inputs), COMPILED: compiled(case, inputs, device)}
    ops.update({f"pyimg {b}": pyimg_op(b, case, inputs) for b in backends})
    for provider, fn in ops.items():
        for mode in modes:
            results.append(timing.measure(
                case.name, provider, mode, case.bytes_moved(mode),
                lambda fn=fn, mode=mode: timing.time_on(device, timed_call(fn, x, mode), settings),
            ))
    return results


def write_report(out: Path, quick: bool, settings: timing.Settings, env, device: torch.device,
                 backends, skipped, results) -> str:
    """Write the md and csv files for the results so far; return the summary table."""
    baselines = (EAGER, COMPILED)
    rows = timing.derived(results, baselines)
    providers = [timing.ROOFLINE, *baselines, *(f"pyimg {b}" for b in backends)]
    summary = timing.summary_table(rows, providers, settings.cpu_quiet_load)
    compile_mode = COMPILE_MODE[device.type] or "default"
    notes = [
        f"compiled: torch.compile(mode={compile_mode!r}, dynamic=False) of the stock function.",
        "Times are p20/p50/p80 of many timed calls (GPU: CUDA events, L2 flushed before each; "
        "CPU: wall clock). MB: bytes the mode must read + write. of clone: GB/s over x.clone()'s "
        "GB/s in the same case (the roofline). x eager / x compiled: that provider's p50 over "
        "this row's (above 1: this row is faster). other load (CPU): cores' worth of CPU time "
        "other processes used during the measurement. Each waited up to "
        f"{settings.cpu_max_wait_s} s for a load under {settings.cpu_quiet_load}; a busier "
        f"one was retried, {settings.cpu_attempts} attempts in all, the quietest kept.",
    ]
    timing.write_report(out, OP, quick, env, skipped, notes,
                        "p50 us (of clone; * other processes were busy)", summary, rows,
                        baselines)
    return summary


def main() -> int:
    args = timing.argument_parser(__doc__.split("\n\n")[0]).parse_args()

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the anchors were measured
        cases = GPU_QUICK_CASES if args.quick else GPU_CASES
        modes = GPU_MODES
    else:
        cases = CPU_QUICK_CASES if args.quick else CPU_CASES
        modes = CPU_MODES
    settings = timing.QUICK if args.quick else timing.Settings()
    backends, skipped = timing.pyimg_backends(PYIMG_BACKENDS[device.type], device)
    env = timing.environment(device)
    print(timing.environment_lines(env), flush=True)
    print(f"pyimg build: {pyimg.build_info}; left out: {skipped or 'none'}", flush=True)

    results = []
    for case in cases:
        print(f"-- {case.name}", flush=True)
        results += bench_case(case, device, modes, backends, settings)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        # After every case, so a run stopped part-way still leaves what it measured.
        summary = write_report(args.out, args.quick, settings, env, device, backends, skipped,
                               results)
    return timing.finish(args.out, OP, env, summary, results)


if __name__ == "__main__":
    sys.exit(main())
