"""A batch of integer planes -> a model's input, and its output -> integer planes of the output
layout, all in torch on the device that runs the model.

Luminance ("y") models see the luma and nothing else, as in the ESPCN paper: the chroma is kept
at its own resolution and resampled bicubically once, straight to the size the output layout
needs; a Y'CbCr input is fed plane by plane (its own luma, range-normalized, with no round trip
through RGB), an RGB one is split by BT.601 as MATLAB's ``rgb2ycbcr`` does. RGB models see
R'G'B'. Alpha never reaches a model: it is resampled bicubically on its own.

The common case, a Y'CbCr video written back with the same matrix, range and depth, takes a
direct path: one multiply from Y samples to model values and back, and the chroma resampled as
samples, so the planes are read and written about once each.
"""

from dataclasses import dataclass

import torch

from pyimg.video import color
from pyimg.video.layout import Layout

CHANNELS = ("y", "rgb")


@dataclass
class Kept:
    """What the model does not see, carried from input to output."""

    chroma: torch.Tensor | None  # (B, 2, h, w) Cb, Cr with a y model: samples on the direct
    # path, else the signal
    matrix: str  # the chroma's Y'CbCr matrix
    alpha: torch.Tensor | None  # (B, 1, H, W) in [0, 1]


def _as_float(plane: torch.Tensor) -> torch.Tensor:
    """(B, H, W) or packed (B, H, W, C) integer samples -> (B, C, H, W) float32."""
    plane = plane.unsqueeze(1) if plane.dim() == 3 else plane.permute(0, 3, 1, 2)
    return color.samples_to_float(plane)


class ColourPath:
    """Converts between ``in_layout`` planes, a ``channels`` ("y" or "rgb") model's values and
    ``out_layout`` planes."""

    def __init__(self, in_layout: Layout, out_layout: Layout, channels: str):
        if channels not in CHANNELS:
            raise ValueError(f"model channels must be one of {CHANNELS}, got {channels!r}")
        self.in_layout, self.out_layout, self.channels = in_layout, out_layout, channels
        self.direct = (channels == "y" and in_layout.family == out_layout.family == "yuv"
                       and (in_layout.bits, in_layout.full_range, in_layout.matrix)
                       == (out_layout.bits, out_layout.full_range, out_layout.matrix))

    def to_model(self, planes: list[torch.Tensor]) -> tuple[torch.Tensor, Kept]:
        layout = self.in_layout
        alpha = _as_float(planes[-1]) / layout.max_value if layout.alpha else None
        if self.direct:
            scale, offset = color.luma_model_affine(layout)
            values = _as_float(planes[0]).mul_(scale)
            chroma = torch.cat([_as_float(p) for p in planes[1:3]], 1)
            return (values.add_(offset) if offset else values), Kept(chroma, layout.matrix,
                                                                      alpha)
        matrix, chroma = "bt601", None
        if layout.family == "yuv":
            luma = color.decode_luma(_as_float(planes[0]), layout)
            chroma = color.decode_chroma(torch.cat([_as_float(p) for p in planes[1:3]], 1),
                                         layout)
            matrix = layout.matrix
            if self.channels == "rgb":
                full = color.resize(chroma, luma.shape[-2:])
                return color.ycc_to_rgb(luma, full, matrix).clamp_(0, 1), Kept(None, matrix,
                                                                                 alpha)
        elif layout.family == "rgb":
            rgb = _as_float(planes[0]) / layout.max_value
            if self.channels == "rgb":
                return rgb, Kept(None, matrix, alpha)
            luma, chroma = color.rgb_to_ycc(rgb, matrix)
        else:
            luma = _as_float(planes[0]) / layout.max_value
            if self.channels == "rgb":
                return luma.expand(-1, 3, -1, -1), Kept(None, matrix, alpha)
        return color.luma_to_model(luma), Kept(chroma, matrix, alpha)

    def from_model(self, values: torch.Tensor, kept: Kept) -> list[torch.Tensor]:
        """Model output (B, C, H, W) in [0, 1] (clamped here) -> integer planes."""
        size = values.shape[-2:]
        out = self.out_layout
        if self.direct:
            planes = self._direct(values.float(), kept)
        elif self.channels == "rgb":
            planes = self._from_rgb(values.float().clamp(0, 1))
        else:
            planes = self._from_ycc(color.model_to_luma(values.float().clamp(0, 1)), kept)
        if out.alpha:
            alpha = kept.alpha if kept.alpha is not None else values.new_ones(
                values.shape[0], 1, *size)
            planes.append(color.quantize(color.resize(alpha, size).clamp(0, 1) * out.max_value,
                                         out)[:, 0])
        return planes

    def _direct(self, values: torch.Tensor, kept: Kept) -> list[torch.Tensor]:
        """Model values and chroma samples -> planes. Clamping luma codes to 0..2^bits - 1
        clamps the model output to [0, 1] (to [0, 1023/1020] at 10-bit limited range)."""
        out = self.out_layout
        scale, offset = color.luma_model_affine(out)
        luma = color.quantize((values - offset).mul_(1.0 / scale), out)[:, 0]
        chroma = color.resize(kept.chroma, out.chroma_size(*values.shape[-2:]))
        low, high = color.chroma_limits(out)
        chroma = color.quantize(chroma.clamp_(low, high), out)
        return [luma, chroma[:, 0], chroma[:, 1]]

    def _from_rgb(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        out = self.out_layout
        if out.family == "rgb":
            return [color.quantize(rgb * out.max_value, out).permute(0, 2, 3, 1)]
        luma, chroma = color.rgb_to_ycc(rgb, out.matrix if out.family == "yuv" else "bt601")
        return self._encode_ycc(luma, chroma, out.matrix)

    def _from_ycc(self, luma: torch.Tensor, kept: Kept) -> list[torch.Tensor]:
        out = self.out_layout
        chroma, matrix = kept.chroma, kept.matrix
        if chroma is None:  # a gray input: no chroma, in any matrix
            chroma, matrix = luma.new_zeros(luma.shape[0], 2, 1, 1), out.matrix
        if out.family == "gray" or (out.family == "yuv" and out.matrix == matrix):
            return self._encode_ycc(luma, chroma, matrix)
        full = color.resize(chroma, luma.shape[-2:])
        return self._from_rgb(color.ycc_to_rgb(luma, full, matrix).clamp_(0, 1))

    def _encode_ycc(self, luma: torch.Tensor, chroma: torch.Tensor,
                    matrix: str) -> list[torch.Tensor]:
        out = self.out_layout
        if out.family == "gray":
            return [color.quantize(luma * out.max_value, out)[:, 0]]
        chroma = color.resize(chroma, out.chroma_size(*luma.shape[-2:])).clamp_(-0.5, 0.5)
        samples = color.quantize(color.encode_chroma(chroma, out), out)
        return [color.quantize(color.encode_luma(luma, out), out)[:, 0], samples[:, 0],
                samples[:, 1]]
