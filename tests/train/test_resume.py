"""Crash safety: a run killed with SIGKILL (at a random moment, and in the middle of a
checkpoint write) and resumed ends with bit-identical weights to an uninterrupted run on
the CPU; no checkpoint is ever left torn."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pyimg.train import train
from pyimg.train.checkpoint import load_checkpoint, load_weights

DRIVER = Path(__file__).with_name("crash_driver.py")
ROOT = Path(__file__).parents[2]


def tiny_espcn(smoke, steps: int) -> list[str]:
    # EMA and a schedule on, so that their states must survive the restart too.
    return smoke("espcn") + [f"steps={steps}", "checkpoint_every=4", "val_every=100",
                             "ema=0.9", "schedule.name=cosine", "data.batch_size=4"]


def assert_same_weights(a: Path, b: Path) -> None:
    (ta, _), (tb, _) = load_weights(a), load_weights(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


def assert_same_state(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert sa["step"] == sb["step"]
    for group in ("models", "ema"):
        for key, value in (sa[group].items() if group == "ema" else
                           sa[group]["model"].items()):
            other = sb[group][key] if group == "ema" else sb[group]["model"][key]
            assert torch.equal(value, other), (group, key)
    for key, value in sa["optimizers"]["model"]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(tensor, sb["optimizers"]["model"]["state"][key][name])


def test_resume_in_process_is_bit_identical(tmp_path, smoke):
    # A step schedule: its factors do not depend on the total, which changes here.
    def overrides(steps):
        return tiny_espcn(smoke, steps) + ["schedule.name=step", "schedule.milestones=[8]"]

    straight = train("espcn", overrides(12), run_dir=tmp_path / "a", progress=False)
    train("espcn", overrides(6), run_dir=tmp_path / "b", progress=False)
    # The same folder with more steps: resumes at step 6 and goes on to 12.
    resumed = train("espcn", overrides(12), run_dir=tmp_path / "b", progress=False)
    assert resumed.step == 12
    assert_same_weights(straight.weights, resumed.weights)
    assert_same_state(tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt")
    def train_rows(run):
        return [line for line in (tmp_path / run / "log.csv").read_text().split()
                if ",train," in line]

    assert train_rows("b") == train_rows("a")  # one history, each step logged once


def _start(run_dir: Path, marker: Path, pause_at: int, overrides) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(DRIVER), str(run_dir), str(marker),
                             str(pause_at), "espcn", *overrides], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(condition, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"driver exited early: {process.stderr.read().decode()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the driver")
        time.sleep(0.02)


def _kill_mid_checkpoint(run_dir: Path, marker: Path, save: int, overrides) -> Path:
    """Run until half of checkpoint number ``save`` is written, SIGKILL; the torn file."""
    process = _start(run_dir, marker, save, overrides)
    _wait_for(marker.exists, process)
    torn = Path(marker.read_text().strip())
    process.send_signal(signal.SIGKILL)
    process.wait()
    marker.unlink()
    assert torn.exists() and torn.name.startswith(".last.partial-")
    return torn


def _kill_at_random(run_dir: Path, overrides, rng: random.Random) -> None:
    """Run until this process wrote a checkpoint, then SIGKILL at a random moment."""
    started = time.time()
    process = _start(run_dir, run_dir.with_name("unused"), 0, overrides)
    checkpoint = run_dir / "last.pt"
    _wait_for(lambda: checkpoint.exists() and checkpoint.stat().st_mtime > started, process)
    time.sleep(rng.uniform(0, 0.2))
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_sigkill_mid_checkpoint_then_resume_is_bit_identical(tmp_path, smoke):
    overrides = tiny_espcn(smoke, 16)
    reference = train("espcn", overrides, run_dir=tmp_path / "reference", progress=False)
    run_dir = tmp_path / "run"
    torn = _kill_mid_checkpoint(run_dir, tmp_path / "marker", 3, overrides)
    before = load_checkpoint(run_dir / "last.pt")  # the previous checkpoint, whole
    assert before["step"] == 8
    # Resumed to the end (in this process): the torn temporary is gone, the weights and
    # the whole state are the uninterrupted run's.
    resumed = train("espcn", overrides, run_dir=run_dir, progress=False)
    assert not torn.exists()
    assert_same_weights(reference.weights, resumed.weights)
    assert_same_state(tmp_path / "reference" / "last.pt", run_dir / "last.pt")


@pytest.mark.slow
def test_sigkill_anywhere_repeatedly_then_resume_is_bit_identical(tmp_path, smoke):
    # Long enough that no kill comes after the end (a tiny step takes milliseconds).
    overrides = tiny_espcn(smoke, 600)
    reference = train("espcn", overrides, run_dir=tmp_path / "reference", progress=False)
    run_dir, rng = tmp_path / "run", random.Random(os.getpid())
    for _ in range(3):
        _kill_at_random(run_dir, overrides, rng)
    _kill_mid_checkpoint(run_dir, tmp_path / "marker", 2, overrides)
    resumed = train("espcn", overrides, run_dir=run_dir, progress=False)
    assert_same_weights(reference.weights, resumed.weights)
    assert_same_state(tmp_path / "reference" / "last.pt", run_dir / "last.pt")


def test_resume_refuses_a_different_run(tmp_path, smoke):
    train("espcn", tiny_espcn(smoke, 2), run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"optimizers\.model\.lr"):
        train("espcn", tiny_espcn(smoke, 4) + ["optimizers.model.lr=0.5"], run_dir=tmp_path,
              progress=False)


def test_worker_count_does_not_change_the_run(tmp_path, smoke):
    runs = [train("espcn", smoke("espcn") + ["steps=4", f"data.workers={workers}"],
                  run_dir=tmp_path / str(workers), progress=False) for workers in (0, 2)]
    assert_same_weights(runs[0].weights, runs[1].weights)


@pytest.mark.parametrize("recipe", ["cyclegan", "pix2pix"])
def test_gan_resume_is_bit_identical(recipe, tmp_path, smoke):
    """The image pool (CycleGAN) and the dropout noise (pix2pix) continue exactly."""
    def overrides(steps):
        return smoke(recipe) + [f"steps={steps}", "val_every=100", "checkpoint_every=2",
                                "pool_size=2" if recipe == "cyclegan" else "l1_weight=50",
                                "schedule.name=constant"]

    straight = train(recipe, overrides(4), run_dir=tmp_path / "a", progress=False)
    train(recipe, overrides(2), run_dir=tmp_path / "b", progress=False)
    resumed = train(recipe, overrides(4), run_dir=tmp_path / "b", progress=False)
    assert_same_weights(straight.weights, resumed.weights)
