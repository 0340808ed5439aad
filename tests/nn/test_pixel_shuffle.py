"""pyimg.nn pixel-shuffle modules against the stock modules they replace."""

import pytest
import torch
from torch import nn

import pyimg


@pytest.mark.parametrize("memory_format", (torch.contiguous_format, torch.channels_last))
def test_drop_in_modules_match_stock(memory_format):
    x = torch.randn(2, 18, 5, 4).contiguous(memory_format=memory_format)
    for ours, stock in ((pyimg.nn.PixelShuffle(3), nn.PixelShuffle(3)),
                        (pyimg.nn.PixelUnshuffle(1), nn.PixelUnshuffle(1))):
        assert isinstance(ours, type(stock))
        assert repr(ours).split("(", 1)[1] == repr(stock).split("(", 1)[1]
        assert ours.state_dict().keys() == stock.state_dict().keys()
        y = ours(x)
        assert torch.equal(y, stock(x))
        assert y.is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize(
    "act", [nn.ReLU(), nn.LeakyReLU(0.2), nn.PReLU(), nn.PReLU(3, init=0.1), nn.Tanh(),
            nn.Sigmoid()], ids=lambda m: repr(m)
)
def test_pixel_shuffle_act_from_modules_matches_sequence(act):
    if isinstance(act, nn.PReLU):
        with torch.no_grad():
            act.weight.uniform_(-0.5, 0.5)
    stock = nn.Sequential(nn.PixelShuffle(2), act)
    fused = pyimg.nn.PixelShuffleAct.from_modules(stock[0], stock[1])
    x = torch.randn(2, 12, 5, 3, requires_grad=True)
    y, y_ref = fused(x), stock(x)
    torch.testing.assert_close(y, y_ref)
    grad = torch.randn_like(y)
    ours = torch.autograd.grad(y, [x, *fused.parameters()], grad)
    expected = torch.autograd.grad(y_ref, [x, *act.parameters()], grad)
    for g, e in zip(ours, expected, strict=True):
        torch.testing.assert_close(g, e)


def test_pixel_shuffle_act_state_dict_moves_to_prelu_and_back():
    fused = pyimg.nn.PixelShuffleAct(2, "prelu", num_parameters=4, init=0.3)
    prelu = nn.PReLU(4)
    prelu.load_state_dict(fused.state_dict())
    assert torch.equal(prelu.weight, torch.full((4,), 0.3))
    with torch.no_grad():
        prelu.weight.mul_(2)
    fused.load_state_dict(prelu.state_dict())
    assert torch.equal(fused.weight, prelu.weight)
    assert pyimg.nn.PixelShuffleAct(2, "relu").state_dict() == {}


def test_pixel_shuffle_act_rejects_unknown_activation():
    with pytest.raises(TypeError, match="GELU"):
        pyimg.nn.PixelShuffleAct.from_modules(nn.PixelShuffle(2), nn.GELU())
