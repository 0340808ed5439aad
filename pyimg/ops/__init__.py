"""pyimg's ops: functional forms that dispatch to the best available backend."""

from pyimg.ops.pixel_shuffle import pixel_shuffle, pixel_unshuffle

__all__ = ["pixel_shuffle", "pixel_unshuffle"]
