"""Optional degradations of a low-resolution input for robust restoration models: Gaussian
blur, additive Gaussian noise and JPEG compression, each with its strength drawn from a
range per sample (in the spirit of Real-ESRGAN's first-order model, Wang et al. 2021)."""

import io

import numpy as np
import torch
import torch.nn.functional as F


def _uniform(rng: np.random.Generator, bounds, name: str) -> float:
    low, high = (bounds, bounds) if isinstance(bounds, (int, float)) else bounds
    if low > high or low < 0:
        raise ValueError(f"{name} range must be [low, high] with 0 <= low <= high, got "
                         f"{bounds!r}")
    return float(rng.uniform(low, high))


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur a (C, H, W) image with an isotropic Gaussian (reflect padding, 3 sigma radius)."""
    if sigma <= 0:
        return image
    radius = max(1, int(np.ceil(3 * sigma)))
    radius = min(radius, min(image.shape[-2:]) - 1)
    t = torch.arange(-radius, radius + 1, dtype=image.dtype)
    g = torch.exp(-t.square() / (2 * sigma**2))
    g = g / g.sum()
    c = image.shape[0]
    x = F.pad(image[None], (radius,) * 4, mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x[0]


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Round-trip a (1 or 3, H, W) image in [0, 1] through 8-bit JPEG at ``quality``."""
    from PIL import Image

    array = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    array = array[0].numpy() if image.shape[0] == 1 else array.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer))
    out = torch.from_numpy(decoded.copy()).float() / 255
    return out[None] if out.dim() == 2 else out.permute(2, 0, 1).contiguous()


def degrade(image: torch.Tensor, rng: np.random.Generator, blur=None, noise=None,
            jpeg_quality=None) -> torch.Tensor:
    """Blur (sigma range in pixels), then noise (sigma range on the 0-255 scale), then JPEG
    (quality range), each only when its range is given; the result is clipped to [0, 1]."""
    if blur is not None:
        image = gaussian_blur(image, _uniform(rng, blur, "blur"))
    if noise is not None:
        sigma = _uniform(rng, noise, "noise") / 255
        image = image + sigma * torch.from_numpy(rng.standard_normal(image.shape,
                                                                      dtype=np.float32))
    image = image.clamp(0, 1)
    if jpeg_quality is not None:
        low, high = (jpeg_quality, jpeg_quality) if isinstance(jpeg_quality, int) \
            else jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError(f"jpeg quality range must lie in [1, 100], got {jpeg_quality!r}")
        image = jpeg(image, int(rng.integers(low, high + 1)))
    return image
