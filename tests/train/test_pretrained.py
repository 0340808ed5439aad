"""The shipped weights: they load through the promised interface, and their PSNR/SSIM
table (in their metadata and in the README) is what the evaluation recomputes now."""

import re
from pathlib import Path

import pytest
import torch

from pyimg.data import sample_images
from pyimg.models import list_pretrained, pretrained, pretrained_info
from pyimg.train.evaluate import sr_scores

README = Path(__file__).parents[2] / "README.md"
SHIPPED = list_pretrained()


def test_espcn_weights_ship():
    assert {"espcn-x2", "espcn-x3", "espcn-x4"} <= set(SHIPPED)


def test_unknown_name_lists_the_names():
    with pytest.raises(ValueError, match="espcn-x3"):
        pretrained("espcn-x5")


@pytest.mark.parametrize("name", SHIPPED)
def test_interface(name):
    info = pretrained_info(name)
    for key in ("architecture", "kwargs", "scale", "channels", "command", "psnr", "ssim",
                "bicubic_psnr", "bicubic_ssim", "wall_time_s", "machine"):
        assert key in info, key
    assert info["command"].startswith("pyimg train ")
    assert info["channels"] in ("y", "rgb")
    model = pretrained(name)
    assert not model.training
    parameter = next(model.parameters())
    assert parameter.dtype == torch.float32 and parameter.device.type == "cpu"
    width = 1 if info["channels"] == "y" else 3
    out = model(torch.rand(1, width, 10, 12))
    assert out.shape == (1, width, 10 * info["scale"], 12 * info["scale"])


@pytest.mark.parametrize("name", SHIPPED)
def test_table_recomputes(name):
    info = pretrained_info(name)
    scores = sr_scores(pretrained(name), sample_images().eval, info["scale"], info["channels"])
    for key in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim"):
        assert scores[key] == pytest.approx(info[key], abs=1e-4), key
    row = next((line for line in README.read_text().splitlines()
                if line.startswith(f"| `{name}`")), None)
    assert row is not None, f"README table lacks {name}"
    numbers = [float(x) for x in re.findall(r"\d+\.\d+", row)]
    expected = [round(scores[k], 2 if "psnr" in k else 4)
                for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")]
    assert numbers[:4] == expected


@pytest.mark.parametrize("name", SHIPPED)
def test_beats_bicubic(name):
    info = pretrained_info(name)
    assert info["psnr"] - info["bicubic_psnr"] > 0.9 and info["ssim"] > info["bicubic_ssim"]
