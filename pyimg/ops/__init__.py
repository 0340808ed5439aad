"""pyimg's ops: functional forms that dispatch to the best available backend."""

from pyimg.ops.batch_norm import batch_norm_add, batch_norm_prelu
from pyimg.ops.conv import conv2d, dilated_conv2d
from pyimg.ops.max_pool import max_pool2d_with_indices, max_unpool2d
from pyimg.ops.pixel_shuffle import pixel_shuffle, pixel_unshuffle

__all__ = [
    "batch_norm_add",
    "batch_norm_prelu",
    "conv2d",
    "dilated_conv2d",
    "max_pool2d_with_indices",
    "max_unpool2d",
    "pixel_shuffle",
    "pixel_unshuffle",
]
