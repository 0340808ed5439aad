"""Reading a video with PyAV: its first video stream decoded to pictures (FFmpeg's frame
threads on), the audio and subtitle packets passed through for stream copy, a frame window
applied to both, and what the writer needs to keep (size, rate, time base, rotation, colour
metadata)."""

import collections
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from pyimg.video.layout import Layout
from pyimg.video.picture import Picture, from_av_frame

MIN_SIDE = 4  # bicubic chroma and the codecs' smallest blocks need a few pixels


@dataclass
class Passthrough:
    """A packet of a copied (audio, subtitle) stream, on its way to the muxer."""

    packet: object


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    layout: Layout
    rate: Fraction | None
    time_base: Fraction
    rotation: int
    codec: str
    color_range: int
    colorspace: int
    color_primaries: int
    color_trc: int
    frames: int  # an estimate from the container (0: unknown)
    start_pts: int | None


def open_input(path: str | Path):
    import av

    path = str(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return av.open(path)
    except av.FFmpegError as error:
        raise ValueError(f"{path}: not a readable video ({error})") from None


class VideoReader:
    """Iterates ``Picture`` (video frames with index ``first <= i < stop`` and presentation
    time in ``[pts_start, pts_stop)``) and ``Passthrough`` items in demux order. Copied packets
    outside the kept frames' time span are dropped; ``time_offset`` (seconds) is the start of
    the kept span when it does not start at the beginning, so outputs start at zero."""

    def __init__(self, path: str | Path, first: int = 0, stop: int | None = None,
                 pts_start: int | None = None, pts_stop: int | None = None,
                 copy_streams: bool = True):
        import av

        self.path = str(path)
        self.container = open_input(path)
        if not self.container.streams.video:
            self.container.close()
            raise ValueError(f"{self.path}: has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.copied = [s for s in self.container.streams
                       if copy_streams and s.type in ("audio", "subtitle")]
        self.first, self.stop = first, stop
        self.pts_start, self.pts_stop = pts_start, pts_stop
        if pts_start is not None:
            self.container.seek(pts_start, stream=self.stream, backward=True)
        self._rotation = 0
        self._items = self._demux()
        self._peeked = collections.deque()
        try:
            first_picture = self._peek_picture()
        except av.FFmpegError as error:
            raise ValueError(f"{self.path}: cannot decode its video ({error})") from None
        if first_picture is None:
            raise ValueError(f"{self.path}: has no video frames"
                             + (" in the range asked for" if first or pts_start else ""))
        height, width = first_picture.size
        if min(height, width) < MIN_SIDE:
            raise ValueError(f"{self.path}: frames of {width}x{height} are too small to upscale "
                             f"(at least {MIN_SIDE}x{MIN_SIDE})")
        cc = self.stream.codec_context
        self.info = VideoInfo(
            path=self.path, width=width, height=height, layout=first_picture.layout,
            rate=self.stream.average_rate or self.stream.guessed_rate,
            time_base=self.stream.time_base, rotation=self._rotation,
            codec=cc.name, color_range=cc.color_range, colorspace=cc.colorspace,
            color_primaries=cc.color_primaries, color_trc=cc.color_trc,
            frames=self._frame_estimate(), start_pts=first_picture.pts)

    def _frame_estimate(self) -> int:
        frames = self.stream.frames
        if not frames and self.stream.duration and self.stream.average_rate:
            frames = int(self.stream.duration * self.stream.time_base
                         * self.stream.average_rate)
        if self.stop is not None:
            frames = min(frames, self.stop) if frames else self.stop
        return max(0, frames - self.first) if frames else 0

    def _peek_picture(self) -> Picture | None:
        for item in self._items:
            self._peeked.append(item)
            if isinstance(item, Picture):
                return item
        return None

    def time_offset(self) -> float:
        """Seconds to subtract from every timestamp so the output starts where the kept
        frames start (0 when the whole video is kept)."""
        if not self.first and self.pts_start is None:
            return 0.0
        return float(self.info.start_pts * self.stream.time_base)

    def __iter__(self):
        while self._peeked:
            yield self._peeked.popleft()
        yield from self._items

    def _in_window(self, pts: int | None) -> bool:
        if pts is None:
            return True
        return ((self.pts_start is None or pts >= self.pts_start)
                and (self.pts_stop is None or pts < self.pts_stop))

    def _demux(self):
        """Frames in the window, with copied packets released once a kept frame at or after
        their time has been seen, so the window's end can drop the ones beyond it."""
        windowed = self.first > 0 or self.pts_start is not None
        index, start_time, end_time = 0, None, None
        held: collections.deque = collections.deque()
        color = self.stream.codec_context
        for packet in self.container.demux([self.stream, *self.copied]):
            if packet.stream.index != self.stream.index:
                if packet.dts is not None or packet.pts is not None:
                    held.append(packet)
                continue
            for frame in packet.decode():  # the final empty packet flushes the decoder
                pts = frame.pts
                if self.pts_start is not None and pts is not None and pts < self.pts_start:
                    continue
                if ((self.pts_stop is not None and pts is not None and pts >= self.pts_stop)
                        or (self.stop is not None and index >= self.stop)):
                    end_time = frame.time
                    break
                if index == 0:
                    self._rotation = round(frame.rotation or 0) % 360
                index += 1
                if index <= self.first:
                    continue
                now = frame.time if frame.time is not None else float("inf")
                if start_time is None:
                    start_time = now
                    while windowed and held and _time(held[0]) < start_time:
                        held.popleft()
                while held and _time(held[0]) <= now:
                    yield Passthrough(held.popleft())
                yield from_av_frame(frame, color.color_range, color.colorspace)
            if end_time is not None:
                break
        for packet in held:
            if end_time is None or _time(packet) < end_time:
                yield Passthrough(packet)

    def close(self) -> None:
        self.container.close()


def _time(packet) -> float:
    stamp = packet.pts if packet.pts is not None else packet.dts
    return float(stamp * packet.time_base)
