"""Scoring super-resolution models as the SR papers do: PSNR and SSIM on the luma Y, with
``scale`` pixels of border cropped, on 8-bit images (the model's output is clipped and
rounded to 8 bits, as a saved result would be), against MATLAB's bicubic upscale as the
baseline."""

import torch
from torch import nn

from pyimg.data.color import rgb_to_ycbcr
from pyimg.data.imresize import imresize
from pyimg.data.sr import SREval
from pyimg.metrics import psnr, ssim


def to_8bit(image: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to the 256 levels of an 8-bit image (still float)."""
    return torch.round(image.clamp(0, 1) * 255) / 255


def luma_8bit(image: torch.Tensor) -> torch.Tensor:
    """Y of an 8-bit-valued (N, 1 or 3, H, W) float image, by uint8 rgb2ycbcr for colour."""
    if image.shape[1] == 1:
        return image
    return rgb_to_ycbcr(torch.round(image * 255).to(torch.uint8))[:, :1].double() / 255


def _scores(pred: torch.Tensor, target: torch.Tensor, border: int) -> tuple[float, float]:
    pred_y, target_y = luma_8bit(pred), luma_8bit(target)
    return (psnr(pred_y, target_y, crop_border=border).item(),
            ssim(pred_y, target_y, crop_border=border).item())


@torch.no_grad()
def sr_scores(model: nn.Module | None, paths, scale: int, channels: str,
              device: torch.device | str = "cpu", crop: int | None = None) -> dict:
    """PSNR/SSIM on Y of ``model`` (None: bicubic only) and of bicubic on the images at
    ``paths`` (their central ``crop`` when given): {"psnr", "ssim", "bicubic_psnr",
    "bicubic_ssim", "images": {name: {...}}}."""
    dataset = SREval(paths, scale, channels, crop)
    per_image = {}
    if model is not None:
        model.eval()
    for item in dataset:
        lr, hr = item["input"][None], item["target"][None]
        scores = {}
        bicubic = imresize(torch.round(lr * 255).to(torch.uint8), scale).float() / 255
        scores["bicubic_psnr"], scores["bicubic_ssim"] = _scores(bicubic, hr, scale)
        if model is not None:
            out = model(lr.to(device)).float().cpu()
            if out.shape != hr.shape:
                raise ValueError(f"{item['name']}: the model returned {tuple(out.shape)} for "
                                 f"an LR input of {tuple(lr.shape)}, expected {tuple(hr.shape)}")
            scores["psnr"], scores["ssim"] = _scores(to_8bit(out), hr, scale)
        per_image[item["name"]] = scores
    keys = next(iter(per_image.values())).keys()
    means = {k: sum(s[k] for s in per_image.values()) / len(per_image) for k in keys}
    return {**means, "images": per_image}
