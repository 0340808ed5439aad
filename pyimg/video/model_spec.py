"""What ``--model`` names, loaded as an ``SRModel``: a module with its scale and channels.

A spec is one of
- a shipped name (``espcn-x2``, ...): ``pyimg.models.pretrained(name)``;
- ``bicubic``: plain bicubic upsampling, the baseline every model is compared with;
- a ``.safetensors`` file whose metadata names its zoo architecture (keys ``architecture``,
  ``kwargs`` as JSON, ``scale``, ``channels``), as pyimg writes them (``save_weights``);
- a zoo architecture (``espcn``, ``srresnet``, ... any ``pyimg.models.list_models()`` name)
  with ``weights=`` a safetensors file, constructor ``kwargs`` (``upscale_factor`` defaults to
  ``scale``);
- ``path/to/file.py:factory``: the module ``factory()`` returns (weights optional).
Scale and channels ("y": BT.601 luma, "rgb") come from the metadata when there is some, else
from the model itself: channels from its first convolution, scale from a probe run.
"""

import importlib.util
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pyimg.video.planes import CHANNELS

SHIPPED_PATTERN = re.compile(r"[a-z0-9]+-x\d+")  # how shipped names look: espcn-x2


@dataclass
class SRModel:
    module: nn.Module
    scale: int
    channels: str  # "y" or "rgb"
    name: str

    @property
    def in_channels(self) -> int:
        return 1 if self.channels == "y" else 3


class Bicubic(nn.Module):
    """Bicubic upsampling by ``scale`` (PyTorch's kernel, a = -0.75), as a model."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


def save_weights(path: str | Path, module: nn.Module, architecture: str, kwargs: dict,
                 scale: int, channels: str) -> None:
    """Write ``module``'s weights with the metadata that makes the file a model spec."""
    from safetensors.torch import save_file

    metadata = {"architecture": architecture, "kwargs": json.dumps(kwargs), "scale": str(scale),
                "channels": channels}
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def load_model(spec: str, weights: str | None = None, scale: int | None = None,
               channels: str | None = None, kwargs: dict | None = None) -> SRModel:
    """Resolve ``spec`` (see the module docstring) to an eval-mode float32 CPU model."""
    if channels is not None and channels not in CHANNELS:
        raise ValueError(f"--channels must be one of {CHANNELS}, got {channels!r}")
    if spec == "bicubic":
        return SRModel(Bicubic(scale or 2), scale or 2, channels or "y", "bicubic")
    if spec.endswith(".safetensors"):
        return _from_weights_file(spec, scale, channels, kwargs)
    if ".py:" in spec:
        return _from_factory(spec, weights, scale, channels)
    from pyimg import models

    if spec.lower() in (name.lower() for name in models.list_models()):
        if weights is None:
            raise ValueError(f"model {spec!r} is a zoo architecture: give its weights "
                             "(--weights FILE.safetensors); untrained weights upscale nothing")
        return _from_zoo(spec, _load_state(weights), Path(weights).name, dict(kwargs or {}),
                         scale, channels, origin=weights)
    shipped = models.list_pretrained() if hasattr(models, "list_pretrained") else []
    if spec in shipped or SHIPPED_PATTERN.fullmatch(spec):
        return _shipped(spec, scale)
    raise ValueError(
        f"unknown model {spec!r}: expected a shipped name (like espcn-x2), 'bicubic', a zoo "
        f"architecture ({', '.join(models.list_models())}) with --weights, a .safetensors file "
        "with pyimg metadata, or FILE.py:FACTORY")


def _shipped(name: str, scale: int | None) -> SRModel:
    from pyimg import models

    if not hasattr(models, "pretrained"):
        raise ValueError(f"shipped model {name!r} is not available: this pyimg ships no "
                         "trained weights (pyimg.models.pretrained is missing)")
    if name not in models.list_pretrained():
        raise ValueError(f"unknown shipped model {name!r}; shipped: {models.list_pretrained()}")
    try:
        module = models.pretrained(name)
    except (OSError, RuntimeError, ValueError) as error:
        raise OSError(f"shipped model {name!r}: its weights could not be loaded: {error}") \
            from error
    info = models.pretrained_info(name)
    return _checked(SRModel(module.eval(), int(info["scale"]), info["channels"], name), scale)


def _load_state(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        with safe_open(path, framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None


def _from_weights_file(path: str, scale, channels, kwargs) -> SRModel:
    state, metadata = _load_state(path)
    if "architecture" not in metadata:
        raise ValueError(f"{path}: its metadata names no architecture; give the architecture "
                         "with --model NAME --weights FILE")
    arch_kwargs = json.loads(metadata.get("kwargs", "{}")) | dict(kwargs or {})
    return _from_zoo(metadata["architecture"], (state, metadata), Path(path).name, arch_kwargs,
                     scale or _int_or_none(metadata.get("scale")),
                     channels or metadata.get("channels"), origin=path)


def _int_or_none(text: str | None) -> int | None:
    return None if text is None else int(text)


def _from_zoo(architecture: str, state_and_metadata, name: str, kwargs: dict, scale, channels,
              origin: str) -> SRModel:
    state, metadata = state_and_metadata
    if scale is None:
        scale = _int_or_none(metadata.get("scale"))
    module, used = _build(architecture, kwargs, scale)
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        lines = str(error).strip().splitlines()
        arguments = ", ".join(f"{k}={v!r}" for k, v in used.items())
        raise ValueError(f"{origin}: weights do not fit {type(module).__name__}({arguments}): "
                         f"{' '.join(line.strip() for line in lines[:3])}") from None
    channels = channels or metadata.get("channels") or _channels_of(module, origin)
    return _checked(SRModel(module.eval(), 0, channels, name), scale)


def _build(architecture: str, kwargs: dict, scale: int | None) -> tuple[nn.Module, dict]:
    """The zoo model and the constructor arguments it was built with."""
    from pyimg import models

    classes = {name.lower(): getattr(models, name) for name in models.list_models()}
    cls = classes.get(architecture.lower())
    if cls is None:
        raise ValueError(f"unknown architecture {architecture!r}; the zoo has "
                         f"{models.list_models()}")
    if "upscale_factor" in inspect.signature(cls).parameters and scale is not None:
        kwargs = {"upscale_factor": scale} | kwargs
    try:
        return cls(**kwargs), kwargs
    except TypeError as error:
        raise ValueError(f"{cls.__name__}({kwargs}): {error}") from None


def _from_factory(spec: str, weights: str | None, scale, channels) -> SRModel:
    file, _, factory = spec.rpartition(":")
    if not Path(file).is_file():
        raise FileNotFoundError(f"{file}: no such model file")
    module_spec = importlib.util.spec_from_file_location(Path(file).stem, file)
    source = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(source)
    if not callable(getattr(source, factory, None)):
        raise ValueError(f"{file}: has no function {factory!r}")
    module = getattr(source, factory)()
    if not isinstance(module, nn.Module):
        raise ValueError(f"{spec}: returned {type(module).__name__}, not a torch.nn.Module")
    if weights is not None:
        state, _ = _load_state(weights)
        try:
            module.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"{weights}: weights do not fit {spec}: "
                             f"{str(error).splitlines()[0]}") from None
    channels = channels or _channels_of(module, file)
    return _checked(SRModel(module.eval(), 0, channels, spec), scale)


def _channels_of(module: nn.Module, origin: str) -> str:
    for p in module.parameters():
        if p.dim() == 4:
            if p.shape[1] in (1, 3):
                return "y" if p.shape[1] == 1 else "rgb"
            break
    raise ValueError(f"{origin}: cannot tell whether the model takes luma or RGB: "
                     "give --channels y or --channels rgb")


def _checked(model: SRModel, scale: int | None) -> SRModel:
    """Measure the model's scale on a probe input; refuse a model that is not an integer
    upscaler of its channel count, or whose scale contradicts ``scale``."""
    side = 12
    probe = torch.zeros(1, model.in_channels, side, side)
    try:
        with torch.inference_mode():
            out = model.module(probe)
    except RuntimeError as error:
        raise ValueError(f"model {model.name}: fails on a {model.channels} input of "
                         f"{side}x{side}: {str(error).splitlines()[0]}") from None
    measured = out.shape[-1] // side
    if (out.dim() != 4 or out.shape[1] != model.in_channels or measured < 1
            or tuple(out.shape[-2:]) != (side * measured, side * measured)):
        raise ValueError(f"model {model.name}: maps a {tuple(probe.shape)} input to "
                         f"{tuple(out.shape)}, not an integer upscaling of the same channels")
    if scale is not None and scale != measured:
        raise ValueError(f"model {model.name} upscales by {measured}, not by the {scale} asked "
                         "for (--scale)")
    model.scale = measured
    return model
