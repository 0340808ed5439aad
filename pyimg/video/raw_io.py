"""Raw frames on a pipe, as ``ffmpeg -f rawvideo`` reads and writes them: each frame its
pixel format's planes back to back (packed for rgb24/rgba/rgb48le/rgba64le), no header."""

from fractions import Fraction

import numpy as np

from pyimg.video.layout import Layout, layout_of_format
from pyimg.video.picture import Picture
from pyimg.video.video_reader import MIN_SIDE, VideoInfo


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {text!r}: expected WIDTHxHEIGHT, like 1280x720") from None
    if min(width, height) < MIN_SIDE:
        raise ValueError(f"--size {text}: frames must be at least {MIN_SIDE}x{MIN_SIDE}")
    return width, height


def raw_layout(pix_fmt: str | None) -> Layout:
    if pix_fmt is None:
        raise ValueError("raw frames on a pipe need --pix-fmt (like rgb24 or yuv420p)")
    layout = layout_of_format(pix_fmt)
    if layout is None or (layout.family == "yuv" and layout.alpha):
        raise ValueError(f"--pix-fmt {pix_fmt}: not a raw format pyimg reads (rgb24, rgba, "
                         "rgb48le, rgba64le, gray, gray16le, planar yuv 4:2:0/4:2:2/4:4:4)")
    return layout


def raw_info(width: int, height: int, layout: Layout, fps: float | None) -> VideoInfo:
    rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(30)
    return VideoInfo(path="<stdin>", width=width, height=height, layout=layout, rate=rate,
                     time_base=1 / rate, rotation=0, codec="rawvideo", color_range=0,
                     colorspace=2, color_primaries=2, color_trc=2, frames=0, start_pts=0)


class RawReader:
    def __init__(self, stream, width: int, height: int, layout: Layout):
        self.stream, self.width, self.height, self.layout = stream, width, height, layout
        self.frame_bytes = layout.frame_bytes(height, width)

    def _read_frame(self) -> bytes | None:
        data = bytearray()
        while len(data) < self.frame_bytes:
            chunk = self.stream.read(self.frame_bytes - len(data))
            if not chunk:
                break
            data += chunk
        if not data:
            return None
        if len(data) < self.frame_bytes:
            raise ValueError(f"stdin: the stream ended inside a frame ({len(data)} of "
                             f"{self.frame_bytes} bytes of a {self.width}x{self.height} "
                             f"{self.layout.av_format()} frame); check --size and --pix-fmt")
        return bytes(data)

    def __iter__(self):
        layout, dtype = self.layout, self.layout.dtype
        index = 0
        while (data := self._read_frame()) is not None:
            values = np.frombuffer(data, dtype)
            if layout.family == "rgb":
                channels = 4 if layout.alpha else 3
                packed = values.reshape(self.height, self.width, channels)
                planes = [packed[..., :3], packed[..., 3]] if layout.alpha else [packed]
            else:
                planes, offset = [], 0
                for shape in layout.plane_shapes(self.height, self.width):
                    count = int(np.prod(shape))
                    planes.append(values[offset:offset + count].reshape(shape))
                    offset += count
            yield Picture(planes, layout, index)
            index += 1


class RawWriter:
    def __init__(self, stream):
        self.stream = stream

    def write(self, picture: Picture) -> None:
        planes = picture.planes
        if picture.layout.family == "rgb" and picture.layout.alpha:
            planes = [np.concatenate([planes[0], planes[1][..., None]], axis=-1)]
        for plane in planes:
            self.stream.write(np.ascontiguousarray(plane).tobytes())

    def copy(self, packet) -> None:
        pass  # a raw pipe carries video only

    def close(self) -> None:
        self.stream.flush()

    def abort(self) -> None:
        self.close()
