"""What the benchmark needs to know about each zoo model beyond the zoo itself: its task (for
--task and the default input size) and how to make its inputs."""

import inspect

import torch

from pyimg import models

TASKS = {
    "super-resolution": ("ESPCN", "VDSR", "SRResNet"),
    "segmentation": ("FCN32s", "FCN16s", "FCN8s", "UNet", "SegNet"),
    "restoration": ("REDNet30", "DenoisingAutoencoder"),
    "translation": ("Pix2PixGenerator", "CycleGANGenerator", "FastStyleNet", "ColorizationNet"),
    "discriminator": ("SRGANDiscriminator", "PatchGANDiscriminator", "DCGANDiscriminator"),
    "generation": ("DCGANGenerator",),
}
# Default input side per task: SR models take the low-resolution image.
DEFAULT_SIDE = {"super-resolution": 128}
_SIDE = 256


def canonical_name(name: str) -> str:
    """The zoo's spelling of name (case-insensitive); ValueError listing the zoo otherwise."""
    by_lower = {n.lower(): n for n in models.list_models()}
    try:
        return by_lower[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; the zoo has {models.list_models()}") from None


def task_of(name: str) -> str:
    return next((task for task, names in TASKS.items() if name in names), "other")


def models_of(tasks) -> list[str]:
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; expected some of {list(TASKS)}")
    return [n for n in models.list_models() if task_of(n) in tasks]


def default_size(name: str) -> tuple[int, int]:
    side = DEFAULT_SIDE.get(task_of(name), _SIDE)
    return side, side


def _argument(cls: type, kwargs: dict, key: str, default):
    if key in kwargs:
        return kwargs[key]
    parameter = inspect.signature(cls).parameters.get(key)
    return default if parameter is None else parameter.default


def example_inputs(model: torch.nn.Module, kwargs: dict, batch: int, size: tuple[int, int],
                   dtype: torch.dtype, device: torch.device,
                   channels_last: bool) -> tuple[torch.Tensor, ...]:
    """Random inputs for a zoo model built with kwargs: images of size, or the DCGAN
    generator's latent vectors; the PatchGAN's condition and image split its in_channels."""
    g = torch.Generator(device).manual_seed(0)
    name, cls = type(model).__name__, type(model)
    if name == "DCGANGenerator":
        latent = _argument(cls, kwargs, "latent_dim", 100)
        return (torch.randn(batch, latent, device=device, dtype=dtype, generator=g),)
    channels = _argument(cls, kwargs, "in_channels", 3)
    split = [channels // 2, channels - channels // 2] if name == "PatchGANDiscriminator" \
        else [channels]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return tuple(torch.rand(batch, c, *size, device=device, dtype=dtype, generator=g)
                 .contiguous(memory_format=memory_format) for c in split)
