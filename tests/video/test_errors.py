"""Bad input gets one clear line naming the file and the reason; a failure or Ctrl-C midway
leaves neither the output nor a temporary file behind."""

import av
import numpy as np
import pytest
import torch
from torch import nn

from pyimg.cli import main
from pyimg.video import upscale
from pyimg.video.model_spec import SRModel


def _cli_error(capsys, *args) -> str:
    assert main(["upscale", *map(str, args), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_missing_input(capsys, tmp_path):
    err = _cli_error(capsys, tmp_path / "nothere.mp4", tmp_path / "out.mp4", "--model",
                     "bicubic")
    assert err.startswith("pyimg upscale: error: ") and "nothere.mp4: no such file" in err


def test_unreadable_video(capsys, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    err = _cli_error(capsys, bad, tmp_path / "out.mp4", "--model", "bicubic")
    assert "notes.mp4: not a readable video" in err


def test_no_video_stream(capsys, tmp_path):
    audio_only = tmp_path / "tone.m4a"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    err = _cli_error(capsys, audio_only, tmp_path / "out.mp4", "--model", "bicubic")
    assert "tone.m4a: has no video stream" in err


def test_frames_too_small(capsys, clip, tmp_path):
    source, _ = clip("tiny.mkv", size=(2, 2), pix_fmt="yuv444p", codec="ffv1", audio=False)
    err = _cli_error(capsys, source, tmp_path / "out.mkv", "--model", "bicubic")
    assert "tiny.mkv: frames of 2x2 are too small to upscale" in err


def test_pixel_format_the_encoder_cannot_take(capsys, clip, tmp_path):
    source, _ = clip("in.mp4", frames=2, audio=False)
    err = _cli_error(capsys, source, tmp_path / "out.mp4", "--model", "bicubic", "--pix-fmt",
                     "rgba64le")
    assert "--pix-fmt rgba64le: libx264 cannot encode it" in err
    err = _cli_error(capsys, source, tmp_path / "out.mp4", "--model", "bicubic", "--pix-fmt",
                     "nv12")
    assert "--pix-fmt nv12: not a pixel format pyimg writes" in err
    assert list(tmp_path.glob("out*")) == [] and list(tmp_path.glob(".out*")) == []


def test_odd_output_size_for_subsampled_chroma(capsys, clip, tmp_path):
    source, _ = clip("in.mkv", frames=2, size=(15, 10), pix_fmt="yuv444p", codec="ffv1",
                     audio=False)
    err = _cli_error(capsys, source, tmp_path / "out.mkv", "--model", "bicubic", "--scale",
                     "3", "--pix-fmt", "yuv420p")
    assert "the upscaled size 45x30 cannot be stored as yuv420p" in err


def test_output_folder_missing(capsys, clip, tmp_path):
    source, _ = clip("in.mp4", frames=2, audio=False)
    err = _cli_error(capsys, source, tmp_path / "no" / "out.mp4", "--model", "bicubic")
    assert "the output folder" in err and "does not exist" in err


class FailsAfter(nn.Module):
    """Bicubic x2 that raises ``error`` on its ``count``-th call."""

    def __init__(self, count: int, error: BaseException):
        super().__init__()
        self.count, self.error, self.calls = count, error, 0

    def forward(self, x):
        self.calls += 1
        if self.calls > self.count:
            raise self.error
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic")


@pytest.mark.parametrize("error", [RuntimeError("model broke"), KeyboardInterrupt()],
                         ids=["failure", "ctrl-c"])
def test_no_output_left_when_interrupted(clip, tmp_path, error):
    source, _ = clip("in.mp4", frames=12)
    out = tmp_path / "out.mp4"
    model = SRModel(FailsAfter(5, error), 2, "y", "flaky")
    with pytest.raises(type(error)):
        upscale(source, out, model, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_existing_output_survives_a_failed_run(clip, tmp_path):
    source, _ = clip("in.mp4", frames=6)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    model = SRModel(FailsAfter(2, RuntimeError("model broke")), 2, "y", "flaky")
    with pytest.raises(RuntimeError, match="model broke"):
        upscale(source, out, model, progress=False)
    assert out.read_bytes() == b"previous result"
