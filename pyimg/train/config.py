"""Recipes: YAML files of nested settings, completed by the trainer's defaults and changed
from the command line with ``key=value`` overrides (dotted keys, YAML values)."""

import contextlib
import copy
import os
from importlib import resources
from pathlib import Path

import yaml

# Settings every recipe shares; a recipe's own values take precedence.
DEFAULTS: dict = {
    "seed": 0,
    "steps": 1000,
    "device": "auto",          # auto: CUDA when present, else CPU
    "threads": None,           # CPU threads for torch; null keeps torch's default
    "amp": None,               # null, bf16 or fp16 (fp16 with a gradient scaler)
    "channels_last": False,
    "ema": 0.0,                # EMA decay of the main model's weights; 0 disables it
    "clip_grad": None,         # max gradient norm; null disables clipping
    "compile": False,          # torch.compile the models
    "sync_batchnorm": False,   # with several processes: SyncBatchNorm
    "schedule": {"name": "constant", "warmup": 0},
    "val_every": 500,
    "log_every": 50,
    "checkpoint_every": 500,
    "data": {"workers": 0, "batch_size": 16},
}
# Mappings whose keys are free (checked where they are used): a model's constructor
# arguments, a schedule's options, the degradations, each optimizer's options.
_FREE_MAPPINGS = ("kwargs", "schedule", "degradations")
_FREE_PARENTS = ("optimizers",)


def _free(path: list[str]) -> bool:
    return (len(path) > 1 and path[-2] in _FREE_MAPPINGS) or (
        len(path) > 2 and path[-3] in _FREE_PARENTS)


def recipe_folder() -> Path:
    return Path(str(resources.files("pyimg.train") / "recipes"))


def list_recipes() -> list[str]:
    """Names of the recipes that ship with pyimg."""
    return sorted(p.stem for p in recipe_folder().glob("*.yaml"))


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as error:
        raise OSError(f"{path}: cannot read recipe ({error.strerror or error})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe must be a mapping of settings")
    return data


def recipe_path(recipe: str | os.PathLike) -> Path:
    """A shipped recipe's file by name, or a YAML file the user wrote."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise OSError(f"{path}: no such recipe file")
        return path
    shipped = recipe_folder() / f"{recipe}.yaml"
    if not shipped.is_file():
        raise ValueError(f"unknown recipe {str(recipe)!r}; shipped recipes: "
                         f"{', '.join(list_recipes())} (or give a .yaml file)")
    return shipped


def parse_override(text: str) -> tuple[list[str], object]:
    """``a.b=value`` -> (["a", "b"], value parsed as YAML)."""
    key, sep, value = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ValueError(f"override {text!r} must look like key=value (dots for nested keys, "
                         "e.g. optimizer.lr=1e-4)")
    try:
        parsed = yaml.safe_load(value) if value else ""
    except yaml.YAMLError:
        parsed = value
    if isinstance(parsed, str):
        # YAML 1.1 reads 1e-4 (no dot) as text; a number is meant.
        with contextlib.suppress(ValueError):
            parsed = float(parsed)
    return key.split("."), parsed


def _keys(config: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in config.items():
        out.append(prefix + key)
        if isinstance(value, dict):
            out += _keys(value, f"{prefix}{key}.")
    return out


def apply_override(config: dict, text: str) -> None:
    """Set one ``key=value`` in place; the key must exist unless it sits inside a free
    mapping (``model.kwargs.*``, ``schedule.*``, ``optimizers.<name>.*``...)."""
    path, value = parse_override(text)
    node = config
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None and part in _FREE_MAPPINGS:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(path[:depth + 1])
            raise ValueError(f"override {text!r}: {where!r} is not a group of settings")
        node = child
    if path[-1] not in node and not _free(path):
        close = [k for k in _keys(config) if k.split(".")[-1] == path[-1]]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"override {text!r}: unknown setting {'.'.join(path)!r}{hint}")
    node[path[-1]] = value


def load_config(recipe: str | os.PathLike, overrides=()) -> dict:
    """The full settings of ``recipe`` (name or file) with ``overrides`` applied."""
    path = recipe_path(recipe)
    config = _merge(DEFAULTS, _read_yaml(path))
    config.setdefault("name", path.stem)
    for text in overrides:
        apply_override(config, text)
    return config


def dump_config(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False)
