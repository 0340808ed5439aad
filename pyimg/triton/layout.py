"""Layout helpers the elementwise Triton kernels share: the (n, c, h, w) of a flat offset into a
tensor contiguous in NCHW or NHWC order, and the allocation of such a tensor."""

import torch
import triton
import triton.language as tl


@triton.jit
def nchw_or_nhwc_coords(o, C, H, W, CHANNELS_LAST: tl.constexpr):
    """(n, c, h, w) of flat offsets o into a contiguous (N, C, H, W) tensor of that format."""
    if CHANNELS_LAST:
        c = o % C
        t = o // C
        w = t % W
        t = t // W
        h = t % H
        n = t // H
    else:
        w = o % W
        t = o // W
        h = t % H
        t = t // H
        c = t % C
        n = t // C
    return n, c, h, w


def empty_in_format(shape, like: torch.Tensor, channels_last: bool,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialized tensor on like's device, of like's dtype unless dtype is given,
    contiguous in NHWC (channels_last) or NCHW order."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=like.dtype if dtype is None else dtype, device=like.device,
                       memory_format=fmt)
