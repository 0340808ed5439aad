"""PSNR and SSIM on batched NCHW images, with the super-resolution papers' conventions: an
optional BT.601 luma (Y) channel and a border cropped off before measuring.

Both compute (and return) float64 from the same stock ops on every device, so CPU and GPU
agree to rounding; they match ``skimage.metrics`` (SSIM with ``gaussian_weights=True``,
``use_sample_covariance=False``, Wang et al.'s settings).
"""

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma from RGB in [0, 1], on the [16, 235] studio range of 255 (MATLAB's
# rgb2ycbcr, which the SR papers' Y-channel numbers use).
_BT601_Y = (65.481, 128.553, 24.966)


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of NCHW RGB images in [0, 1], as an N1HW tensor in [16/255, 235/255]."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected NCHW RGB images, got shape {tuple(rgb.shape)}")
    weights = rgb.new_tensor(_BT601_Y).view(1, 3, 1, 1)
    return (16.0 + (rgb * weights).sum(dim=1, keepdim=True)) / 255.0


def _prepare(pred, target, data_range, crop_border, y_channel):
    """Both images as float64, on Y when asked (then with range 1), border cropped."""
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"expected two NCHW tensors of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    pred, target = pred.double(), target.double()
    if y_channel:
        pred, target = rgb_to_y(pred / data_range), rgb_to_y(target / data_range)
        data_range = 1.0
    if crop_border:
        c = crop_border
        pred, target = pred[..., c:-c, c:-c], target[..., c:-c, c:-c]
    return pred, target, data_range


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0,
         crop_border: int = 0, y_channel: bool = False, reduction: str = "mean") -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, 10 log10(data_range^2 / MSE), per image then
    averaged over the batch (``reduction="none"`` keeps the N values). ``y_channel``
    measures the BT.601 Y channel of RGB images; ``crop_border`` pixels are dropped from
    each side first (the scale factor, by the SR papers' convention). Identical images give
    inf."""
    pred, target, data_range = _prepare(pred, target, data_range, crop_border, y_channel)
    mse = (pred - target).square().mean(dim=(1, 2, 3))
    return _reduce(10 * torch.log10(data_range**2 / mse), reduction)


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor):
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-coords.square() / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).expand(channels, 1, size, size)


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0,
         crop_border: int = 0, y_channel: bool = False, reduction: str = "mean",
         window_size: int = 11, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03) -> torch.Tensor:
    """Structural similarity (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004) with the
    paper's 11x11 Gaussian window (sigma 1.5), K1 = 0.01 and K2 = 0.03: the SSIM map over
    every fully-covered window position, averaged over positions and channels per image,
    then over the batch (``reduction="none"`` keeps the N values). ``y_channel`` and
    ``crop_border`` as in :func:`psnr`."""
    pred, target, data_range = _prepare(pred, target, data_range, crop_border, y_channel)
    channels = pred.shape[1]
    if min(pred.shape[-2:]) < window_size:
        raise ValueError(f"images of {tuple(pred.shape[-2:])} pixels (after cropping) are "
                         f"smaller than the {window_size}x{window_size} window")
    window = _gaussian_window(window_size, sigma, channels, pred)

    def blur(x):
        return F.conv2d(x, window, groups=channels)

    mu_x, mu_y = blur(pred), blur(target)
    var_x = blur(pred * pred) - mu_x.square()
    var_y = blur(target * target) - mu_y.square()
    cov = blur(pred * target) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)
                / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)))
    return _reduce(ssim_map.mean(dim=(1, 2, 3)), reduction)

