"""A model to benchmark named on the command line: a zoo name, or ``path/to/file.py:factory``
(a function of no arguments returning an ``nn.Module``), with optional safetensors weights."""

import importlib.util
import json
import sys
from pathlib import Path

from torch import nn

from pyimg import models
from pyimg.bench import zoo


def is_file_reference(name: str) -> bool:
    return ".py:" in name


def checked_file_reference(reference: str) -> str:
    """reference, once its file is known to exist (OSError otherwise)."""
    path = Path(reference.rpartition(":")[0])
    if not path.is_file():
        raise OSError(f"{reference}: no such file {path}")
    return reference


def parse_kwargs(text: str | None) -> dict:
    if not text:
        return {}
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--model-kwargs is not JSON ({error}): {text!r}") from None
    if not isinstance(kwargs, dict):
        raise ValueError(f"--model-kwargs must be a JSON object, not {text!r}")
    return kwargs


def load_factory_model(reference: str, kwargs: dict) -> nn.Module:
    """The nn.Module that ``file.py:factory`` returns (called with kwargs)."""
    file_name, _, factory_name = checked_file_reference(reference).rpartition(":")
    path = Path(file_name)
    module_name = f"_pyimg_bench_model_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise ValueError(f"{path}: importing it failed: {type(error).__name__}: {error}") \
            from error
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ValueError(f"{path} has no function {factory_name!r}")
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise ValueError(f"{reference} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_weights(model: nn.Module, path: Path, name: str) -> None:
    """Load a safetensors state dict into model, strictly; errors name the file."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise OSError(f"--weights: no such file {path}")
    try:
        state = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for a bad header
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:400]
        raise ValueError(f"{path} does not fit {name}: {detail}") from None


def display_name(name: str) -> str:
    """'path/to/net.py:make' -> 'net.py:make'; a zoo name as the zoo spells it."""
    if is_file_reference(name):
        path, _, factory = name.rpartition(":")
        return f"{Path(path).name}:{factory}"
    return zoo.canonical_name(name)


def build(name: str, kwargs: dict) -> nn.Module:
    """The model a zoo name or a file reference names, built with kwargs."""
    if is_file_reference(name):
        return load_factory_model(name, kwargs)
    canonical = zoo.canonical_name(name)
    try:
        return models.create(canonical, **kwargs)
    except TypeError as error:
        raise ValueError(f"{canonical}: bad --model-kwargs ({error})") from None
