"""Colour conversions of the super-resolution literature: MATLAB's ``rgb2ycbcr`` /
``ycbcr2rgb`` (ITU-R BT.601, studio range) and the luma Y the SR papers measure.

Float images are in [0, 1] on both sides: Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255
for R, G, B in [0, 1], so Y spans [16/255, 235/255] and Cb, Cr [16/255, 240/255]; this is
also what a video decoder's BT.601 yuv420p planes hold. uint8 images give uint8 results
rounded as MATLAB rounds (half away from zero), saturated to [0, 255]. Channels are the
third-from-last dimension: (3, H, W) and (N, 3, H, W) both work.
"""

import torch

# Rows Y, Cb, Cr of MATLAB's rgb2ycbcr matrix for RGB in [0, 1] and results in [0, 255]:
# BT.601's (Kr, Kb) = (0.299, 0.114) at studio range (219 and 224 steps), as
# pyimg/video/color.py computes it, but with MATLAB's three-decimal rounding, which the
# published PSNR-Y scores were measured with; so it is written out, not derived.
_MATRIX = ((65.481, 128.553, 24.966),
           (-37.797, -74.203, 112.0),
           (112.0, -93.786, -18.214))
_OFFSET = (16.0, 128.0, 128.0)


def _check(x: torch.Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} expects images with 3 channels in dimension -3, got shape "
                         f"{tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype == torch.uint8):
        raise ValueError(f"{name} expects float images in [0, 1] or uint8, got {x.dtype}")


def _round_uint8(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's conversion of doubles to uint8: saturate, round half away from zero."""
    return torch.floor(x.clamp(0, 255) + 0.5).to(torch.uint8)


def _apply(matrix: torch.Tensor, offset: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,...jhw->...ihw", matrix, x) + offset.view(3, 1, 1)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``rgb2ycbcr``: Y, Cb, Cr of RGB images (float in [0, 1] -> float in [0, 1]
    on the 255 scale's studio range; uint8 -> uint8)."""
    _check(rgb, "rgb_to_ycbcr")
    work = torch.float64 if rgb.dtype in (torch.uint8, torch.float64) else torch.float32
    x = rgb.to(work) / 255 if rgb.dtype == torch.uint8 else rgb.to(work)
    matrix = torch.tensor(_MATRIX, dtype=work, device=rgb.device)
    ycbcr = _apply(matrix, torch.tensor(_OFFSET, dtype=work, device=rgb.device), x)
    if rgb.dtype == torch.uint8:
        return _round_uint8(ycbcr)
    return (ycbcr / 255).to(rgb.dtype)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``ycbcr2rgb``, the exact inverse of :func:`rgb_to_ycbcr` (float results are
    not clipped: out-of-gamut YCbCr gives RGB outside [0, 1]; uint8 results saturate)."""
    _check(ycbcr, "ycbcr_to_rgb")
    work = torch.float64 if ycbcr.dtype in (torch.uint8, torch.float64) else torch.float32
    x = ycbcr.to(work) if ycbcr.dtype == torch.uint8 else ycbcr.to(work) * 255
    inverse = torch.linalg.inv(torch.tensor(_MATRIX, dtype=torch.float64)).to(work)
    offset = torch.tensor(_OFFSET, dtype=work)
    rgb = _apply(inverse.to(ycbcr.device), (-inverse @ offset).to(ycbcr.device), x)
    if ycbcr.dtype == torch.uint8:
        return _round_uint8(rgb * 255)
    return rgb.to(ycbcr.dtype)


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """The luma Y of :func:`rgb_to_ycbcr` alone, keeping a channel dimension of 1."""
    return rgb_to_ycbcr(rgb)[..., :1, :, :]


def gray_to_y(gray: torch.Tensor) -> torch.Tensor:
    """Y of a grey image taken as R = G = B (16 + 219 g on the 255 scale), keeping its shape;
    the SR papers score grey test images this way."""
    if gray.dtype == torch.uint8:
        return _round_uint8(16 + 219 * gray.double() / 255)
    return (16 + 219 * gray) / 255
