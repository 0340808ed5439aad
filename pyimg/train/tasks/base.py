"""What every training task provides to the trainer, and the pieces tasks share."""

import inspect
import json

import torch
from torch import nn

from pyimg import models as zoo

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


def build_model(spec: dict, **implied) -> tuple[nn.Module, dict]:
    """The zoo model ``spec["name"]`` with ``spec["kwargs"]``, plus each ``implied``
    argument (a recipe's scale, channels...) that its constructor takes and the recipe did
    not set. Returns the model and the constructor arguments used."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"model must be a mapping with a name (one of {zoo.list_models()}), "
                         f"got {spec!r}")
    kwargs = dict(spec.get("kwargs") or {})
    names = {n.lower(): n for n in zoo.list_models()}
    if spec["name"].lower() in names:
        accepted = inspect.signature(getattr(zoo, names[spec["name"].lower()])).parameters
        for key, value in implied.items():
            if key in accepted and key not in kwargs:
                kwargs[key] = value
    try:
        model = zoo.create(spec["name"], **kwargs)
    except TypeError as error:
        raise ValueError(f"model {spec['name']}: {error}") from None
    return model, kwargs


def build_optimizer(parameters, config: dict) -> torch.optim.Optimizer:
    """adam / adamw / sgd / rmsprop from ``{"name": ..., "lr": ..., ...}``; the other keys
    are the torch optimizer's own arguments (betas, weight_decay, momentum, nesterov...);
    a null value leaves one out (``optimizers.model.momentum=null`` when switching to adam)."""
    options = {k: v for k, v in config.items() if v is not None}
    name = options.pop("name", "adam")
    classes = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
               "rmsprop": torch.optim.RMSprop}
    if name not in classes:
        raise ValueError(f"optimizer name must be one of {OPTIMIZERS}, got {name!r}")
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    try:
        return classes[name](parameters, **options)
    except TypeError as error:
        raise ValueError(f"optimizer {name}: {error}") from None


class Task:
    """A family of training problems. Subclasses set ``models`` (name -> module, the main
    one under ``main``) and implement the data, the step and the validation.

    ``metric``/``metric_mode`` name the validation number that decides the best
    checkpoint ("max" or "min")."""

    main = "model"
    metric = "loss"
    metric_mode = "min"

    def __init__(self, config: dict):
        self.config = config
        self.models: dict[str, nn.Module] = {}
        self.model_kwargs: dict[str, dict] = {}

    def add_model(self, name: str, spec: dict, **implied) -> nn.Module:
        model, kwargs = build_model(spec, **implied)
        self.models[name] = model
        self.model_kwargs[name] = kwargs
        return model

    def optimizer_groups(self) -> dict[str, list[str]]:
        """Optimizer name -> the models it trains (default: one per trained model)."""
        return {name: [name] for name in self.trained_models()}

    def optimizer_configs(self) -> dict[str, dict]:
        """Settings per optimizer: the recipe's ``optimizers`` mapping."""
        configs = self.config.get("optimizers") or {}
        groups = self.optimizer_groups()
        missing = [name for name in groups if name not in configs]
        if missing:
            raise ValueError(f"recipe lacks optimizers.{missing[0]} (this task's optimizers: "
                             f"{list(groups)})")
        return {name: configs[name] for name in groups}

    def trained_models(self) -> list[str]:
        return [name for name, m in self.models.items()
                if any(p.requires_grad for p in m.parameters())]

    def setup(self, device: torch.device) -> None:
        """Build what training needs besides the models, once they are on ``device`` (a
        frozen VGG for perceptual losses, say)."""

    def train_dataset(self) -> torch.utils.data.Dataset:
        raise NotImplementedError

    def val_dataset(self) -> torch.utils.data.Dataset | None:
        return None

    def training_step(self, batch: dict, fit) -> dict[str, float]:
        """One optimisation step on ``batch`` through ``fit`` (see ``pyimg.train.trainer``);
        returns the numbers to log."""
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, model: nn.Module, loader, device: torch.device) -> dict[str, float]:
        """Validation numbers of the main ``model`` (the EMA weights when enabled)."""
        raise NotImplementedError

    def weights_metadata(self) -> dict[str, str]:
        """What a weights file of the main model says about itself (strings)."""
        return {"architecture": type(self.models[self.main]).__name__,
                "kwargs": json.dumps(self.model_kwargs.get(self.main, {}), sort_keys=True)}

    def state_dict(self) -> dict:
        """Task state beyond models and optimizers (an image pool, say)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def resolve_images(spec, split: str) -> list:
    """Image paths from a recipe's data setting: "samples" (pyimg's packaged photographs,
    the ``split`` list: "train" or "eval"), a folder, or a list of files."""
    from pyimg.data.samples import sample_images
    from pyimg.data.source import folder_paths

    if spec == "samples":
        images = sample_images()
        return list(images.train if split == "train" else images.eval)
    if isinstance(spec, str):
        return folder_paths(spec)
    if isinstance(spec, list) and spec:
        return spec
    raise ValueError(f"data.{split}: expected 'samples', a folder or a list of image files, "
                     f"got {spec!r}")


def color_images(paths) -> list:
    """The colour images among ``paths`` (by their stored mode)."""
    from PIL import Image

    out = []
    for path in paths:
        with Image.open(path) as image:
            if image.mode not in ("L", "LA", "1", "I", "I;16", "F"):
                out.append(path)
    return out
