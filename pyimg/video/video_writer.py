"""Writing the upscaled video with PyAV: the encoder and pixel format chosen to keep the
input's (codec family, bit depth, chroma subsampling) unless told otherwise, the input's frame
rate, time base, timestamps, rotation and colour metadata, and its audio and subtitle streams
copied packet for packet."""

import contextlib
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from pyimg.video.layout import Layout, layout_of_format
from pyimg.video.picture import Picture, to_av_frame
from pyimg.video.video_reader import VideoInfo

# Quality-targeted defaults: visually transparent for x264/x265 (CRF 18/20), VP9's and SVT-AV1's
# equivalents; codecs not listed take their own defaults.
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 24, "libsvtav1": 28}
_HD_HEIGHT = 720  # RGB sources this tall or taller are converted with BT.709, below with BT.601


@dataclass
class EncodeOptions:
    codec: str | None = None
    crf: int | None = None
    bitrate: str | None = None
    preset: str | None = None
    pix_fmt: str | None = None


def parse_bitrate(text: str) -> int:
    units = {"k": 10**3, "m": 10**6, "g": 10**9}
    value = text.strip().lower()
    try:
        if value and value[-1] in units:
            return int(float(value[:-1]) * units[value[-1]])
        return int(float(value))
    except ValueError:
        raise ValueError(f"--bitrate {text!r}: expected a number of bits/s like 8M or 2500k") \
            from None


def _encoder_formats(codec: str) -> list[str] | None:
    import av

    formats = av.Codec(codec, "w").video_formats
    return [f.name for f in formats] if formats else None


def choose_codec(path: str, info: VideoInfo, codec: str | None) -> str:
    """``codec`` checked, or the encoder of the input's codec when the output container takes
    it, else the container's default."""
    import av

    if codec is not None:
        try:
            encoder = av.Codec(codec, "w")
        except (av.FFmpegError, ValueError):
            raise ValueError(f"--codec {codec}: no such encoder in this FFmpeg build") from None
        if encoder.type != "video":
            raise ValueError(f"--codec {codec}: not a video encoder")
        return encoder.name
    candidates = [info.codec]
    with av.open(path, "w") as probe:
        candidates.append(probe.default_video_codec)
        supported = probe.supported_codecs
    for name in candidates:
        try:
            encoder = av.Codec(name, "w")
        except (av.FFmpegError, ValueError):
            continue
        if not supported or encoder.name in supported or name in supported:
            return encoder.name
    raise ValueError(f"{path}: found no encoder for this container; give --codec")


def choose_layout(codec: str, source: Layout, info: VideoInfo, pix_fmt: str | None,
                  width: int, height: int) -> Layout:
    """The output's layout: ``pix_fmt`` when given, else the source's when ``codec`` encodes
    it, else 4:2:0 at the source's depth (8 or 10 bits)."""
    formats = _encoder_formats(codec)
    if pix_fmt is not None:
        layout = layout_of_format(pix_fmt, info.color_range, info.colorspace)
        if layout is None:
            raise ValueError(f"--pix-fmt {pix_fmt}: not a pixel format pyimg writes (planar "
                             "yuv/yuva 4:2:0/4:2:2/4:4:4 at 8-16 bits, gray, rgb24, rgba, "
                             "rgb48le, rgba64le)")
        if formats is not None and encoder_pix_fmt(layout, formats) is None:
            raise ValueError(f"--pix-fmt {pix_fmt}: {codec} cannot encode it; it encodes "
                             f"{', '.join(formats)}")
    else:
        layout = _default_layout(source, formats, height)
    if layout.family == "yuv":
        sx, sy = layout.chroma_shift
        if width % (1 << sx) or height % (1 << sy):
            raise ValueError(f"{info.path}: the upscaled size {width}x{height} cannot be "
                             f"stored as {layout.av_format()} (chroma subsampling needs even "
                             "sizes); use --pix-fmt yuv444p or another scale")
    return layout


def _default_layout(source: Layout, formats: list[str] | None, height: int) -> Layout:
    if formats is None or encoder_pix_fmt(source, formats) is not None:
        return source
    matrix = source.matrix if source.family == "yuv" else (
        "bt709" if height >= _HD_HEIGHT else "bt601")
    full = source.full_range if source.family == "yuv" else False
    for bits in dict.fromkeys((source.bits, 10, 8)):
        layout = Layout("yuv", bits, (1, 1), full_range=full, matrix=matrix)
        if bits <= max(source.bits, 8) and encoder_pix_fmt(layout, formats) is not None:
            return layout
    raise ValueError(f"no pixel format of this encoder fits a {source.family} "
                     f"{source.bits}-bit source: give --pix-fmt (it encodes {formats})")


def encoder_pix_fmt(layout: Layout, formats: list[str] | None) -> str | None:
    """The encoder's name for ``layout`` (its 'yuvj' twin for full-range-only encoders)."""
    name = layout.av_format()
    if formats is None or name in formats:
        return name
    jpeg = name.replace("yuv", "yuvj", 1)
    if layout.family == "yuv" and layout.full_range and jpeg in formats:
        return jpeg
    return None


class VideoWriter:
    def __init__(self, path: Path, info: VideoInfo, layout: Layout, width: int, height: int,
                 options: EncodeOptions, codec: str, copied_streams=(), time_offset: float = 0.0,
                 display_path: str | None = None):
        import av

        self.display_path = display_path or str(path)
        self.layout, self.info = layout, info
        try:
            self.container = av.open(str(path), "w")
        except (av.FFmpegError, ValueError) as error:
            raise ValueError(f"{self.display_path}: cannot write this format ({error})") \
                from None
        self.pix_fmt = encoder_pix_fmt(layout, _encoder_formats(codec))
        self.stream = self._video_stream(codec, width, height, options)
        self.offset_pts = round(time_offset / info.time_base) if time_offset else 0
        self.frames_written = 0
        self.time_offset = time_offset
        self.copies = {}
        supported = self.container.supported_codecs
        for source in copied_streams:
            name = source.codec_context.name
            if supported and name not in supported:
                warnings.warn(f"{self.display_path}: this container cannot hold the input's "
                              f"{source.type} stream #{source.index} ({name}); it is dropped",
                              stacklevel=2)
                continue
            self.copies[source.index] = self.container.add_stream_from_template(source)

    def _video_stream(self, codec: str, width: int, height: int, options: EncodeOptions):
        info = self.info
        stream = self.container.add_stream(codec, rate=info.rate or Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, self.pix_fmt
        stream.time_base = info.time_base
        cc = stream.codec_context
        cc.time_base = info.time_base
        if self.layout.family == "yuv":
            cc.color_range = 2 if self.layout.full_range else 1
            same_matrix = info.layout.family == "yuv" and info.layout.matrix == self.layout.matrix
            cc.colorspace = info.colorspace if same_matrix else self.layout.colorspace()
        cc.color_primaries, cc.color_trc = info.color_primaries, info.color_trc
        stream.options = self._encoder_options(codec, options)
        if options.bitrate is not None:
            stream.bit_rate = parse_bitrate(options.bitrate)
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        return stream

    def _encoder_options(self, codec: str, options: EncodeOptions) -> dict[str, str]:
        out = {}
        crf = options.crf
        if crf is None and options.bitrate is None:
            crf = DEFAULT_CRF.get(codec)
        if crf is not None:
            if codec not in DEFAULT_CRF:
                raise ValueError(f"--crf: {codec} has no constant-quality (CRF) mode; give "
                                 "--bitrate instead")
            out["crf"] = str(crf)
            if codec == "libvpx-vp9" and options.bitrate is None:
                out["b"] = "0"  # VP9's constant-quality mode needs a zero target bitrate
        if options.preset is not None:
            out["preset"] = options.preset
        return out

    def _mux(self, packets) -> None:
        import av

        try:
            for packet in packets:
                self.container.mux(packet)
        except av.FFmpegError as error:
            raise OSError(f"{self.display_path}: writing failed ({error})") from None

    def write(self, picture: Picture) -> None:
        frame = to_av_frame(picture, self.pix_fmt)
        if frame.pts is not None:
            frame.pts -= self.offset_pts
        else:  # a stream without timestamps (raw H.264, say): frames at the nominal rate
            frame.pts = round(self.frames_written / (self.stream.average_rate or Fraction(25))
                              / self.info.time_base)
        self.frames_written += 1
        frame.time_base = self.info.time_base
        self._mux(self.stream.encode(frame))

    def copy(self, packet) -> None:
        stream = self.copies.get(packet.stream.index)
        if stream is None:
            return
        if self.time_offset:
            shift = round(self.time_offset / packet.time_base)
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
        packet.stream = stream
        self._mux([packet])

    def close(self) -> None:
        self._mux(self.stream.encode(None))
        self.container.close()

    def abort(self) -> None:
        import av

        # The caller deletes the file: a trailer that fails to write does not matter.
        with contextlib.suppress(av.FFmpegError, OSError):
            self.container.close()
