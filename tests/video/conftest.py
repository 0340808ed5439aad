"""What the video tests share: tiny clips made on the spot (video, audio, subtitles, rotation,
colour tags) and a small ESPCN saved as a weights file that names its architecture."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from pyimg.models import ESPCN
from pyimg.video import save_weights

SUBTITLES = "1\n00:00:00,000 --> 00:00:00,200\nhello\n\n2\n00:00:00,250 --> 00:00:00,400\nworld\n"


def frame_planes(index: int, width: int, height: int, fmt: str, rng) -> list[np.ndarray]:
    """Planes of a moving diagonal gradient with noise, for any planar yuv/gray format."""
    import av

    frame = av.VideoFrame(width, height, fmt)
    bits = max(c.bits for c in frame.format.components)
    top = (1 << bits) - 1
    planes = []
    for plane in frame.planes:
        y, x = np.mgrid[0:plane.height, 0:plane.width]
        wave = (x * 7 + y * 5 + index * 9) % 256 / 255.0
        values = wave * top * 0.8 + rng.random((plane.height, plane.width)) * top * 0.2
        planes.append(values.astype(np.uint8 if bits == 8 else np.uint16))
    return planes


def write_clip(path: Path, frames: int = 10, size=(48, 32), pix_fmt: str = "yuv420p",
               codec: str = "libx264", rate: int = 24, audio: bool = True,
               subtitles: bool = False, rotation: int = 0, colorspace: int | None = None,
               color_range: int | None = None, options: dict | None = None, seed: int = 0):
    """Write a clip; returns the list of per-frame planes that went into the encoder."""
    import av

    rng = np.random.default_rng(seed)
    width, height = size
    written = []
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if colorspace is not None:
            cc = video.codec_context
            cc.colorspace = cc.color_primaries = cc.color_trc = colorspace
        if color_range is not None:
            video.codec_context.color_range = color_range
        video.options = options or ({"crf": "18"} if codec.startswith("libx26") else {})
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=16000, layout="mono")
        subtitle_source = None
        if subtitles:
            srt = path.with_suffix(".srt")
            srt.write_text(SUBTITLES)
            subtitle_source = av.open(str(srt))
            subtitle = container.add_stream_from_template(subtitle_source.streams[0])
        for i in range(frames):
            planes = frame_planes(i, width, height, pix_fmt, rng)
            frame = av.VideoFrame(width, height, pix_fmt)
            for plane, values in zip(frame.planes, planes, strict=True):
                view = np.frombuffer(plane, values.dtype).reshape(plane.height, -1)
                view[:, :plane.width] = values
            frame.pts = i
            written.append(planes)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            samples = int(16000 * frames / rate)
            wave = (0.3 * np.sin(np.arange(samples) * 0.05)).astype(np.float32)[None]
            chunk = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 16000, 0, Fraction(1, 16000)
            for packet in [*sound.encode(chunk), *sound.encode(None)]:
                container.mux(packet)
        if subtitle_source is not None:
            for packet in subtitle_source.demux(subtitle_source.streams[0]):
                if packet.dts is not None:
                    packet.stream = subtitle
                    container.mux(packet)
            subtitle_source.close()
    return written


def _decode_planes(path: Path) -> list[list[np.ndarray]]:
    """Every frame of a video's first stream as planes (pyimg's own reading)."""
    from pyimg.video.video_reader import VideoReader

    reader = VideoReader(path, copy_streams=False)
    try:
        return [[p.copy() for p in item.planes] for item in reader]
    finally:
        reader.close()


def _packets(path: Path, kind: str) -> list[tuple]:
    """(bytes, pts seconds) of every packet of the first ``kind`` stream."""
    import av

    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        if not streams:
            return []
        return [(bytes(p), float(p.pts * p.time_base)) for p in container.demux(streams[0])
                if p.size]


@pytest.fixture(scope="session")
def espcn_weights(tmp_path_factory) -> Path:
    """A seeded random ESPCN x2 (16 filters) as a weights file naming its architecture."""
    torch.manual_seed(0)
    model = ESPCN(2, channels=16)
    path = tmp_path_factory.mktemp("weights") / "espcn_x2.safetensors"
    save_weights(path, model, "ESPCN", {"upscale_factor": 2, "channels": 16}, 2, "y")
    return path


@pytest.fixture
def clip(tmp_path):
    """write_clip into tmp_path: clip(name, **options) -> (path, planes written)."""
    def make(name: str = "in.mp4", **options):
        path = tmp_path / name
        return path, write_clip(path, **options)
    return make


@pytest.fixture
def decode_planes():
    """decode_planes(path) -> every frame of the first video stream as numpy planes."""
    return _decode_planes


@pytest.fixture
def packets():
    """packets(path, kind) -> (bytes, seconds) of each packet of the first such stream."""
    return _packets
