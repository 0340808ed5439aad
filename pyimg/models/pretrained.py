"""Zoo models with weights that ship inside pyimg (``pyimg/models/weights/*.safetensors``).

Each file is a safetensors state_dict whose metadata (strings) says what it is: the
architecture and constructor arguments, the scale and channels for SR models, the
``pyimg train`` command that produced it with its wall time and machine, and its scores on
the evaluation images. Loading never unpickles anything.

Value convention of the SR models: input and output are float images in [0, 1]; "y" models
take the luma Y of ITU-R BT.601 studio range as MATLAB's ``rgb2ycbcr`` gives it, divided by
255 (``pyimg.data.rgb_to_ycbcr``), which is also what a video decoder's yuv420p Y plane
holds.
"""

import json
from importlib import resources
from pathlib import Path

from torch import nn

from pyimg.models._registry import create

# Metadata fields held as JSON text in the file, returned decoded.
_JSON_FIELDS = ("kwargs",)
# Metadata fields that are numbers.
_INT_FIELDS = ("scale", "step")
_FLOAT_FIELDS = ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "wall_time_s")


def _folder() -> Path:
    return Path(str(resources.files("pyimg.models") / "weights"))


def list_pretrained() -> list[str]:
    """Names of the shipped weights, e.g. ``espcn-x3``."""
    return sorted(p.stem for p in _folder().glob("*.safetensors"))


def _path(name: str) -> Path:
    path = _folder() / f"{name}.safetensors"
    if not path.is_file():
        raise ValueError(f"no pretrained weights named {name!r}; available: "
                         f"{', '.join(list_pretrained())}")
    return path


def pretrained_info(name: str) -> dict:
    """What the shipped weights ``name`` are: "architecture", "kwargs", "scale",
    "channels", "command", "wall_time_s", "machine", "psnr"/"ssim" on the evaluation
    images and "bicubic_psnr"/"bicubic_ssim" there, and more (see the file's metadata)."""
    from safetensors import safe_open

    with safe_open(_path(name), framework="pt") as f:
        metadata = dict(f.metadata() or {})
    info: dict = dict(metadata)
    for key in _JSON_FIELDS:
        if key in info:
            info[key] = json.loads(info[key])
    for key in _INT_FIELDS:
        if key in info:
            info[key] = int(info[key])
    for key in _FLOAT_FIELDS:
        if key in info:
            info[key] = float(info[key])
    return info


def pretrained(name: str) -> nn.Module:
    """The zoo model with the shipped weights ``name``: eval mode, float32, on the CPU."""
    from safetensors.torch import load_file

    info = pretrained_info(name)
    model = create(info["architecture"], **info["kwargs"])
    model.load_state_dict(load_file(_path(name)))
    return model.float().eval()
