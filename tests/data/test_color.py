"""MATLAB-compatible YCbCr conversion: MATLAB's documented uint8 values, the inverse, and
agreement with the metrics' Y."""

import pytest
import torch

from pyimg.data import gray_to_y, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from pyimg.metrics import rgb_to_y as metrics_rgb_to_y

# rgb2ycbcr of uint8 primaries as MATLAB prints them (16 + 219 / 224 scaled BT.601).
MATLAB_UINT8 = {
    (255, 0, 0): (81, 90, 240),
    (0, 255, 0): (145, 54, 34),
    (0, 0, 255): (41, 240, 110),
    (255, 255, 255): (235, 128, 128),
    (0, 0, 0): (16, 128, 128),
}


def test_uint8_primaries_match_matlab():
    rgb = torch.tensor(list(MATLAB_UINT8), dtype=torch.uint8).T.reshape(3, 1, -1)
    expected = torch.tensor(list(MATLAB_UINT8.values()), dtype=torch.uint8).T.reshape(3, 1, -1)
    assert torch.equal(rgb_to_ycbcr(rgb), expected)


def test_float_formula_and_range():
    rgb = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    y = (16 + 65.481 * rgb[:, 0] + 128.553 * rgb[:, 1] + 24.966 * rgb[:, 2]) / 255
    ycbcr = rgb_to_ycbcr(rgb)
    torch.testing.assert_close(ycbcr[:, 0], y)
    assert ycbcr[:, 0].min() >= 16 / 255 and ycbcr[:, 0].max() <= 235 / 255
    assert ycbcr[:, 1:].min() >= 16 / 255 and ycbcr[:, 1:].max() <= 240 / 255


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inverse_round_trip(dtype):
    rgb = torch.rand(3, 9, 4, dtype=dtype)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb))
    assert back.dtype == dtype
    torch.testing.assert_close(back, rgb, atol=1e-5 if dtype == torch.float32 else 1e-12,
                               rtol=0)


def test_uint8_round_trip_within_one_level():
    rgb = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb))
    assert back.dtype == torch.uint8
    assert (back.int() - rgb.int()).abs().max() <= 2


def test_y_agrees_with_metrics_and_grey():
    rgb = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(rgb_to_y(rgb), metrics_rgb_to_y(rgb))
    grey = torch.rand(1, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(gray_to_y(grey), rgb_to_y(grey.expand(3, -1, -1)))
    grey8 = torch.arange(256, dtype=torch.uint8).view(1, 16, 16)
    assert torch.equal(gray_to_y(grey8), rgb_to_y(grey8.expand(3, -1, -1)))


def test_bad_input():
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_ycbcr(torch.rand(4, 5, 5))
    with pytest.raises(ValueError, match="int32"):
        rgb_to_ycbcr(torch.zeros(3, 2, 2, dtype=torch.int32))
