"""Training pyimg's models: ``train(recipe, overrides)`` (also ``pyimg train RECIPE
key=value ...``), recipes for every zoo family, crash-safe checkpoints, EMA, schedules,
AMP, logs and multi-process runs through torchrun."""

from pyimg.train.config import list_recipes, load_config
from pyimg.train.evaluate import sr_scores
from pyimg.train.trainer import TrainResult, train

__all__ = ["TrainResult", "list_recipes", "load_config", "sr_scores", "train"]
