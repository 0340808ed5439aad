"""The model zoo's name -> class table: ``create(name, **kwargs)`` and ``list_models()``."""

from torch import nn

_MODELS: dict[str, type[nn.Module]] = {}


def register(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make ``cls`` creatable by its name (case-insensitive)."""
    key = cls.__name__.lower()
    if key in _MODELS:
        raise ValueError(f"model {cls.__name__} is already registered")
    _MODELS[key] = cls
    return cls


def list_models() -> list[str]:
    """Names of every model in the zoo, sorted."""
    return sorted(cls.__name__ for cls in _MODELS.values())


def create(name: str, **kwargs) -> nn.Module:
    """Build the zoo model called ``name`` (case-insensitive) with constructor ``kwargs``."""
    try:
        cls = _MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {list_models()}") from None
    return cls(**kwargs)
