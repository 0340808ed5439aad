"""VGG19 perceptual and style losses on a seeded random VGG19 loaded from a local file."""

import pytest
import torch
import torch.nn.functional as F

from pyimg import losses
from pyimg.losses.vgg import IMAGENET_MEAN, IMAGENET_STD, WEIGHTS_ENV


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A torchvision-layout VGG19 state_dict of seeded random weights, plus classifier keys
    as torchvision's whole-model files have."""
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in losses.VGG19Features().features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def vgg(weights_file):
    return losses.VGG19Features.from_file(weights_file)


def phi(vgg, x, index):
    """Activation after features[index], computed by hand."""
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1)
    for layer in vgg.features[:index + 1]:
        x = layer(x)
    return x


def test_weights_load_from_file_and_environment(weights_file, vgg, monkeypatch):
    saved = torch.load(weights_file)
    assert torch.equal(vgg.features[0].weight, saved["features.0.weight"])
    assert not any(p.requires_grad for p in vgg.parameters())
    monkeypatch.setenv(WEIGHTS_ENV, str(weights_file))
    assert torch.equal(losses.PerceptualLoss().vgg.features[34].weight,
                       saved["features.34.weight"])


def test_missing_weights_say_how_to_supply_them(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=f"never downloads.*{WEIGHTS_ENV}"):
        losses.PerceptualLoss()
    with pytest.raises(FileNotFoundError, match="torchvision"):
        losses.StyleLoss(weights_path=tmp_path / "absent.pth")


def test_weights_of_another_network_are_rejected(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torch.nn.Conv2d(3, 3, 1).state_dict(), path)
    with pytest.raises(RuntimeError, match="state_dict"):
        losses.VGG19Features.from_file(path)


@pytest.mark.parametrize("layer, index", [("2_2", 8), ("5_4", 35)])
def test_perceptual_loss_is_mse_of_phi_ij(vgg, layer, index):
    pred, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    loss = losses.PerceptualLoss((layer,), features=vgg)
    expected = F.mse_loss(phi(vgg, pred, index), phi(vgg, target, index))
    torch.testing.assert_close(loss(pred, target), expected)
    assert loss(target, target).item() == 0


def test_perceptual_loss_trains_the_prediction_only(vgg):
    pred = torch.rand(1, 3, 16, 16, requires_grad=True)
    losses.PerceptualLoss(("2_2", "3_4"), features=vgg)(pred, torch.rand(1, 3, 16, 16)).backward()
    assert pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_unknown_or_no_layers_are_rejected(vgg):
    with pytest.raises(ValueError, match="6_1"):
        losses.PerceptualLoss(("6_1",), features=vgg)
    with pytest.raises(ValueError, match="at least one"):
        losses.StyleLoss((), features=vgg)


def test_gram_matrix():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    expected = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4
    torch.testing.assert_close(losses.gram_matrix(x)[0], expected)


def test_style_loss_compares_grams_with_one_style_image(vgg):
    pred, style = torch.rand(2, 3, 16, 16), torch.rand(1, 3, 16, 16)
    loss = losses.StyleLoss(("1_1", "2_1"), features=vgg)
    expected = 0
    for index in (1, 6):
        g_style = losses.gram_matrix(phi(vgg, style, index))
        expected += F.mse_loss(losses.gram_matrix(phi(vgg, pred, index)), g_style.expand(2, -1, -1))
    torch.testing.assert_close(loss(pred, style), expected)
