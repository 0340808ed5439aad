"""Videos through the whole pipeline: values equal to the model applied frame by frame, and the
output keeps the input's frames, timing, rotation, colour metadata, bit depth and audio."""

import av
import numpy as np
import pytest
import torch

from pyimg.video import load_model, upscale
from pyimg.video.layout import Layout
from pyimg.video.planes import ColourPath


def expected_planes(sr, planes: list[np.ndarray], layout: Layout) -> list[np.ndarray]:
    """The model applied to one decoded frame, outside the pipeline."""
    path = ColourPath(layout, layout, sr.channels)
    tensors = [torch.from_numpy(p.copy())[None] for p in planes]
    with torch.inference_mode():
        values, kept = path.to_model(tensors)
        out = path.from_model(sr.module(values), kept)
    return [p[0].numpy() for p in out]


def _stream(path, kind="video"):
    container = av.open(str(path))
    return container, next(s for s in container.streams if s.type == kind)


@pytest.mark.parametrize(("pix_fmt", "batch"), [("yuv420p", 1), ("yuv420p10le", 3)])
def test_values_are_the_model_applied_to_each_frame(clip, tmp_path, espcn_weights, pix_fmt,
                                                    batch, decode_planes):
    """Lossless in and out (FFV1), so decoded output must equal the model on decoded input;
    10-bit stays 10-bit; a batch of 3 over 7 frames ends with a partial batch."""
    source, _ = clip("in.mkv", frames=7, size=(38, 22), pix_fmt=pix_fmt, codec="ffv1",
                     audio=False)
    out = tmp_path / "out.mkv"
    report = upscale(source, out, str(espcn_weights), batch=batch, progress=False)
    assert report["frames"] == 7 and report["pix_fmt"] == pix_fmt
    assert report["output_size"] == [76, 44]
    sr = load_model(str(espcn_weights))
    inputs, outputs = decode_planes(source), decode_planes(out)
    assert len(outputs) == 7
    layout = Layout("yuv", 8 if pix_fmt == "yuv420p" else 10, (1, 1))
    for planes_in, planes_out in zip(inputs, outputs, strict=True):
        for want, got in zip(expected_planes(sr, planes_in, layout), planes_out, strict=True):
            assert got.dtype == want.dtype and got.shape == want.shape
            assert np.abs(got.astype(np.int32) - want.astype(np.int32)).max() <= 1
    assert {s for s in report["stages"]} == {"decode", "upload", "model", "download", "encode"}
    for stage in report["stages"].values():
        assert 0 <= stage["p50_ms"] <= stage["p90_ms"]


def test_output_keeps_timing_rotation_colour_audio_and_subtitles(clip, tmp_path, packets):
    source, _ = clip("in.mkv", frames=10, subtitles=True, rotation=90, colorspace=1)
    out = tmp_path / "out.mkv"
    upscale(source, out, "bicubic", scale=2, progress=False)
    container_in, video_in = _stream(source)
    container_out, video_out = _stream(out)
    with container_in, container_out:
        assert (video_out.width, video_out.height) == (96, 64)
        assert video_out.average_rate == video_in.average_rate == 24
        assert video_out.time_base == video_in.time_base
        for field in ("color_range", "colorspace", "color_primaries", "color_trc"):
            assert getattr(video_out.codec_context, field) == getattr(
                video_in.codec_context, field)
        assert video_out.codec_context.colorspace == 1  # BT.709, kept
        frames_in = [(f.pts, f.rotation) for f in container_in.decode(video_in)]
        frames_out = [(f.pts, f.rotation) for f in container_out.decode(video_out)]
    assert frames_out == frames_in and frames_in[0][1] == 90
    assert packets(out, "audio") == packets(source, "audio") != []
    assert packets(out, "subtitle") == packets(source, "subtitle") != []


def test_mp4_keeps_its_time_base(clip, tmp_path, packets):
    source, _ = clip("in.mp4", frames=6)
    out = tmp_path / "out.mp4"
    upscale(source, out, "bicubic", scale=2, progress=False)
    container_in, video_in = _stream(source)
    container_out, video_out = _stream(out)
    with container_in, container_out:
        assert video_out.time_base == video_in.time_base
        assert [f.pts for f in container_out.decode(video_out)] == [
            f.pts for f in container_in.decode(video_in)]
    assert packets(out, "audio") == packets(source, "audio") != []


def test_frame_range_cuts_video_and_audio(clip, tmp_path, packets):
    source, _ = clip("in.mkv", frames=12, subtitles=False)
    out = tmp_path / "out.mkv"
    report = upscale(source, out, "bicubic", scale=2, frames="4:9", progress=False)
    assert report["frames"] == 5
    container, video = _stream(out)
    with container:
        times = [float(f.time) for f in container.decode(video)]
    assert len(times) == 5 and times[0] == 0.0
    audio = packets(out, "audio")
    assert audio and min(t for _, t in audio) >= -0.05 and max(t for _, t in audio) < 5 / 24


def test_rgb_model_on_a_yuv_video(clip, tmp_path, decode_planes):
    source, _ = clip("in.mkv", frames=3, audio=False, pix_fmt="yuv444p", codec="ffv1")
    out = tmp_path / "out.mkv"
    report = upscale(source, out, "bicubic", scale=3, channels="rgb", progress=False)
    assert report["channels"] == "rgb" and report["output_size"] == [144, 96]
    assert decode_planes(out)[0][1].shape == (96, 144)


def test_report_json_and_pix_fmt_choice(clip, tmp_path):
    import json

    from pyimg.cli import main

    source, _ = clip("in.mp4", frames=4, audio=False)
    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    status = main(["upscale", str(source), str(out), "--model", "bicubic", "--scale", "2",
                   "--pix-fmt", "yuv444p", "--crf", "20", "--preset", "ultrafast", "--report",
                   str(report), "--quiet"])
    assert status == 0
    data = json.loads(report.read_text())
    assert data["frames"] == 4 and data["pix_fmt"] == "yuv444p"
    assert set(data["stages"]["model"]) == {"p50_ms", "p90_ms", "mean_ms", "frames"}
    container, video = _stream(out)
    with container:
        assert video.codec_context.pix_fmt == "yuv444p"


def test_stream_without_timestamps_gets_the_nominal_rate(clip, tmp_path):
    """A raw H.264 elementary stream has no timestamps: frames are placed at its rate."""
    source, _ = clip("in.mp4", frames=5, audio=False)
    raw = tmp_path / "in.h264"
    with av.open(str(source)) as container, av.open(str(raw), "w") as out:
        stream = out.add_stream_from_template(container.streams.video[0])
        for packet in container.demux(video=0):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    result = tmp_path / "out.mp4"
    upscale(raw, result, "bicubic", scale=2, progress=False)
    container, video = _stream(result)
    with container:
        times = [float(f.time) for f in container.decode(video)]
    rate = float(video.average_rate)
    assert times == pytest.approx([i / rate for i in range(5)])
