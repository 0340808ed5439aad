"""MATLAB's ``imresize`` with its default bicubic kernel: the resize the super-resolution
papers make their low-resolution test images and bicubic baselines with.

Keys' cubic convolution with a = -0.5 (Keys, IEEE TASSP 1981), widened by 1/scale when
shrinking so that it also low-pass filters (MATLAB's antialiasing), symmetric padding at
the borders, output size ceil(scale * input). Each dimension is a matrix product with
MATLAB's ``contributions`` weights; the dimension with the smaller scale goes first, as in
MATLAB. A float input is resized in its dtype (float64 reproduces MATLAB's doubles); a uint8
input takes MATLAB's uint8 path, rounded and saturated after each dimension.
"""

import math
from functools import lru_cache

import torch


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=64)
def resize_matrix(in_length: int, out_length: int, scale: float,
                  antialias: bool = True) -> torch.Tensor:
    """(out_length, in_length) float64 matrix of MATLAB's bicubic ``contributions``: row i
    holds the weights output pixel i gives each input pixel, symmetric padding folded in."""
    width = 4.0
    if scale < 1 and antialias:
        kernel = lambda t: scale * cubic(scale * t)
        width /= scale
    else:
        kernel = cubic
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    # Output pixel centres mapped to input coordinates (1-based, as MATLAB).
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric padding: ... 2 1 | 1 2 ... n | n n-1 ...
    mirror = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])
    columns = mirror[(indices.long() - 1) % (2 * in_length)]
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, columns, weights)
    return matrix


def _output_size(size, scale, height: int, width: int) -> tuple[tuple[int, int], tuple]:
    if (size is None) == (scale is None):
        raise ValueError("imresize: give exactly one of scale and size")
    if size is not None:
        out = tuple(int(s) for s in size)
        if len(out) != 2 or min(out) < 1:
            raise ValueError(f"imresize: size must be two positive ints, got {size!r}")
        return out, (out[0] / height, out[1] / width)
    scales = (float(scale), float(scale)) if isinstance(scale, (int, float)) else tuple(scale)
    if len(scales) != 2 or min(scales) <= 0:
        raise ValueError(f"imresize: scale must be positive, got {scale!r}")
    return (math.ceil(height * scales[0]), math.ceil(width * scales[1])), scales


def imresize(image: torch.Tensor, scale: float | tuple[float, float] | None = None,
             size: tuple[int, int] | None = None, antialias: bool = True) -> torch.Tensor:
    """Resize the last two dimensions of ``image`` (..., H, W) by ``scale`` (one factor or
    (rows, cols)) or to ``size`` = (rows, cols), as MATLAB's ``imresize(A, scale)`` with
    the bicubic kernel. Returns the input's dtype; see the module docstring for uint8."""
    if image.dim() < 2 or min(image.shape[-2:]) < 1:
        raise ValueError(f"imresize: expected an image (..., H, W), got shape "
                         f"{tuple(image.shape)}")
    if not (image.is_floating_point() or image.dtype == torch.uint8):
        raise ValueError(f"imresize: expected a float or uint8 image, got {image.dtype}")
    height, width = image.shape[-2:]
    (out_h, out_w), (scale_h, scale_w) = _output_size(size, scale, height, width)
    quantized = image.dtype == torch.uint8
    work = torch.float64 if quantized else image.dtype
    x = image.to(work)
    passes = [(-2, height, out_h, scale_h), (-1, width, out_w, scale_w)]
    if scale_w < scale_h:
        passes.reverse()
    for dim, length, out_length, factor in passes:
        if out_length == length and factor == 1:
            continue
        matrix = resize_matrix(length, out_length, factor, antialias).to(x.device, work)
        x = torch.matmul(matrix, x) if dim == -2 else torch.matmul(x, matrix.T)
        if quantized:  # MATLAB keeps uint8 between the two passes
            x = torch.floor(x.clamp(0, 255) + 0.5)
    return x.to(torch.uint8) if quantized else x
