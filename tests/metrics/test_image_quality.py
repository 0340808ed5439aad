"""PSNR and SSIM against hand-computed cases and scikit-image, on random and real images."""

import math

import numpy as np
import pytest
import torch

from pyimg.metrics import psnr, rgb_to_y, ssim

skimage_metrics = pytest.importorskip("skimage.metrics")
skimage_color = pytest.importorskip("skimage.color")
skimage_data = pytest.importorskip("skimage.data")


def noisy_pair(shape, data_range=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=gen, dtype=torch.float64) * data_range
    noise = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.08 * data_range
    return (target + noise).clamp(0, data_range), target


def real_pair():
    """skimage's astronaut (bundled, 512x512 RGB) and a noisy, slightly darkened copy."""
    image = torch.from_numpy(skimage_data.astronaut()).permute(2, 0, 1)[None].double() / 255
    image = image[..., 100:164, 200:280]
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(1)) * 0.05
    return (image * 0.9 + noise).clamp(0, 1), image


def to_hwc(x):
    return x.permute(1, 2, 0).numpy()


def sk_psnr(pred, target, data_range):
    return skimage_metrics.peak_signal_noise_ratio(to_hwc(target), to_hwc(pred),
                                                   data_range=data_range)


def sk_ssim(pred, target, data_range):
    return skimage_metrics.structural_similarity(
        to_hwc(pred), to_hwc(target), data_range=data_range, channel_axis=2,
        gaussian_weights=True, use_sample_covariance=False)


def test_psnr_of_a_constant_error():
    target = torch.rand(2, 3, 8, 8)
    # MSE = 0.1^2 -> 10 log10(1 / 0.01) = 20 dB; with range 255 and error 25.5 the same.
    assert psnr(target + 0.1, target).item() == pytest.approx(20.0, abs=1e-5)
    assert psnr((target + 0.1) * 255, target * 255, data_range=255).item() == \
        pytest.approx(20.0, abs=1e-5)
    assert math.isinf(psnr(target, target).item())


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_psnr_and_ssim_match_skimage_on_random_images(data_range):
    pred, target = noisy_pair((3, 3, 24, 30), data_range)
    ours_psnr = psnr(pred, target, data_range=data_range, reduction="none")
    ours_ssim = ssim(pred, target, data_range=data_range, reduction="none")
    for i in range(3):
        assert ours_psnr[i].item() == pytest.approx(sk_psnr(pred[i], target[i], data_range),
                                                    rel=1e-10)
        assert ours_ssim[i].item() == pytest.approx(sk_ssim(pred[i], target[i], data_range),
                                                    rel=1e-8)
    assert psnr(pred, target, data_range=data_range) == ours_psnr.mean()


def test_psnr_and_ssim_match_skimage_on_a_real_image():
    pred, target = real_pair()
    assert psnr(pred, target).item() == pytest.approx(sk_psnr(pred[0], target[0], 1.0),
                                                      rel=1e-10)
    assert ssim(pred, target).item() == pytest.approx(sk_ssim(pred[0], target[0], 1.0),
                                                      rel=1e-8)


def test_y_channel_and_crop_border_follow_the_sr_convention():
    pred, target = real_pair()
    border = 4
    y_pred, y_target = (torch.from_numpy(skimage_color.rgb2ycbcr(to_hwc(x[0]))[..., 0] / 255)
                        [None, border:-border, border:-border] for x in (pred, target))
    got_psnr = psnr(pred, target, crop_border=border, y_channel=True)
    got_ssim = ssim(pred, target, crop_border=border, y_channel=True)
    assert got_psnr.item() == pytest.approx(sk_psnr(y_pred, y_target, 1.0), rel=1e-10)
    assert got_ssim.item() == pytest.approx(sk_ssim(y_pred, y_target, 1.0), rel=1e-8)


def test_crop_border_ignores_errors_on_the_border():
    target = torch.rand(1, 3, 20, 20)
    pred = target.clone()
    pred[..., :2, :] += 0.5
    pred[..., :, -2:] -= 0.5
    assert math.isinf(psnr(pred, target, crop_border=2).item())
    assert ssim(pred, target, crop_border=2).item() == pytest.approx(1.0)
    assert ssim(pred, target).item() < 1


def test_rgb_to_y_is_bt601():
    rgb = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert rgb_to_y(rgb).item() == pytest.approx((16 + 65.481) / 255)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="window"):
        ssim(torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12), crop_border=1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_identical_on_cpu_and_gpu():
    pred, target = noisy_pair((2, 3, 32, 32))
    for metric in (psnr, ssim):
        cpu = metric(pred, target, crop_border=2, y_channel=True, reduction="none")
        gpu = metric(pred.cuda(), target.cuda(), crop_border=2, y_channel=True,
                     reduction="none")
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-12, atol=1e-12)


def test_float32_inputs_measure_like_float64():
    pred, target = noisy_pair((1, 3, 16, 16))
    assert np.isclose(psnr(pred.float(), target.float()).item(),
                      psnr(pred, target).item(), rtol=1e-6)
