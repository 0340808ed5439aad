"""pixel_shuffle: pyimg's backends beside stock PyTorch (eager and torch.compile), with a clone of
the same input as the roofline, in one run.

    python benchmarks/bench_pixel_shuffle.py [--device cpu|cuda] [--quick] [--out DIR]
    pyimg bench ops pixel_shuffle --shape "1x48x270x480 r4 fp32 CL" [--shape "... prelu"]

Writes pixel_shuffle_<device>.{md,csv,json,png} to --out (default benchmarks/results). The
shapes are SR upsamplers' (ESPCN's r3 and r4 heads, SRResNet's r2 stages): one pass over
memory, so the clone is the roofline.
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

GPU_MODES = ("forward", "backward", "forward+backward", "no-grad")
CPU_MODES = ("forward", "no-grad")


@dataclass(frozen=True)
class Case:
    shape: tuple[int, int, int, int]
    r: int
    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    # bias (one per input channel, the feeding conv's) + PReLU (one weight per output channel)
    fused: bool = False

    @property
    def name(self) -> str:
        shape = "x".join(map(str, self.shape))
        layout = "CL" if self.channels_last else "NCHW"
        prefix = "bias+shuffle+prelu " if self.fused else ""
        return f"{prefix}{shape} r{self.r} {SHORT_DTYPE[self.dtype]} {layout}"

    def bytes_moved(self, mode: str) -> int:
        """The least traffic: forward reads x and writes y; backward reads the output
        gradient (and x, whose sign PReLU's gradient needs) and writes x's gradient."""
        n, c, h, w = self.shape
        data = n * c * h * w * self.dtype.itemsize
        parameters = (c + c // self.r**2) * self.dtype.itemsize if self.fused else 0
        forward = 2 * data + parameters
        backward = (3 if self.fused else 2) * data + parameters
        return {"forward": forward, "no-grad": forward, "backward": backward,
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
CPU_CASES = [
    *_layouts((1, 48, 270, 480), 4, torch.float32),
    *_layouts((16, 256, 96, 96), 2, torch.float32),
]


def case_from_spec(spec) -> Case:
    if len(spec.shape) != 4:
        raise ValueError(f"pixel_shuffle takes an NxCxHxW shape, not {spec.shape}")
    r = spec.get("r", 2)
    if spec.shape[1] % (r * r):
        raise ValueError(f"pixel_shuffle: channels {spec.shape[1]} are not a multiple of r^2 "
                         f"= {r * r}")
    return Case(spec.shape, r, spec.dtype or torch.float32, bool(spec.channels_last),
                fused="prelu" in spec.words)


def variants(case: Case, context) -> list[Variant]:
    device = context.device
    g = torch.Generator(device).manual_seed(0)
    x = torch.randn(case.shape, dtype=case.dtype, device=device, generator=g)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    c, r = case.shape[1], case.r
    bias = torch.randn(c, dtype=case.dtype, device=device, generator=g) if case.fused else None
    weight = torch.full((c // r**2,), 0.25, dtype=case.dtype, device=device) \
        if case.fused else None

    def stock(x):
        if case.fused:
            return F.prelu(F.pixel_shuffle(x + bias.view(-1, 1, 1), r), weight)
        return F.pixel_shuffle(x, r)

    def ours(x):
        return pyimg.ops.pixel_shuffle(x, r, bias=bias, weight=weight,
                                       activation="prelu" if case.fused else "none")

    providers = [("eager", "stock", stock)]
    if context.compile:
        providers.append(("compiled", "compiled", context.compiled(stock)))
    providers += [(f"pyimg {b}", "pyimg", on_backend(b, ours)) for b in context.backends]
    modes = GPU_MODES if device.type == "cuda" else CPU_MODES
    return [clone_variant(x)] + [
        Variant(name, timed_call(fn, x, mode), mode, role, bytes=case.bytes_moved(mode))
        for name, role, fn in providers for mode in modes]


SUITE = OpSuite(
    name="pixel_shuffle",
    description="pixel shuffle, plain and with the feeding conv's bias and PReLU fused",
    cases={"cuda": {"default": GPU_CASES, "quick": GPU_CASES[-1:]},
           "cpu": {"default": CPU_CASES, "quick": CPU_CASES[:2]}},
    variants=variants,
    case_from_spec=case_from_spec,
    notes=("compiled: torch.compile of the stock function (bias add, pixel_shuffle, prelu).",),
)

if __name__ == "__main__":
    sys.exit(script_main(__file__))
