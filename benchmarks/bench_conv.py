"""conv2d with fused epilogues: pyimg's backends beside the stock op sequence (eager and
torch.compile), in one run.

    python benchmarks/bench_conv.py [--device cpu|cuda] [--quick] [--sweep] [--out DIR]
    pyimg bench ops conv --shape "1x64x64x64 k3 d2 bn+relu fp32" [--shape "... c128 g64"]

Cases: the dilated 3x3 grid (256 -> 256 channels on 8x64x64; d = 1, 2, 4, 8; fp16
channels_last, fp32 NCHW with TF32 as stock's default; conv + BN + ReLU (+ residual) fused
against stock's three or four kernels), SRResNet's convolutions (residual-block convs, the
conv -> pixel shuffle x2 -> PReLU upsampler, the final 9x9 64 -> 3), and depthwise 3x3 convs
+ BN + ReLU (groups = C, d = 1 and 4). BatchNorm is in eval mode: stock runs it, pyimg folds
it into the epilogue's scale and shift beforehand. Compute-bound: no clone roofline; the
TFLOP/s column counts the convolution's multiply-adds.

--sweep: the training grid instead (conv_sweep_<device>.*): the plain dilated conv, no-grad
and forward+backward, NCHW and channels_last, fp32 / TF32 / fp16 / bf16 (CPU: fp32 on
1x64x64x64), stock under every cudnn.benchmark x cudnn.deterministic setting, pyimg with
cudnn.deterministic on (its Triton backward is deterministic by construction; its cuda
backend's convolution is cuDNN's).
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
from pyimg.bench.suite import SHORT_DTYPE, on_backend, timed_call

# Epilogues: the stock modules after the conv, and how pyimg.ops.conv2d fuses them.
EPILOGUES = ("none", "bn+relu", "bn+relu+x", "bn+prelu", "bn+x", "ps2+prelu")
# The sweep's cuDNN settings for stock as (benchmark, deterministic); the first is "eager".
CUDNN_SETTINGS = ((True, False), (False, False), (True, True), (False, True))


@dataclass(frozen=True)
class Case:
    shape: tuple[int, int, int, int]  # x: N, C_in, H, W
    c_out: int
    kernel: int = 3
    dilation: int = 1
    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    epilogue: str = "none"
    tf32: bool = False  # float32 with TF32 allowed: stock's default for convolutions on GPUs
    groups: int = 1  # C_in: depthwise
    sweep: bool = False  # stock under every cuDNN setting

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
GPU_QUICK_CASES = [GPU_CASES[i] for i in (5, 18, 21)]
CPU_CASES = [
    # A small dilated conv: 64 -> 64 on 4x64x64, d = 2.
    *(Case((4, 64, 64, 64), 64, 3, 2, torch.float32, False, e) for e in ("none", "bn+relu")),
    *_dilated_grid(torch.float32, False, ("none", "bn+relu", "bn+relu+x"), (1, 256, 64, 64)),
    Case((1, 64, 135, 240), 64, 3, 1, torch.float32, True, "bn+prelu"),
    Case((1, 64, 135, 240), 256, 3, 1, torch.float32, True, "ps2+prelu"),
    Case((1, 64, 270, 480), 3, 9, 1, torch.float32, True),
    *(Case((8, 256, 64, 64), 256, 3, d, torch.float32, cl, "bn+relu", groups=256)
      for cl in (False, True) for d in (1, 4)),
]
CPU_QUICK_CASES = [
    Case((1, 64, 64, 64), 64, 3, 4, torch.float32, False, "bn+relu+x"),
    Case((1, 32, 64, 64), 128, 3, 1, torch.float32, True, "ps2+prelu"),
    Case((8, 64, 64, 64), 64, 3, 4, torch.float32, False, "bn+relu", groups=64),
]


def sweep_cases(device_type: str) -> list[Case]:
    if device_type == "cuda":
        shape, dilations = (8, 256, 64, 64), (1, 2, 4, 8)
        dtypes = ((torch.float32, False), (torch.float32, True), (torch.float16, False),
                  (torch.bfloat16, False))
    else:
        shape, dilations, dtypes = (1, 64, 64, 64), (1, 4), ((torch.float32, False),)
    return [Case(shape, shape[1], 3, d, dtype, cl, "none", tf32, sweep=True)
            for dtype, tf32 in dtypes for cl in (False, True) for d in dilations]


def case_from_spec(spec) -> Case:
    if len(spec.shape) != 4:
        raise ValueError(f"conv takes an NxCxHxW input shape, not {spec.shape}")
    epilogue = next((w for w in spec.words if w in EPILOGUES), "none")
    unknown = [w for w in spec.words if w not in EPILOGUES]
    if unknown:
        raise ValueError(f"conv: unknown words {unknown}; epilogues are {EPILOGUES}")
    c = spec.shape[1]
    return Case(spec.shape, spec.get("c", c), spec.get("k", 3), spec.get("d", 1),
                spec.dtype or torch.float32, bool(spec.channels_last), epilogue,
                groups=spec.get("g", 1))


def with_cudnn(fn, benchmark: bool, deterministic: bool, tf32: bool):
    """fn run under these cuDNN settings (TF32 for convolutions as the case allows)."""
    def run(x):
        with torch.backends.cudnn.flags(enabled=True, benchmark=benchmark,
                                        deterministic=deterministic, allow_tf32=tf32):
            return fn(x)

    return run


def make_inputs(case: Case, device: torch.device):
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
    bn = (rand(c), rand(c).abs() + 0.5, rand(c), rand(c))  # mean, var, gamma, beta
    r2 = 4 if case.epilogue == "ps2+prelu" else 1
    alpha = torch.full((c // r2,), 0.25, device=device, dtype=case.dtype)
    return x, weight, rand(c), bn, alpha


def stock_and_pyimg(case: Case, device: torch.device):
    """The stock op sequence and pyimg's fused call (backend forced by the caller)."""
    x, w, b, (mean, var, gamma, beta), alpha = make_inputs(case, device)
    d, e = case.dilation, case.epilogue

    def stock(inp):
        y = F.conv2d(inp, w, b, 1, "same", d, case.groups)
        if e.startswith("bn"):
            y = F.batch_norm(y, mean, var, gamma, beta, False)
        if e == "bn+relu+x":
            y = y + inp
        if "relu" in e:
            y = F.relu(y)
        if e == "ps2+prelu":
            y = F.pixel_shuffle(y, 2)
        if "prelu" in e:
            y = F.prelu(y, alpha)
        return y + inp if e == "bn+x" else y

    kw = {}
    if e.startswith("bn"):
        scale = gamma.float() * torch.rsqrt(var.float() + 1e-5)
        kw.update(scale=scale, shift=beta.float() - mean.float() * scale)
    if "relu" in e:
        kw["activation"] = "prelu" if "prelu" in e else "relu"
    if "prelu" in e:
        kw["prelu_weight"] = alpha
    if e == "ps2+prelu":
        kw["upscale_factor"] = 2

    def ours(inp):
        return pyimg.ops.conv2d(inp, w, b, 1, "same", d, case.groups,
                                residual=inp if e.endswith("x") else None,
                                add_before_activation=e == "bn+relu+x", **kw)

    return x, stock, ours


def variants(case: Case, context) -> list[Variant]:
    device = context.device
    x, stock, ours = stock_and_pyimg(case, device)
    if case.sweep:
        providers = [("eager" if flags == CUDNN_SETTINGS[0]
                      else f"eager bench={int(flags[0])} det={int(flags[1])}",
                      "stock" if flags == CUDNN_SETTINGS[0] else "other",
                      with_cudnn(stock, *flags, case.tf32)) for flags in CUDNN_SETTINGS]
        pyimg_flags = (True, True)
    else:
        providers = [("eager", "stock", with_cudnn(stock, True, False, case.tf32))]
        if context.compile:
            providers.append(("compiled", "compiled",
                              with_cudnn(context.compiled(stock), True, False, case.tf32)))
        pyimg_flags = (True, False)
    providers += [(f"pyimg {b}", "pyimg", with_cudnn(on_backend(b, ours), *pyimg_flags,
                                                      case.tf32)) for b in context.backends]
    # Training for the plain dilated convs on the GPU, and in the sweep.
    train = case.sweep or (device.type == "cuda" and case.epilogue == "none"
                           and case.kernel == 3)
    modes = ("no-grad", "forward+backward") if train else ("no-grad",)
    return [Variant(name, timed_call(fn, x, mode), mode, role, bytes=case.bytes_moved(),
                    flops=case.flops() * (3 if mode == "forward+backward" else 1))
            for name, role, fn in providers for mode in modes]


SUITE = OpSuite(
    name="conv",
    description="conv2d with fused bias / BN / activation / residual / pixel-shuffle epilogues",
    cases={"cuda": {"default": GPU_CASES, "quick": GPU_QUICK_CASES,
                    "sweep": sweep_cases("cuda")},
           "cpu": {"default": CPU_CASES, "quick": CPU_QUICK_CASES, "sweep": sweep_cases("cpu")}},
    variants=variants,
    case_from_spec=case_from_spec,
    notes=("eager: the stock ops one after another (cudnn.benchmark on); compiled: "
           "torch.compile of that sequence; eager bench=B det=D (sweep): eager under "
           "cudnn.benchmark=B, cudnn.deterministic=D. /TF32 cases allow TF32 for "
           "convolutions (stock's default; pyimg's Triton kernel follows the same flag).",),
)

if __name__ == "__main__":
    sys.exit(script_main(__file__))
