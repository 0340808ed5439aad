"""Raw frames on stdin/stdout, as ffmpeg pipes them (-f rawvideo)."""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyimg.video import load_model, upscale
from pyimg.video.layout import Layout
from pyimg.video.planes import ColourPath

ROOT = Path(__file__).resolve().parents[2]


def _frames(count: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def test_rgb24_pipe_through_a_y_model(espcn_weights):
    frames = _frames(3, 10, 14)
    out = io.BytesIO()
    report = upscale("-", "-", str(espcn_weights), size="14x10", pix_fmt="rgb24", fps=24,
                     stdin=io.BytesIO(frames.tobytes()), stdout=out, progress=False)
    assert report["frames"] == 3 and report["source_fps"] == 24
    assert report["keeps_up"] in (True, False) and report["capacity_fps"] > 0
    got = np.frombuffer(out.getvalue(), np.uint8).reshape(3, 20, 28, 3)
    sr = load_model(str(espcn_weights))
    path = ColourPath(Layout("rgb"), Layout("rgb"), "y")
    with torch.inference_mode():
        values, kept = path.to_model([torch.from_numpy(frames)])
        want = path.from_model(sr.module(values), kept)[0].numpy()
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_video_file_to_raw_yuv(clip):
    source, _ = clip("in.mkv", frames=4, audio=False, pix_fmt="yuv420p", codec="ffv1")
    out = io.BytesIO()
    upscale(source, "-", "bicubic", scale=2, stdout=out, progress=False)
    assert len(out.getvalue()) == 4 * (96 * 64 * 3 // 2)


def test_truncated_stream_names_the_problem():
    data = _frames(1, 10, 14).tobytes()[:-5]
    with pytest.raises(ValueError, match=r"stdin: the stream ended inside a frame .*--size"):
        upscale("-", "-", "bicubic", size="14x10", pix_fmt="rgb24",
                stdin=io.BytesIO(data), stdout=io.BytesIO(), progress=False)
    with pytest.raises(ValueError, match="need --size"):
        upscale("-", "-", "bicubic", pix_fmt="rgb24", stdin=io.BytesIO(data),
                stdout=io.BytesIO(), progress=False)


def test_command_line_pipe():
    frames = _frames(2, 8, 12)
    result = subprocess.run(
        [sys.executable, "-m", "pyimg", "upscale", "-", "-", "--model", "bicubic", "--scale",
         "2", "--size", "12x8", "--pix-fmt", "rgb24", "--fps", "25", "--quiet"],
        input=frames.tobytes(), capture_output=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert len(result.stdout) == 2 * 16 * 24 * 3
