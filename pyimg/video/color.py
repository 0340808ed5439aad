"""Sample values <-> colour signals for video planes, in torch on the planes' device.

Signals are ITU-R's normalized ones: luma Y' in [0, 1], chroma Cb, Cr in [-0.5, 0.5], R'G'B'
in [0, 1]. Integer samples map to them by the layout's range (BT.601/709 "limited": Y = (16 +
219 Y') 2^(bits-8), C = (128 + 224 C) 2^(bits-8); "full": Y = Y' M, C = C M + 2^(bits-1),
M = 2^bits - 1), and Y'CbCr to R'G'B' by the layout's matrix (Kr, Kb of BT.601, BT.709 and
BT.2020). Luminance models (ESPCN's convention, MATLAB's ``rgb2ycbcr``) take the BT.601
studio-range luma divided by 255: ``luma_to_model(Y') = (16 + 219 Y') / 255``; for an 8-bit
limited-range plane that is the plane's value / 255.
"""

import torch
import torch.nn.functional as F

from pyimg.video.layout import Layout

KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


def _step(layout: Layout) -> float:
    return float(1 << (layout.bits - 8))


def decode_luma(samples: torch.Tensor, layout: Layout) -> torch.Tensor:
    if layout.family == "yuv" and not layout.full_range:
        return (samples / _step(layout) - 16.0) / 219.0
    return samples / layout.max_value


def encode_luma(luma: torch.Tensor, layout: Layout) -> torch.Tensor:
    if layout.family == "yuv" and not layout.full_range:
        return (luma * 219.0 + 16.0) * _step(layout)
    return luma * layout.max_value


def decode_chroma(samples: torch.Tensor, layout: Layout) -> torch.Tensor:
    if layout.full_range:
        return (samples - float(1 << (layout.bits - 1))) / layout.max_value
    return (samples / _step(layout) - 128.0) / 224.0


def encode_chroma(chroma: torch.Tensor, layout: Layout) -> torch.Tensor:
    if layout.full_range:
        return chroma * layout.max_value + float(1 << (layout.bits - 1))
    return (chroma * 224.0 + 128.0) * _step(layout)


def luma_to_model(luma: torch.Tensor) -> torch.Tensor:
    return (luma * 219.0 + 16.0) / 255.0


def model_to_luma(values: torch.Tensor) -> torch.Tensor:
    return (values * 255.0 - 16.0) / 219.0


def luma_model_affine(layout: Layout) -> tuple[float, float]:
    """(scale, offset) with model value = luma sample * scale + offset: ``decode_luma`` then
    ``luma_to_model`` in one step (limited range: the sample / 255 at 8 bits)."""
    if layout.family == "yuv" and not layout.full_range:
        return 1.0 / (255.0 * _step(layout)), 0.0
    return 219.0 / (255.0 * layout.max_value), 16.0 / 255.0


def chroma_limits(layout: Layout) -> tuple[float, float]:
    """The legal chroma sample range: 16..240 (x 2^(bits-8)) in limited range."""
    if layout.full_range:
        return 0.0, float(layout.max_value)
    return 16.0 * _step(layout), 240.0 * _step(layout)


def ycc_to_rgb(luma: torch.Tensor, chroma: torch.Tensor, matrix: str) -> torch.Tensor:
    """(B, 1, H, W) Y' and (B, 2, H, W) Cb, Cr -> (B, 3, H, W) R'G'B'."""
    kr, kb = KR_KB[matrix]
    kg = 1.0 - kr - kb
    cb, cr = chroma[:, 0:1], chroma[:, 1:2]
    r = luma + 2.0 * (1.0 - kr) * cr
    b = luma + 2.0 * (1.0 - kb) * cb
    g = (luma - kr * r - kb * b) / kg
    return torch.cat([r, g, b], dim=1)


def rgb_to_ycc(rgb: torch.Tensor, matrix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) R'G'B' -> (B, 1, H, W) Y' and (B, 2, H, W) Cb, Cr."""
    kr, kb = KR_KB[matrix]
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    luma = kr * r + (1.0 - kr - kb) * g + kb * b
    chroma = torch.cat([(b - luma) / (2.0 * (1.0 - kb)), (r - luma) / (2.0 * (1.0 - kr))], dim=1)
    return luma, chroma


def resize(planes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resampling to ``size`` (PyTorch's a = -0.75 kernel; antialiased when it
    shrinks); the identity when the size already matches."""
    if tuple(planes.shape[-2:]) == tuple(size):
        return planes
    shrinks = any(o < i for o, i in zip(size, planes.shape[-2:], strict=True))
    return F.interpolate(planes, size=size, mode="bicubic", align_corners=False,
                         antialias=shrinks)


def quantize(values: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Float sample values -> the layout's integer samples (rounded, clamped)."""
    values = values.round().clamp_(0, layout.max_value)
    if layout.bits == 8:
        return values.to(torch.uint8)
    # CUDA has few uint16 kernels: go through int16, whose bits are the same.
    return values.to(torch.int32).to(torch.int16).view(torch.uint16)


def samples_to_float(samples: torch.Tensor) -> torch.Tensor:
    """uint8 or uint16 samples as float32 (uint16 read through int16, as in ``quantize``)."""
    if samples.dtype == torch.uint16:
        samples = samples.view(torch.int16).to(torch.int32).bitwise_and_(0xFFFF)
    return samples.to(torch.float32)
