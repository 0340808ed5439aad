"""How a picture's samples are laid out: colour family, bit depth, chroma subsampling, alpha,
range and matrix; and which FFmpeg pixel formats map to which layout.

A picture travels through the pipeline as a list of numpy planes in its layout's order:
``yuv``: Y, Cb, Cr (chroma smaller by ``chroma_shift``), then alpha; ``rgb``: one packed
(H, W, 3) array, then alpha as its own (H, W) plane; ``gray``: Y, then alpha.
"""

import re
from dataclasses import dataclass

import numpy as np

FAMILIES = ("yuv", "rgb", "gray")
MATRICES = ("bt601", "bt709", "bt2020")

# FFmpeg's AVColorSpace values that name a luma matrix pyimg converts with, and back.
_MATRIX_OF_COLORSPACE = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}
_COLORSPACE_OF_MATRIX = {"bt709": 1, "bt601": 6, "bt2020": 9}
_SHIFT_OF_SUBSAMPLING = {"420": (1, 1), "422": (1, 0), "444": (0, 0), "440": (0, 1)}
_SUBSAMPLING_OF_SHIFT = {v: k for k, v in _SHIFT_OF_SUBSAMPLING.items()}
_PLANAR_YUV = re.compile(r"yuv(a?)(j?)(420|422|444|440)p(?:(9|10|12|14|16)le)?")
_GRAY = re.compile(r"gray(?:(9|10|12|14|16)le)?")
_PACKED_RGB = {"rgb24": (8, False), "rgba": (8, True), "rgb48le": (16, False),
               "rgba64le": (16, True)}


@dataclass(frozen=True)
class Layout:
    family: str
    bits: int = 8
    chroma_shift: tuple[int, int] = (0, 0)  # log2 of the chroma subsampling (x, y)
    alpha: bool = False
    full_range: bool = False  # yuv: limited ("studio", Y in 16..235 at 8 bits) or full
    matrix: str = "bt601"  # yuv: the Y'CbCr matrix of the samples

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"layout family must be one of {FAMILIES}, got {self.family!r}")
        if not 8 <= self.bits <= 16:
            raise ValueError(f"layout bits must be 8..16, got {self.bits}")
        if self.matrix not in MATRICES:
            raise ValueError(f"layout matrix must be one of {MATRICES}, got {self.matrix!r}")

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bits == 8 else np.uint16)

    @property
    def max_value(self) -> int:
        return (1 << self.bits) - 1

    def chroma_size(self, height: int, width: int) -> tuple[int, int]:
        sx, sy = self.chroma_shift
        return -(-height >> sy), -(-width >> sx)

    def plane_shapes(self, height: int, width: int) -> list[tuple[int, ...]]:
        if self.family == "yuv":
            shapes = [(height, width)] + [self.chroma_size(height, width)] * 2
        elif self.family == "rgb":
            shapes = [(height, width, 3)]
        else:
            shapes = [(height, width)]
        return shapes + [(height, width)] * self.alpha

    def frame_bytes(self, height: int, width: int) -> int:
        return sum(int(np.prod(s)) for s in self.plane_shapes(height, width)) * self.dtype.itemsize

    def av_format(self) -> str:
        """The FFmpeg pixel format with this layout's planes (full-range yuv keeps the plain
        name: the range travels as stream metadata)."""
        depth = "" if self.bits == 8 else f"{self.bits}le"
        if self.family == "rgb":
            return {(8, False): "rgb24", (8, True): "rgba", (16, False): "rgb48le",
                    (16, True): "rgba64le"}[self.bits, self.alpha]
        if self.family == "gray":
            if self.alpha:
                raise ValueError("gray with alpha has no planar FFmpeg pixel format")
            return "gray" + depth
        name = "yuva" if self.alpha else "yuv"
        return f"{name}{_SUBSAMPLING_OF_SHIFT[self.chroma_shift]}p{depth}"

    def colorspace(self) -> int:
        """FFmpeg's AVColorSpace of this layout's matrix."""
        return _COLORSPACE_OF_MATRIX[self.matrix]


def layout_of_format(name: str, color_range: int = 0, colorspace: int = 2) -> Layout | None:
    """The layout of FFmpeg pixel format ``name`` in a stream with range ``color_range``
    (AVColorRange: 2 is full) and matrix ``colorspace`` (AVColorSpace; unspecified reads as
    BT.601), or None when pyimg does not read that format plane by plane: convert those to
    ``nearest_layout(name)`` first."""
    if name in _PACKED_RGB:
        bits, alpha = _PACKED_RGB[name]
        return Layout("rgb", bits, alpha=alpha)
    if match := _GRAY.fullmatch(name):
        return Layout("gray", int(match[1] or 8))
    if match := _PLANAR_YUV.fullmatch(name):
        alpha, jpeg, subsampling, depth = match.groups()
        return Layout("yuv", int(depth or 8), _SHIFT_OF_SUBSAMPLING[subsampling],
                      alpha=bool(alpha), full_range=bool(jpeg) or color_range == 2,
                      matrix=_MATRIX_OF_COLORSPACE.get(colorspace, "bt601"))
    return None


def nearest_layout(name: str, color_range: int = 0, colorspace: int = 2) -> Layout:
    """The layout FFmpeg converts pixel format ``name`` to when pyimg cannot read it as is:
    the same family, alpha and chroma subsampling where pyimg has them, and at least the
    format's bit depth."""
    import av

    if (layout := layout_of_format(name, color_range, colorspace)) is not None:
        return layout
    fmt = av.VideoFormat(name)
    alpha = any(c.is_alpha for c in fmt.components)
    depth = max(c.bits for c in fmt.components)
    bits = next(b for b in (8, 10, 12, 16) if b >= depth)
    colour_components = [c for c in fmt.components if not c.is_alpha]
    if fmt.is_rgb or fmt.has_palette or fmt.is_bayer or (alpha and len(colour_components) == 1):
        return Layout("rgb", 8 if bits == 8 else 16, alpha=alpha)
    if len(colour_components) == 1:
        return Layout("gray", bits)
    subsampling = next((s for s in ("420", "422", "440") if s in name), "444")
    if name.startswith(("nv12", "nv21", "p010", "p012", "p016")):
        subsampling = "420"
    elif name.startswith(("nv16", "p210", "p212", "p216", "yuyv", "uyvy", "yvyu")):
        subsampling = "422"
    if alpha and subsampling == "440":
        subsampling = "444"
    if alpha and bits == 12 and subsampling == "420":
        bits = 16
    return Layout("yuv", bits, _SHIFT_OF_SUBSAMPLING[subsampling], alpha=alpha,
                  full_range=color_range == 2,
                  matrix=_MATRIX_OF_COLORSPACE.get(colorspace, "bt601"))
