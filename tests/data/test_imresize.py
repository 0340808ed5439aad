"""MATLAB's imresize (bicubic): against values MATLAB R2020a printed for small inputs (the
test answers published with the bicubic_pytorch project, github.com/sanghyun-son/
bicubic_pytorch), and the properties the SR protocol relies on."""

import pytest
import torch

from pyimg.data import imresize

SQUARE = torch.arange(64, dtype=torch.float64).view(8, 8)
SQUARE15 = torch.arange(225, dtype=torch.float64).view(15, 15)
TOP_LEFT = torch.zeros(4, 4, dtype=torch.float64)
TOP_LEFT[0, 0], TOP_LEFT[1, 0], TOP_LEFT[0, 1], TOP_LEFT[0, 3] = 100, 10, 1, 100

# (input, output size, antialias) -> MATLAB's result.
MATLAB = [
    (SQUARE, (4, 4), True, [
        [4.04296875, 6.08203125, 8.10546875, 10.14453125],
        [20.35546875, 22.39453125, 24.41796875, 26.45703125],
        [36.54296875, 38.58203125, 40.60546875, 42.64453125],
        [52.85546875, 54.89453125, 56.91796875, 58.95703125]]),
    (SQUARE15, (5, 5), True, [
        [14.41975308641976, 17.506172839506178, 20.518518518518526, 23.530864197530867,
         26.61728395061729],
        [60.71604938271606, 63.80246913580248, 66.81481481481481, 69.82716049382715,
         72.91358024691357],
        [105.90123456790124, 108.98765432098764, 112.0, 115.01234567901233,
         118.09876543209876],
        [151.08641975308643, 154.1728395061728, 157.1851851851852, 160.19753086419752,
         163.28395061728395],
        [197.38271604938274, 200.4691358024691, 203.48148148148147, 206.49382716049382,
         209.58024691358023]]),
    (SQUARE, (2, 2), True, [[12.3837890625, 16.6318359375], [46.3681640625, 50.6162109375]]),
    (SQUARE, (3, 4), True, [
        [6.472528773310022, 8.511591273310021, 10.535028773310023, 12.57409127331002],
        [28.44921875, 30.48828125, 32.51171875, 34.55078125],
        [50.42590872668998, 52.46497122668998, 54.48840872668998, 56.52747122668998]]),
    (SQUARE, (3, 4), False, [
        [7.011574074074076, 9.074074074074076, 11.074074074074076, 13.136574074074076],
        [28.4375, 30.5, 32.5, 34.5625],
        [49.863425925925924, 51.92592592592592, 53.925925925925924, 55.988425925925924]]),
    (SQUARE, (5, 7), True, [
        [2.184525125376686, 3.3191373855569823, 4.468841371477804, 5.620459770114943,
         6.7720781687520795, 7.921782154672905, 9.0563944148532],
        [15.219771569951028, 16.354383830131326, 17.504087816052145, 18.655706214689285,
         19.807324613326422, 20.95702859924725, 22.09164085942754],
        [28.064065355261743, 29.198677615442048, 30.34838160136286, 31.500000000000004,
         32.65161839863713, 33.80132238455796, 34.93593464473825],
        [40.90835914057251, 42.0429714007528, 43.19267538667361, 44.344293785310754,
         45.495912183947894, 46.64561616986872, 47.780228430049014],
        [53.943605585146805, 55.0782178453271, 56.22792183124791, 57.37954022988507,
         58.531158628522206, 59.68086261444302, 60.81547487462331]]),
    (TOP_LEFT, (5, 5), False, [
        [108.68522499999966, 27.697097499999902, -12.446562499999981, 26.884192500000054,
         109.20249999999992],
        [35.4713649999999, 8.970788999999971, -3.589562499999994, 6.637437000000011,
         26.96099999999997],
        [-0.6503124999999991, -0.2122187499999997, 0.39453125, -1.6079062500000063,
         -6.531250000000005],
        [-0.7680749999999994, -0.18962999999999977, 0.04593750000000004, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0]]),
]


@pytest.mark.parametrize("case", range(len(MATLAB)))
def test_matches_matlab(case):
    image, size, antialias, expected = MATLAB[case]
    out = imresize(image, size=size, antialias=antialias)
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64), atol=1e-12,
                               rtol=0)


def test_upscale_first_row_matches_matlab():
    # imresize(input_square, [11, 13]): MATLAB's first row and centre value.
    out = imresize(SQUARE, size=(11, 13))
    first = [-0.5487371020587932, -0.11840596869511627, 0.5673871582962373,
             1.1827717736808516, 1.7981563890654666, 2.4135410044500807, 3.0289256198346974,
             3.6443102352193106, 4.259694850603927, 4.8750794659885415, 5.4904640813731564,
             6.176257208364509, 6.606588341728188]
    torch.testing.assert_close(out[0], torch.tensor(first, dtype=torch.float64), atol=1e-12,
                               rtol=0)
    assert out[5, 6].item() == pytest.approx(31.5, abs=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_scale_gives_ceil_size_and_keeps_batch_dims(scale):
    x = torch.rand(2, 3, 31, 20)
    out = imresize(x, 1 / scale)
    assert out.shape == (2, 3, -(-31 // scale), -(-20 // scale))
    assert out.dtype == torch.float32
    # Each channel is resized independently.
    torch.testing.assert_close(out[1, 2], imresize(x[1, 2], 1 / scale))


def test_constant_and_linear_images_are_preserved_inside():
    const = torch.full((1, 12, 18), 0.25, dtype=torch.float64)
    torch.testing.assert_close(imresize(const, 1 / 3), torch.full((1, 4, 6), 0.25,
                                                                  dtype=torch.float64))
    ramp = torch.arange(24, dtype=torch.float64).expand(24, 24)
    up = imresize(ramp, 2)
    # Cubic convolution reproduces linear functions away from the borders.
    inner = up[:, 8:-8]
    expected = (torch.arange(48, dtype=torch.float64)[8:-8] + 0.5) / 2 - 0.5
    torch.testing.assert_close(inner, expected.expand_as(inner))


def test_uint8_path_rounds_between_passes_like_matlab():
    x = torch.randint(0, 256, (3, 30, 30), dtype=torch.uint8)
    out = imresize(x, 1 / 3)
    assert out.dtype == torch.uint8
    reference = imresize(x.double(), 1 / 3)
    assert (out.double() - reference).abs().max() <= 1.0
    # Rounding twice: not always the same as rounding the float result once.
    one_pass = torch.floor(reference.clamp(0, 255) + 0.5)
    assert (out.double() - one_pass).abs().max() <= 1.0


def test_scale_one_is_identity():
    x = torch.rand(1, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(imresize(x, 1), x)


def test_bad_arguments():
    x = torch.rand(4, 4)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x, 0.5, size=(2, 2))
    with pytest.raises(ValueError, match="positive"):
        imresize(x, -1)
    with pytest.raises(ValueError, match="float or uint8"):
        imresize(torch.zeros(4, 4, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="image"):
        imresize(torch.rand(5), 0.5)
