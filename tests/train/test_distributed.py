"""Several processes through torchrun (gloo on the CPU): two processes with half the batch
each train the same weights as one process with the whole batch."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyimg.models import create
from pyimg.train import train
from pyimg.train.checkpoint import load_weights

ROOT = Path(__file__).parents[2]


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed next to this Python")
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, smoke):
    overrides = smoke("espcn") + ["steps=6", "data.batch_size=4", "val_every=100",
                                  "checkpoint_every=3"]
    single = train("espcn", overrides, run_dir=tmp_path / "one", progress=False)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "pyimg", "train",
         "espcn", *overrides, "--run-dir", str(tmp_path / "two"), "--no-progress"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (one, _), (two, _) = load_weights(single.weights), load_weights(tmp_path / "two" /
                                                                       "last.safetensors")
    for key in one:
        # Gradients summed across processes in another order: equal up to rounding.
        torch.testing.assert_close(two[key], one[key], atol=1e-6, rtol=1e-5)
    torch.manual_seed(0)  # the recipe's seed: the weights both runs started from
    initial = create("ESPCN", upscale_factor=3, in_channels=1).state_dict()
    assert not torch.equal(one["body.0.weight"], initial["body.0.weight"])
    # Rank 0 alone logged: one row per logged step.
    log = (tmp_path / "two" / "log.csv").read_text().splitlines()
    assert sum(",train," in line for line in log) == 6
