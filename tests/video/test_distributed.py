"""torchrun with 2 CPU processes (gloo): the video split at keyframes, each range upscaled by
its rank, the pieces joined without re-encoding; every frame, in order, with its timestamp,
identical to a one-process run (lossless encoding, so decoded frames can be compared)."""

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from pyimg.video import upscale
from pyimg.video.distributed import plan

ROOT = Path(__file__).resolve().parents[2]
GOP = {"crf": "18", "g": "5", "keyint_min": "5", "sc_threshold": "0"}


def _frames(path: Path) -> list[tuple[int, np.ndarray]]:
    with av.open(str(path)) as container:
        return [(f.pts, f.to_ndarray()) for f in container.decode(video=0)]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         "2", "-m", "pyimg", "upscale", *args, "--quiet"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=False)


def test_plan_splits_at_keyframes(clip):
    source, _ = clip("in.mp4", frames=20, audio=False, options=GOP)
    whole = plan(str(source), 0, None, 2)
    assert whole["frames"] == 20 and not whole["windowed"]
    (start0, stop0), (start1, stop1) = whole["ranges"]
    assert start0 == 0 and stop0 == start1 and stop1 is None
    with av.open(str(source)) as container:
        keys = {p.pts for p in container.demux(video=0) if p.is_keyframe}
    assert start1 in keys
    windowed = plan(str(source), 2, 17, 3)
    assert windowed["frames"] == 15 and windowed["windowed"]
    assert sum(r is not None for r in windowed["ranges"]) == 3
    few = plan(str(source), 0, 4, 2)  # no keyframe inside: the second rank idles
    assert few["ranges"][1] is None


def test_two_processes_equal_one(clip, tmp_path, packets):
    source, _ = clip("in.mp4", frames=20, options=GOP)
    one, two = tmp_path / "one.mp4", tmp_path / "two.mp4"
    upscale(source, one, "bicubic", scale=2, crf=0, progress=False)  # x264 CRF 0: lossless
    result = _torchrun(str(source), str(two), "--model", "bicubic", "--scale", "2", "--crf",
                       "0")
    assert result.returncode == 0, result.stderr[-3000:]
    frames_one, frames_two = _frames(one), _frames(two)
    assert [pts for pts, _ in frames_two] == [pts for pts, _ in frames_one]
    assert len(frames_two) == 20
    for (_, a), (_, b) in zip(frames_one, frames_two, strict=True):
        np.testing.assert_array_equal(a, b)
    assert packets(two, "audio") == packets(source, "audio") != []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "one.mp4", "two.mp4"]


@pytest.mark.slow
def test_two_processes_window_rotation_subtitles(clip, tmp_path, packets):
    """B-frames (lossy x264), a frame window, rotation and a subtitle stream."""
    source, _ = clip("in.mkv", frames=30, subtitles=True, rotation=90, options=GOP)
    one, two = tmp_path / "one.mkv", tmp_path / "two.mkv"
    upscale(source, one, "bicubic", scale=2, frames="3:25", progress=False)
    result = _torchrun(str(source), str(two), "--model", "bicubic", "--scale", "2",
                       "--frames", "3:25")
    assert result.returncode == 0, result.stderr[-3000:]
    with av.open(str(two)) as container:
        got = [(f.pts, f.rotation) for f in container.decode(video=0)]
    with av.open(str(one)) as container:
        want = [(f.pts, f.rotation) for f in container.decode(video=0)]
    assert got == want and len(got) == 22 and got[0] == (0, 90)
    assert packets(two, "audio") == packets(one, "audio")
    assert packets(two, "subtitle") == packets(one, "subtitle")
