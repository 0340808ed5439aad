"""Separable cubic resampling in float64 numpy: MATLAB ``imresize``'s bicubic (Keys' kernel,
a = -0.5, widened by the scale when shrinking, so it antialiases), at any sub-pixel offset and
scale. Renders the sample clip and its degradation.

Each output sample is accumulated tap by tap with elementwise multiplies and adds (no BLAS
or SIMD reductions, whose summation order varies between CPUs), so every machine renders the
same bits and the sample's truth can be checked by hash.
"""

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5."""
    x = np.abs(x)
    x2, x3 = x * x, x * x * x
    near = 1.5 * x3 - 2.5 * x2 + 1.0
    far = -0.5 * x3 + 2.5 * x2 - 4.0 * x + 2.0
    return np.where(x <= 1.0, near, np.where(x < 2.0, far, 0.0))


def taps(out_size: int, in_size: int, start: float, step: float):
    """Output sample i reads input position start + (i + 0.5) * step - 0.5 (pixel centres):
    (indices, weights), both (out_size, taps), weights summing to 1 per row, indices beyond
    the border clamped to it (the edge sample repeated)."""
    centres = start + (np.arange(out_size) + 0.5) * step - 0.5
    widen = max(step, 1.0)
    reach = int(np.ceil(2.0 * widen))
    offsets = np.arange(-reach, reach + 2)
    positions = np.floor(centres)[:, None] + offsets[None, :]
    kernel = cubic((positions - centres[:, None]) / widen)
    kernel /= kernel.sum(axis=1, keepdims=True)
    return np.clip(positions, 0, in_size - 1).astype(np.int64), kernel


def resample_axis(image: np.ndarray, axis: int, out_size: int, start: float,
                  step: float) -> np.ndarray:
    """Resample float64 ``image`` along ``axis``."""
    indices, kernel = taps(out_size, image.shape[axis], start, step)
    moved = np.moveaxis(image, axis, 0)
    expand = (slice(None),) + (None,) * (moved.ndim - 1)
    out = np.zeros((out_size, *moved.shape[1:]))
    for t in range(indices.shape[1]):
        out += kernel[:, t][expand] * moved[indices[:, t]]
    return np.moveaxis(out, 0, axis)


def crop_resize(image: np.ndarray, left: float, top: float, step: float,
                size: tuple[int, int]) -> np.ndarray:
    """The (H, W, C) float64 ``image`` seen by a camera whose output pixel spans ``step``
    image pixels from (``left``, ``top``); ``size`` = (width, height) of the output."""
    rows = resample_axis(image, 0, size[1], top, step)
    return resample_axis(rows, 1, size[0], left, step)


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """MATLAB ``imresize(image, 1 / factor, 'bicubic')`` of an (H, W, C) float64 image (its
    border handling aside: MATLAB mirrors, this repeats the edge)."""
    height, width = image.shape[:2]
    return crop_resize(image, 0.0, 0.0, float(factor), (width // factor, height // factor))
