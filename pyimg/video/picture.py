"""One picture as the pipeline carries it (numpy planes in a ``Layout``), and the conversions
to and from PyAV's frames, without copies on the way in."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyimg.video.layout import Layout, layout_of_format, nearest_layout


@dataclass
class Picture:
    planes: list[np.ndarray]
    layout: Layout
    pts: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # what a sink needs: a path, metadata

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.planes[0].shape[:2]

    def batch_key(self) -> tuple:
        return self.layout, self.size


def _plane_array(plane, dtype: np.dtype, rows: int, values: int) -> np.ndarray:
    line = plane.line_size // dtype.itemsize
    return np.frombuffer(plane, dtype).reshape(plane.height, line)[:rows, :values]


def from_av_frame(frame, color_range: int = 0, colorspace: int = 2) -> Picture:
    """A decoded frame as planes (converted by FFmpeg first when pyimg does not read its pixel
    format as is); ``color_range`` and ``colorspace`` are the stream's, used where the frame
    leaves them unspecified."""
    color_range = frame.color_range or color_range
    colorspace = frame.colorspace if frame.colorspace not in (0, 2) else colorspace
    layout = layout_of_format(frame.format.name, color_range, colorspace)
    if layout is None:
        layout = nearest_layout(frame.format.name, color_range, colorspace)
        frame = frame.reformat(format=layout.av_format())
    height, width = frame.height, frame.width
    dtype = layout.dtype
    if layout.family == "rgb":
        channels = 4 if layout.alpha else 3
        packed = _plane_array(frame.planes[0], dtype, height, width * channels)
        packed = packed.reshape(height, width, channels)
        planes = [packed[..., :3], packed[..., 3]] if layout.alpha else [packed]
    else:
        shapes = layout.plane_shapes(height, width)
        planes = [_plane_array(p, dtype, *shape) for p, shape in zip(frame.planes, shapes,
                                                                       strict=True)]
    return Picture(planes, layout, frame.pts)


def to_av_frame(picture: Picture, av_format: str | None = None):
    """The picture as a PyAV frame (one copy) of its layout's pixel format, or of
    ``av_format``, another name for the same planes (``yuvj420p`` for full-range ``yuv420p``)."""
    import av

    layout = picture.layout
    height, width = picture.size
    frame = av.VideoFrame(width, height, av_format or layout.av_format())
    dtype = layout.dtype
    if layout.family == "rgb":
        channels = 4 if layout.alpha else 3
        packed = _plane_array(frame.planes[0], dtype, height, width * channels)
        packed = packed.reshape(height, width, channels)
        packed[..., :3] = picture.planes[0]
        if layout.alpha:
            packed[..., 3] = picture.planes[1]
    else:
        for plane, values in zip(frame.planes, picture.planes, strict=True):
            _plane_array(plane, dtype, *values.shape)[...] = values
    frame.pts = picture.pts
    if layout.family == "yuv":
        frame.color_range = 2 if layout.full_range else 1
        frame.colorspace = layout.colorspace()
    return frame
