"""The shipped weights: they load through the promised interface, and their PSNR/SSIM
table (in their metadata and in the README) is what the evaluation recomputes now."""

import re
from pathlib import Path

import pytest
import torch

from pyimg.data import SREval, imresize, sample_images
from pyimg.metrics import psnr
from pyimg.models import list_pretrained, pretrained, pretrained_info
from pyimg.train.evaluate import luma_8bit, sr_scores, to_8bit

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


def readme_row(name: str) -> list[float]:
    """PSNR, SSIM, bicubic PSNR, bicubic SSIM of ``name`` in the README's table."""
    row = next((line for line in README.read_text().splitlines()
                if line.startswith(f"| `{name}`")), None)
    assert row is not None, f"README table lacks {name}"
    return [float(x) for x in re.findall(r"\d+\.\d+", row)][:4]


@pytest.mark.parametrize("name", SHIPPED)
def test_table_recomputes_psnr(name):
    """PSNR recomputed from the shipped file (SSIM too in the slow test below)."""
    info = pretrained_info(name)
    scores = sr_psnr(pretrained(name), info["scale"], info["channels"])
    for key in ("psnr", "bicubic_psnr"):
        assert scores[key] == pytest.approx(info[key], abs=1e-4), key
    psnr, ssim, bicubic_psnr, bicubic_ssim = readme_row(name)
    assert (psnr, bicubic_psnr) == (round(info["psnr"], 2), round(info["bicubic_psnr"], 2))
    assert (ssim, bicubic_ssim) == (round(info["ssim"], 4), round(info["bicubic_ssim"], 4))


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_table_recomputes(name):
    info = pretrained_info(name)
    scores = sr_scores(pretrained(name), sample_images().eval, info["scale"], info["channels"])
    for key in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim"):
        assert scores[key] == pytest.approx(info[key], abs=1e-4), key
    assert readme_row(name) == [round(scores[k], 2 if "psnr" in k else 4)
                                for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")]


def sr_psnr(model, scale: int, channels: str) -> dict[str, float]:
    """Mean PSNR on Y of the model and of bicubic, by the evaluation's protocol."""
    totals = {"psnr": 0.0, "bicubic_psnr": 0.0}
    dataset = SREval(sample_images().eval, scale, channels)
    for item in dataset:
        lr, hr = item["input"][None], item["target"][None]
        bicubic = imresize(torch.round(lr * 255).to(torch.uint8), scale).float() / 255
        with torch.no_grad():
            out = to_8bit(model(lr))
        totals["psnr"] += psnr(luma_8bit(out), luma_8bit(hr), crop_border=scale).item()
        totals["bicubic_psnr"] += psnr(luma_8bit(bicubic), luma_8bit(hr), crop_border=scale).item()
    return {k: v / len(dataset) for k, v in totals.items()}


@pytest.mark.parametrize("name", SHIPPED)
def test_beats_bicubic(name):
    info = pretrained_info(name)
    assert info["psnr"] - info["bicubic_psnr"] > 0.9 and info["ssim"] > info["bicubic_ssim"]
