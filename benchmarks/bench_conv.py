"""conv2d with fused epilogues: pyimg's backends beside the stock op sequence (eager and
torch.compile), in one run.

    python benchmarks/bench_conv.py [--device cpu|cuda] [--quick] [--sweep] [--out DIR]

Cases: issue 5's dilated 3x3 grid (256 -> 256 channels on 8x64x64; d = 1, 2, 4, 8; fp16
channels_last, fp32 NCHW with TF32 as stock's default; conv + BN + ReLU (+ residual) fused
against stock's three or four kernels) and issue 4's SRResNet convolutions (residual-block
convs, the conv -> pixel shuffle x2 -> PReLU upsampler, the final 9x9 64 -> 3), and depthwise
3x3 convs + BN + ReLU (groups = C, d = 1 and 4). BatchNorm is in eval mode: stock runs it,
pyimg folds it into the epilogue's scale and shift beforehand.
Writes conv_<device>.md and .csv to --out (default benchmarks/results) and prints a summary.

--sweep: issue 5's training grid instead (conv_sweep_<device>.md): the plain dilated conv,
no-grad and forward+backward, NCHW and channels_last, fp32 / TF32 / fp16 / bf16 (CPU: fp32
on 1x64x64x64), stock under every cudnn.benchmark x cudnn.deterministic setting, pyimg with
cudnn.deterministic on (its Triton backward is deterministic by construction; its cuda
backend's convolution is cuDNN's).
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# pyimg is imported from this checkout (built in place, not installed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import timing
import torch
import torch.nn.functional as F

import pyimg

OP = "conv"
EAGER, COMPILED = "eager", "compiled"
# Backends benchmarked per device. Triton on CPU is its interpreter, a test tool, never timed.
PYIMG_BACKENDS = {"cuda": ("cuda", "triton"), "cpu": ("cpu",)}
COMPILE_MODE = {"cuda": "max-autotune-no-cudagraphs", "cpu": None}
SHORT_DTYPE = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}
# Epilogues: the stock modules after the conv, and how pyimg.ops.conv2d fuses them.
EPILOGUES = ("none", "bn+relu", "bn+relu+x", "bn+prelu", "bn+x", "ps2+prelu")


@dataclass(frozen=True)
class Case:
    shape: tuple[int, int, int, int]  # x: N, C_in, H, W
    c_out: int
    kernel: int
    dilation: int
    dtype: torch.dtype
    channels_last: bool
    epilogue: str = "none"
    tf32: bool = False  # float32 with TF32 allowed: stock's default for convolutions on GPUs
    groups: int = 1  # C_in: depthwise

    @property
    def name(self) -> str:
        layout = "CL" if self.channels_last else "NCHW"
        dtype = SHORT_DTYPE[self.dtype] + ("/TF32" if self.tf32 else "")
        kind = " depthwise" if self.groups > 1 else ""
        return (f"{'x'.join(map(str, self.shape))}->{self.c_out}{kind} k{self.kernel} "
                f"d{self.dilation} {self.epilogue} {dtype} {layout}")

    def flops(self) -> int:
        n, c, h, w = self.shape  # 'same' padding: the output is H x W
        return 2 * n * h * w * self.c_out * (c // self.groups) * self.kernel**2

    def bytes_moved(self) -> int:
        n, c, h, w = self.shape
        residual = self.epilogue.endswith("x")
        return (n * (c * (1 + residual) + self.c_out) * h * w
                + self.c_out * (c // self.groups) * self.kernel**2) * self.dtype.itemsize


def _dilated_grid(dtype, channels_last, epilogues=("none",), shape=(8, 256, 64, 64),
                  tf32=False):
    return [Case(shape, shape[1], 3, d, dtype, channels_last, e, tf32)
            for e in epilogues for d in (1, 2, 4, 8)]


GPU_CASES = [
    *_dilated_grid(torch.float16, True, ("none", "bn+relu", "bn+relu+x")),
    *_dilated_grid(torch.float32, False, tf32=True),
    Case((1, 64, 270, 480), 64, 3, 1, torch.float16, True, "bn+prelu"),
    Case((1, 64, 270, 480), 64, 3, 1, torch.float16, True, "bn+x"),
    Case((1, 64, 270, 480), 256, 3, 1, torch.float16, True, "ps2+prelu"),
    Case((1, 64, 1080, 1920), 3, 9, 1, torch.float16, True),
    *(Case((8, 256, 64, 64), 256, 3, d, dtype, cl, "bn+relu", groups=256)
      for dtype, cl in ((torch.float16, True), (torch.float32, False)) for d in (1, 4)),
]
GPU_QUICK_CASES = [GPU_CASES[i] for i in (1, 9, 17, 18, 19, 21)]
CPU_CASES = [
    # ../shared/anchors.md's CPU conv: 64 -> 64 on 4x64x64, d = 2.
    *(Case((4, 64, 64, 64), 64, 3, 2, torch.float32, False, e) for e in ("none", "bn+relu")),
    *_dilated_grid(torch.float32, False, ("none", "bn+relu", "bn+relu+x"), (1, 256, 64, 64)),
    Case((1, 64, 135, 240), 64, 3, 1, torch.float32, True, "bn+prelu"),
    Case((1, 64, 135, 240), 256, 3, 1, torch.float32, True, "ps2+prelu"),
    Case((1, 64, 270, 480), 3, 9, 1, torch.float32, True),
    *(Case((8, 256, 64, 64), 256, 3, d, torch.float32, cl, "bn+relu", groups=256)
      for cl in (False, True) for d in (1, 4)),
]
CPU_QUICK_CASES = [
    *(Case((1, 64, 64, 64), 64, 3, d, torch.float32, False, e)
      for e in ("none", "bn+relu", "bn+relu+x") for d in (1, 4)),
    Case((1, 32, 64, 64), 32, 3, 1, torch.float32, True, "bn+x"),
    Case((1, 32, 64, 64), 128, 3, 1, torch.float32, True, "ps2+prelu"),
    Case((1, 32, 128, 128), 3, 9, 1, torch.float32, True),
    Case((8, 64, 64, 64), 64, 3, 4, torch.float32, False, "bn+relu", groups=64),
]


# The sweep's dtypes as (dtype, TF32 allowed), and the cuDNN settings it times stock under
# as (benchmark, deterministic); stock's provider under the first is plain "eager".
SWEEP_DTYPES = ((torch.float32, False), (torch.float32, True), (torch.float16, False),
                (torch.bfloat16, False))
CUDNN_SETTINGS = ((True, False), (False, False), (True, True), (False, True))


def sweep_cases(device: torch.device) -> list[Case]:
    if device.type == "cuda":
        shape, dilations, dtypes = (8, 256, 64, 64), (1, 2, 4, 8), SWEEP_DTYPES
    else:
        shape, dilations, dtypes = (1, 64, 64, 64), (1, 4), SWEEP_DTYPES[:1]
    return [Case(shape, shape[1], 3, d, dtype, channels_last, "none", tf32)
            for dtype, tf32 in dtypes for channels_last in (False, True) for d in dilations]


def cudnn_provider(benchmark: bool, deterministic: bool) -> str:
    if (benchmark, deterministic) == CUDNN_SETTINGS[0]:
        return EAGER
    return f"eager bench={int(benchmark)} det={int(deterministic)}"


def with_cudnn(fn, benchmark: bool, deterministic: bool):
    """fn run under the cuDNN settings (TF32 as the case set it)."""
    def run(x):
        cudnn = torch.backends.cudnn
        with cudnn.flags(enabled=True, benchmark=benchmark, deterministic=deterministic,
                         allow_tf32=cudnn.allow_tf32):
            return fn(x)

    return run


@dataclass
class Inputs:
    x: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    bn: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # mean, var, gamma, beta
    prelu_weight: torch.Tensor


def make_inputs(case: Case, device: torch.device) -> Inputs:
    g = torch.Generator(device).manual_seed(0)

    def rand(*shape, scale=1.0):
        return torch.randn(shape, generator=g, device=device, dtype=case.dtype) * scale

    fan_in = case.shape[1] // case.groups * case.kernel**2
    x = rand(*case.shape)
    weight = rand(case.c_out, case.shape[1] // case.groups, case.kernel, case.kernel,
                  scale=fan_in**-0.5)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        weight = weight.contiguous(memory_format=torch.channels_last)
    c = case.c_out
    bn = (rand(c), rand(c).abs() + 0.5, rand(c), rand(c))
    r2 = 4 if case.epilogue == "ps2+prelu" else 1
    return Inputs(x, weight, rand(c), bn, torch.full((c // r2,), 0.25, device=device,
                                                     dtype=case.dtype))


def stock(case: Case, inputs: Inputs) -> Callable[[torch.Tensor], torch.Tensor]:
    w, b, (mean, var, gamma, beta), alpha = (inputs.weight, inputs.bias, inputs.bn,
                                             inputs.prelu_weight)
    d, e = case.dilation, case.epilogue

    def run(x):
        y = F.conv2d(x, w, b, 1, "same", d, case.groups)
        if e.startswith("bn"):
            y = F.batch_norm(y, mean, var, gamma, beta, False)
        if e == "bn+relu+x":
            y = y + x
        if "relu" in e:
            y = F.relu(y)
        if e == "ps2+prelu":
            y = F.pixel_shuffle(y, 2)
        if "prelu" in e:
            y = F.prelu(y, alpha)
        return y + x if e == "bn+x" else y

    return run


def compiled(case: Case, inputs: Inputs, device: torch.device):
    torch._dynamo.reset()  # a fresh compile per case, as bench_pixel_shuffle
    return torch.compile(stock(case, inputs), mode=COMPILE_MODE[device.type], dynamic=False)


def pyimg_op(backend: str, case: Case, inputs: Inputs) -> Callable[[torch.Tensor], torch.Tensor]:
    mean, var, gamma, beta = (t.float() for t in inputs.bn)
    e = case.epilogue
    kw = {}
    if e.startswith("bn"):
        scale = gamma * torch.rsqrt(var + 1e-5)
        kw.update(scale=scale, shift=beta - mean * scale)
    if "relu" in e:
        kw["activation"] = "prelu" if "prelu" in e else "relu"
    if "prelu" in e:
        kw["prelu_weight"] = inputs.prelu_weight
    if e == "ps2+prelu":
        kw["upscale_factor"] = 2

    def run(x):
        with pyimg.use_backend(backend):
            residual = x if e.endswith("x") else None
            return pyimg.ops.conv2d(x, inputs.weight, inputs.bias, 1, "same", case.dilation,
                                    case.groups, residual=residual,
                                    add_before_activation=e == "bn+relu+x", **kw)

    return run


def timed_call(fn, x: torch.Tensor, mode: str):
    if mode == "no-grad":
        def no_grad():
            with torch.no_grad():
                return fn(x)

        return no_grad
    x = x.detach().requires_grad_(True)
    grad = torch.randn_like(fn(x))
    return lambda: torch.autograd.grad(fn(x), x, grad)


def modes_for(case: Case, device: torch.device, sweep: bool) -> tuple[str, ...]:
    # Training (issue 5's target) for the plain dilated convs on the GPU, and in the sweep.
    if sweep or (device.type == "cuda" and case.epilogue == "none" and case.kernel == 3):
        return ("no-grad", "forward+backward")
    return ("no-grad",)


def providers_for(case: Case, inputs: Inputs, device: torch.device, backends,
                  sweep: bool) -> dict:
    if not sweep:
        ops = {EAGER: stock(case, inputs), COMPILED: compiled(case, inputs, device)}
        ops.update({f"pyimg {b}": pyimg_op(b, case, inputs) for b in backends})
        return ops
    ops = {cudnn_provider(*flags): with_cudnn(stock(case, inputs), *flags)
           for flags in CUDNN_SETTINGS}
    ops.update({f"pyimg {b}": with_cudnn(pyimg_op(b, case, inputs), True, True)
                for b in backends})
    return ops


def bench_case(case: Case, device: torch.device, backends, settings, sweep: bool = False):
    inputs = make_inputs(case, device)
    ops = providers_for(case, inputs, device, backends, sweep)
    torch.backends.cudnn.allow_tf32 = case.tf32  # stock's default for fp32; ours follows it
    results = []
    for provider, fn in ops.items():
        for mode in modes_for(case, device, sweep):
            results.append(timing.measure(
                case.name, provider, mode, case.bytes_moved(),
                lambda fn=fn, mode=mode: timing.time_on(device, timed_call(fn, inputs.x, mode),
                                                        settings)))
    return results


def rows_with_rates(results, flops: dict[str, int]) -> list[dict]:
    """Each result with its TFLOP/s (the forward's FLOPs, tripled with a backward) and its
    speedup over eager and compiled in the same case and mode (p50 against p50)."""
    rows = timing.derived(results, (EAGER, COMPILED))
    for row in rows:
        work = flops[row["case"]] * (3 if row["mode"] == "forward+backward" else 1)
        row["tflops"] = None if row["p50_us"] is None else work / row["p50_us"] / 1e6
    return rows


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def summary_table(rows, providers) -> str:
    by_key = {(r["case"], r["provider"], r["mode"]): r for r in rows}
    keys = dict.fromkeys((r["case"], r["mode"]) for r in rows)
    lines = []
    for case, mode in keys:
        cells = []
        for p in providers:
            r = by_key.get((case, p, mode))
            if r is None or r["error"]:
                cells.append("-" if r is None else "failed")
                continue
            ratio = "" if p == EAGER else f", x{_fmt(r['vs_eager'], '.2f')}"
            cells.append(f"{r['p50_us']:.1f} ({r['tflops']:.2f} TF/s{ratio})")
        lines.append([case, mode, *cells])
    return timing.markdown_table(["case", "mode", *providers], lines)


def write_report(out: Path, op: str, quick: bool, env, device, backends, skipped, results,
                 flops) -> str:
    rows = rows_with_rates(results, flops)
    providers = list(dict.fromkeys(r.provider for r in results))
    summary = summary_table(rows, providers)
    notes = [
        f"compiled: torch.compile(mode={COMPILE_MODE[device.type] or 'default'!r}, "
        "dynamic=False) of the stock sequence. eager: the stock ops one after another"
        + (", cudnn.benchmark on" if device.type == "cuda" else "") + ". eager bench=B det=D: "
        "eager under cudnn.benchmark=B, cudnn.deterministic=D.",
        "Cells: p50 us (TFLOP/s of the convolution, x = speedup over eager; above 1 is "
        "faster). Times are p20/p50/p80 of many calls (GPU: CUDA events, L2 flushed; CPU: "
        "wall clock). /TF32 cases allow TF32 (stock's default for convolutions; pyimg's Triton "
        "kernel follows the same flag, torch.backends.cudnn.allow_tf32); others do not.",
    ]
    timing.write_report(out, op, quick, env, skipped, notes, "p50 us (TFLOP/s, x eager)",
                        summary, rows, (EAGER, COMPILED))
    return summary


def main() -> int:
    parser = timing.argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true",
                        help="the training grid over cuDNN settings, layouts and dtypes")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the anchors were measured
        cases = GPU_QUICK_CASES if args.quick else GPU_CASES
    else:
        cases = CPU_QUICK_CASES if args.quick else CPU_CASES
    if args.sweep:
        cases = sweep_cases(device)
    op = f"{OP}_sweep" if args.sweep else OP
    settings = timing.QUICK if args.quick else timing.Settings()
    backends, skipped = timing.pyimg_backends(PYIMG_BACKENDS[device.type], device)
    env = timing.environment(device)
    print(timing.environment_lines(env), flush=True)

    results, flops = [], {}
    for case in cases:
        print(f"-- {case.name}", flush=True)
        flops[case.name] = case.flops()
        results += bench_case(case, device, backends, settings, args.sweep)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        summary = write_report(args.out, op, args.quick, env, device, backends, skipped,
                               results, flops)
    return timing.finish(args.out, op, env, summary, results)


if __name__ == "__main__":
    sys.exit(main())
