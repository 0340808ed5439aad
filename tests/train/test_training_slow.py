"""Real trainings, minutes long (marked slow): a short ESPCN run already beats bicubic on
the evaluation photographs, and a segmentation net learns the synthetic scenes."""

import pytest

from pyimg.train import train

pytestmark = pytest.mark.slow


def test_espcn_x3_beats_bicubic_after_a_short_run(tmp_path):
    result = train("espcn", ["steps=1500", "val_every=1500", "threads=1"], run_dir=tmp_path,
                   progress=False)
    assert result.metrics["psnr"] > result.metrics["bicubic_psnr"] + 0.2


def test_segnet_learns_synthetic_shapes(tmp_path):
    result = train("segnet", ["steps=400", "val_every=400", "threads=1",
                              "model.kwargs.width=0.125", "data.size=64",
                              "data.batch_size=8", "optimizers.model.lr=0.05"],
                   run_dir=tmp_path, progress=False)
    # Four classes; predicting background everywhere scores 0.25 or less.
    assert result.metrics["miou"] > 0.4
