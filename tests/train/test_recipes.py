"""Every shipped recipe trains: two steps of a tiny version, validation, checkpoint and
weights, through the same code a full run takes."""

import math

import pytest

from pyimg.train import list_recipes, load_config, train
from pyimg.train.checkpoint import load_checkpoint, load_weights


@pytest.mark.parametrize("recipe", list_recipes())
def test_recipe_trains(recipe, tmp_path, smoke):
    overrides = smoke(recipe) + ["steps=2", "val_every=2", "checkpoint_every=2"]
    result = train(recipe, overrides, run_dir=tmp_path, progress=False)
    assert result.step == 2
    assert result.metrics and all(math.isfinite(v) for v in result.metrics.values())
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 2
    _, meta = load_weights(result.weights)
    config = load_config(recipe, overrides)
    assert meta["architecture"].lower() == config["model"]["name"].lower()
    assert meta["recipe"] == recipe and meta["step"] == "2"
    assert (tmp_path / "log.csv").read_text().count("\n") >= 3


@pytest.mark.parametrize("options", [["amp=bf16"], ["amp=fp16"],
                                     ["channels_last=true", "ema=0.999", "clip_grad=0.5"]])
def test_training_options(options, tmp_path, smoke):
    result = train("srresnet", smoke("srresnet") + ["steps=2"] + options, run_dir=tmp_path,
                   progress=False)
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert any((tmp_path / "tensorboard").iterdir())  # TensorBoard event files
