"""Paper-specific behaviour of the zoo models, beyond what every model shares."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyimg import models
from pyimg.models._sizing import mirror_pad
from pyimg.models._vgg import VGG16, vgg_features
from pyimg.models.fcn import _bilinear_kernel


@pytest.mark.parametrize("pads", [(1, 2, 0, 3), (9, 4, 12, 7)])
def test_mirror_pad_reflects_repeatedly_like_numpy(pads):
    x = torch.arange(2 * 5 * 4, dtype=torch.float64).view(1, 2, 5, 4)
    left, right, top, bottom = pads
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode="reflect")
    assert np.array_equal(mirror_pad(x, *pads).numpy(), expected)


def test_fcn_upsampler_is_bilinear_interpolation():
    x = torch.rand(1, 2, 6, 5)
    up = F.conv_transpose2d(x, _bilinear_kernel(2, 4), stride=2, padding=1)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    # Equal away from the border, where interpolate clamps and the deconvolution zero-pads.
    torch.testing.assert_close(up[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1])


def test_fcn_final_upsampling_fixed_and_scores_start_at_zero():
    model = models.FCN8s(num_classes=3, width=1 / 16, fc_channels=8)
    assert not model.upscore8.weight.requires_grad
    assert model.upscore2.weight.requires_grad and model.upscore_pool4.weight.requires_grad
    assert torch.count_nonzero(model(torch.rand(1, 3, 20, 20))) == 0


def test_unet_paper_tile_sizes():
    model = models.UNet()
    assert model.output_size(572) == 388  # the paper's Fig. 1
    assert model.output_size(571) is None  # a max-pool would see an odd size


def test_segnet_decoder_unpools_at_encoder_indices():
    model = models.SegNet(num_classes=2, width=1 / 16).eval()
    unpooled = []

    def record(module, args, out):
        unpooled.append(out)

    model.unpool.register_forward_hook(record)
    model(torch.rand(1, 3, 32, 32))
    assert len(unpooled) == 5
    first = unpooled[0]
    # Each 2x2 window holds its one maximum's value at the stored index, zeros elsewhere.
    nonzero_per_window = F.avg_pool2d((first != 0).double(), 2) * 4
    assert nonzero_per_window.max() <= 1


@pytest.mark.parametrize("r", [2, 3, 4])
def test_espcn_scales(r):
    model = models.ESPCN(upscale_factor=r, channels=8)
    assert model(torch.rand(1, 1, 5, 6)).shape == (1, 1, 5 * r, 6 * r)


def test_vdsr_global_residual_and_bicubic_input():
    model = models.VDSR(channels=4, num_layers=4, upscale_factor=2)
    torch.nn.init.zeros_(model.body[-1].weight)
    torch.nn.init.zeros_(model.body[-1].bias)
    x = torch.rand(1, 1, 6, 7)
    bicubic = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.equal(model(x), bicubic)


def test_srresnet_upscale_must_be_power_of_two():
    assert models.SRResNet(2, channels=4, num_blocks=1)(torch.rand(1, 3, 4, 5)).shape[-2:] == \
        (8, 10)
    with pytest.raises(ValueError, match="power of 2"):
        models.SRResNet(3)


def test_srgan_discriminator_sees_6x6_at_96():
    model = models.SRGANDiscriminator(channels=2, hidden=4)
    assert model.features(torch.rand(1, 3, 96, 96)).shape[-2:] == (6, 6)


@pytest.mark.parametrize("n_layers, field", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field(n_layers, field):
    model = models.PatchGANDiscriminator(in_channels=2, base_channels=2, n_layers=n_layers)
    model.eval()
    condition = torch.rand(1, 1, 96, 96, requires_grad=True)
    out = model(condition, torch.rand(1, 1, 96, 96))
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = torch.nonzero(condition.grad[0, 0], as_tuple=True)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (field, field)


def test_pix2pix_dropout_is_noise_at_test_time():
    x = torch.rand(1, 3, 16, 16)
    noisy = models.Pix2PixGenerator(base_channels=4, num_downs=4).eval()
    assert not torch.equal(noisy(x), noisy(x))
    quiet = models.Pix2PixGenerator(base_channels=4, num_downs=4, test_time_dropout=False)
    quiet.eval()
    assert torch.equal(quiet(x), quiet(x))


def test_style_net_outputs_images_in_unit_range():
    out = models.FastStyleNet(base_channels=4, num_blocks=1)(torch.rand(1, 3, 9, 9) * 10)
    assert out.min() >= 0 and out.max() <= 1


def test_colorization_dilates_conv5_and_conv6():
    model = models.ColorizationNet(width=1 / 32)
    dilations = [m.dilation for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert dilations.count((2, 2)) == 6


def test_fcn_loads_vgg16_with_dense_layers_as_convolutions():
    torch.manual_seed(0)
    fcn = models.FCN32s(num_classes=3, width=1 / 16, fc_channels=8)
    vgg = torch.nn.Sequential(vgg_features(VGG16, width=1 / 16))
    pool5_channels = fcn.classifier[0].in_channels
    classifier = torch.nn.Sequential(torch.nn.Linear(pool5_channels * 49, 8), torch.nn.ReLU(),
                                     torch.nn.Dropout(), torch.nn.Linear(8, 8))
    state = {**{f"features.{k}": v for k, v in vgg[0].state_dict().items()},
             **{f"classifier.{k}": v for k, v in classifier.state_dict().items()}}
    fcn.load_vgg16(state)
    assert torch.equal(fcn.features[28].weight, vgg[0][28].weight)
    # On a 7x7 pool5 map, the convolutionalised fc6/fc7 compute VGG16's dense layers.
    pool5 = torch.rand(2, pool5_channels, 7, 7)
    dense = classifier[3](classifier[1](classifier[0](pool5.flatten(1))))
    convolutional = fcn.classifier.eval()(pool5)
    torch.testing.assert_close(convolutional.flatten(1), torch.relu(dense))


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_translation_models_take_either_norm(norm):
    generator = models.Pix2PixGenerator(base_channels=4, num_downs=3, norm=norm)
    discriminator = models.PatchGANDiscriminator(base_channels=4, n_layers=2, norm=norm)
    x = torch.rand(1, 3, 16, 16)
    y = generator(x)
    assert y.shape == x.shape
    assert discriminator(x, y).shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match="norm"):
        models.CycleGANGenerator(norm="layer")
