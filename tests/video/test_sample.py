"""The packaged sample clip: present, small, with audio; its truth re-rendered exactly; the clip
the degradation of that truth; the main job's scoring."""

import av
import numpy as np
import pytest

from pyimg import models
from pyimg.cli import main
from pyimg.video import sample
from pyimg.video.layout import Layout
from pyimg.video.picture import Picture
from pyimg.video.sample_job import LumaPSNR, run_sample

needs_photo = pytest.mark.skipif(sample.photo_path() is None,
                                 reason="scikit-image (coffee.png) is not installed")


def test_clips_are_packaged_small_with_audio():
    meta = sample.metadata()
    total = 0
    for scale in sample.SCALES:
        path = sample.clip_path(scale)
        total += path.stat().st_size
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            assert [s.type for s in container.streams] == ["video", "audio"]
            assert video.average_rate == sample.FPS
            assert (video.width * scale, video.height * scale) == sample.HR_SIZE
            assert video.codec_context.colorspace == 6  # BT.601, tagged
            assert sum(1 for _ in container.decode(video)) == meta["frames"]
    assert total < 400_000
    with pytest.raises(ValueError, match="comes for scales 2, 3, 4, not 8"):
        sample.clip_path(8)


@needs_photo
def test_truth_frames_render_exactly():
    photo = sample.load_photo(sample.photo_path())
    meta = sample.metadata()
    for index in (0, 47, meta["frames"] - 1):
        frame = sample.render_frame(photo, index, meta["frames"])
        assert sample.sha256(frame) == meta["truth_sha256"][index]


@needs_photo
@pytest.mark.parametrize("scale", [2, 4])
def test_clip_is_the_bicubic_degradation_of_the_truth(scale):
    """Decoded luma within H.264's loss (> 38 dB) of MATLAB-bicubic(truth), frame by frame,
    and far from a neighbouring frame's (the frames are where they claim to be)."""
    photo = sample.load_photo(sample.photo_path())
    meta = sample.metadata()
    with av.open(str(sample.clip_path(scale))) as container:
        decoded = [f for _, f in zip(range(12), container.decode(video=0), strict=False)]
    for index in (0, 11):
        low = sample.degrade(sample.render_frame(photo, index, meta["frames"])[None], scale)
        want = sample.truth_luma(low)[0]
        plane = decoded[index].planes[0]
        got = np.frombuffer(plane, np.uint8).reshape(plane.height, -1)[:, :plane.width]
        mse = np.mean((got.astype(np.float64) - want) ** 2)
        assert 10 * np.log10(255**2 / mse) > 38
    assert not np.array_equal(decoded[0].to_ndarray(), decoded[11].to_ndarray())


def test_luma_psnr():
    truth = np.full((2, 12, 12), 100.0)
    meter = LumaPSNR(truth, border=2)
    layout = Layout("yuv", 8, (1, 1))
    chroma = np.zeros((6, 6), np.uint8)
    meter(Picture([np.full((12, 12), 100, np.uint8), chroma, chroma], layout))
    off = np.full((12, 12), 100, np.uint8)
    off[2:-2, 2:-2] += 5  # only inside the border counts
    meter(Picture([off, chroma, chroma], layout))
    assert meter.values[0] > 100
    assert meter.values[1] == pytest.approx(10 * np.log10(255**2 / 25))
    with pytest.raises(ValueError, match=r"8-bit limited-range BT\.601"):
        meter(Picture([off], Layout("gray")))


def test_main_job_without_the_photo(tmp_path, monkeypatch, capsys):
    """No scikit-image: the clip is still upscaled and timed; PSNR says why it is missing."""
    monkeypatch.setattr(sample, "load_truth", lambda: (None, "no photo here"))
    out = tmp_path / "up.mp4"
    result = run_sample(str(out), "bicubic", scale=2, verbose=False, progress=False,
                        frames="0:12")
    assert result["model"]["frames"] == 12 and result["model"]["psnr_y"] is None
    assert result["psnr_unavailable"] == "no photo here"
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert (container.streams.video[0].width, container.streams.video[0].height) == (
            sample.HR_SIZE)


@needs_photo
@pytest.mark.slow
def test_main_job_scores_bicubic(tmp_path, capsys):
    """The README's command with bicubic as 'the model': both rows score the same, in the
    range bicubic x2 reaches on a photograph (about 30-36 dB)."""
    status = main(["upscale", "--sample", str(tmp_path / "up.mp4"), "--model", "bicubic",
                   "--scale", "2", "--quiet"])
    assert status == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| bicubic")]
    psnrs = {float(row.split("|")[3]) for row in rows}
    assert len(rows) == 2 and len(psnrs) == 1 and 28 < psnrs.pop() < 38


@needs_photo
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(models, "pretrained"), reason="no shipped weights yet")
@pytest.mark.parametrize("name", ["espcn-x2", "espcn-x3", "espcn-x4"])
def test_shipped_espcn_beats_bicubic_on_the_sample(tmp_path, name):
    result = run_sample(str(tmp_path / "up.mp4"), name, verbose=False, progress=False)
    assert result["model"]["psnr_y"] > result["bicubic"]["psnr_y"]
