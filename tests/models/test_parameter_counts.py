"""Default configurations against the papers: parameter counts recomputed here from each
paper's layer table (independently of the model code), and published totals where the
papers or their reference implementations print them. Counting happens on the meta
device, so even FCN's 134M parameters cost nothing."""

import itertools

import pytest
import torch

from pyimg import models


def conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def bn(c):
    return 2 * c


def count(name, trainable_only=False, **kwargs):
    with torch.device("meta"):
        model = models.create(name, **kwargs)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


VGG16_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


def fcn_expected(skips):
    vgg = sum(conv(a, b, 3) for a, b in VGG16_CONVS)
    fc = conv(512, 4096, 7) + conv(4096, 4096, 1) + conv(4096, 21, 1)
    # Score layers on pool4/pool3 and learned 4x4 (2x) deconvolutions for each skip; the
    # final bilinear upsampling is fixed, so not trainable.
    skip = {"pool4": conv(512, 21, 1), "pool3": conv(256, 21, 1)}
    return vgg + fc + sum(skip[s] + 21 * 21 * 4 * 4 for s in skips)


@pytest.mark.parametrize("name, skips", [("FCN32s", ()), ("FCN16s", ("pool4",)),
                                         ("FCN8s", ("pool4", "pool3"))])
def test_fcn(name, skips):
    trainable = count(name, trainable_only=True)
    assert trainable == fcn_expected(skips)
    assert round(trainable / 1e6) == 134  # FCN paper, Table 1: FCN-VGG16 has 134M


def test_unet():
    c = [64, 128, 256, 512, 1024]
    down = conv(1, 64, 3) + conv(64, 64, 3) + sum(
        conv(c[i], c[i + 1], 3) + conv(c[i + 1], c[i + 1], 3) for i in range(4))
    up = sum(conv(c[i + 1], c[i], 2) + conv(2 * c[i], c[i], 3) + conv(c[i], c[i], 3)
             for i in range(4))
    assert count("UNet") == down + up + conv(64, 2, 1)


def test_segnet_matches_paper_total():
    # SegNet paper, Table 6: 29.5M parameters.
    assert count("SegNet") == pytest.approx(29.5e6, rel=5e-3)


@pytest.mark.parametrize("r", [2, 3, 4])
def test_espcn(r):
    assert count("ESPCN", upscale_factor=r) == (conv(1, 64, 5) + conv(64, 32, 3)
                                                + conv(32, r * r, 3))


def test_vdsr():
    assert count("VDSR") == conv(1, 64, 3) + 18 * conv(64, 64, 3) + conv(64, 1, 3)


def test_srresnet():
    block = 2 * (conv(64, 64, 3) + bn(64)) + 1  # one shared PReLU slope
    upsample = conv(64, 256, 3) + 1
    expected = (conv(3, 64, 9) + 1 + 16 * block + conv(64, 64, 3) + bn(64) + 2 * upsample
                + conv(64, 3, 9))
    assert count("SRResNet") == expected


def test_srgan_discriminator():
    widths = [64, 64, 128, 128, 256, 256, 512, 512]
    convs = sum(conv(a, b, 3, bias=False) + bn(b) for a, b in itertools.pairwise(widths))
    dense = 512 * 6 * 6 * 1024 + 1024 + 1024 + 1
    assert count("SRGANDiscriminator") == conv(3, 64, 3) + convs + dense


def test_rednet30():
    # 15 convs and 15 deconvs of 3x3, 64 channels, grey-scale in and out.
    expected = conv(1, 64, 3) + 14 * conv(64, 64, 3) + 14 * conv(64, 64, 3) + conv(64, 1, 3)
    assert count("REDNet30") == expected


def test_pix2pix_generator_and_patchgan():
    # pix2pix's reference implementation prints 54.414 M (unet_256) and 2.769 M (basic D on
    # 6 channels), both with batch norm.
    assert count("Pix2PixGenerator") == pytest.approx(54.414e6, abs=500)
    expected_d = (conv(6, 64, 4) + conv(64, 128, 4, False) + bn(128) + conv(128, 256, 4, False)
                  + bn(256) + conv(256, 512, 4, False) + bn(512) + conv(512, 1, 4))
    assert count("PatchGANDiscriminator") == expected_d == pytest.approx(2.769e6, abs=500)


@pytest.mark.parametrize("blocks, published", [(9, 11.378e6), (6, 7.838e6)])
def test_cyclegan_generator(blocks, published):
    # Instance norm without affine parameters, so only convolutions count.
    expected = (conv(3, 64, 7) + conv(64, 128, 3) + conv(128, 256, 3)
                + blocks * 2 * conv(256, 256, 3) + conv(256, 128, 3) + conv(128, 64, 3)
                + conv(64, 3, 7))
    assert count("CycleGANGenerator", num_blocks=blocks) == expected
    assert expected == pytest.approx(published, abs=500)  # reference implementation


def test_fast_style_net():
    expected = (conv(3, 32, 9) + bn(32) + conv(32, 64, 3) + bn(64) + conv(64, 128, 3) + bn(128)
                + 5 * 2 * (conv(128, 128, 3) + bn(128))
                + conv(128, 64, 3) + bn(64) + conv(64, 32, 3) + bn(32) + conv(32, 3, 9))
    assert count("FastStyleNet") == expected


def test_denoising_autoencoder():
    expected = (conv(1, 32, 3) + conv(32, 64, 3) + conv(64, 128, 3) + conv(128, 32, 1)
                + conv(32, 64, 3) + conv(64, 32, 3) + conv(32, 1, 3))
    assert count("DenoisingAutoencoder") == expected


def test_dcgan():
    generator = (100 * 4 * 4 * 1024 + bn(1024) + conv(1024, 512, 5, False) + bn(512)
                 + conv(512, 256, 5, False) + bn(256) + conv(256, 128, 5, False) + bn(128)
                 + conv(128, 3, 5))
    discriminator = (conv(3, 128, 5) + conv(128, 256, 5, False) + bn(256)
                     + conv(256, 512, 5, False) + bn(512) + conv(512, 1024, 5, False) + bn(1024)
                     + 1024 * 4 * 4 + 1)
    assert count("DCGANGenerator") == generator
    assert count("DCGANDiscriminator") == discriminator


def test_colorization_net():
    # Zhang et al., Table 4: conv1 ... conv7 (batch norm closing each), conv8, ab head.
    blocks = [(1, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3),
              (512, 512, 3), (512, 512, 3)]
    expected = sum(conv(cin, c, 3) + (n - 1) * conv(c, c, 3) + bn(c) for cin, c, n in blocks)
    expected += conv(512, 256, 4) + 2 * conv(256, 256, 3) + conv(256, 2, 1)
    assert count("ColorizationNet") == expected
