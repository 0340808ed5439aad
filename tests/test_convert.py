"""pyimg.convert: stock modules and patterns become pyimg's, outputs and state_dicts stay."""

import copy
import io
import logging

import pytest
import torch
from support import TOLERANCE
from torch import nn

import pyimg.nn as pnn
from pyimg.conversion import (
    SEQUENCE_RULES,
    convert,
    convert_with_report,
    register_sequence_rule,
)

ACTIVATIONS = [nn.ReLU(), nn.LeakyReLU(0.2), nn.PReLU(), nn.PReLU(3, init=0.1), nn.Tanh(),
               nn.Sigmoid()]


class Upsampler(nn.Module):
    """A user model: a stock sub-pixel stage nested in a Sequential, a bare shuffle, and
    modules no rule touches."""

    def __init__(self, act: nn.Module):
        super().__init__()
        self.stage = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2), act)
        self.down = nn.PixelUnshuffle(2)
        self.shuffle = nn.PixelShuffle(2)
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.norm(self.shuffle(self.down(self.stage(x))))


def randomized(model):
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("act", ACTIVATIONS, ids=repr)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_outputs_and_state_dict_survive(act, dtype):
    torch.manual_seed(0)
    model = randomized(Upsampler(act)).to(dtype)
    converted, report = convert_with_report(model)
    # A PReLU after the shuffle takes the convolution in too.
    upsample = isinstance(act, nn.PReLU)
    fused = pnn.UpsampleBlock if upsample else pnn.PixelShuffleAct
    assert type(converted.stage[2]) is fused
    assert isinstance(converted.stage[1], nn.Identity)
    assert isinstance(converted.stage[0], nn.Identity) == upsample
    assert type(converted.down) is pnn.PixelUnshuffle
    assert type(converted.shuffle) is pnn.PixelShuffle
    x = torch.randn(2, 3, 5, 6, dtype=dtype)
    torch.testing.assert_close(converted(x), model(x), **TOLERANCE[dtype])
    assert converted.state_dict().keys() == model.state_dict().keys()
    model.load_state_dict(converted.state_dict())
    converted.load_state_dict(model.state_dict())
    assert type(converted.stage[0]) is (nn.Identity if upsample else pnn.Conv2d)
    fusions = ["stage.0..2"] if upsample else ["stage.1..2", "stage.0"]
    assert [r.path for r in report.replaced] == [*fusions, "down", "shuffle"]
    assert report.left_alone == [("norm", "BatchNorm2d")]


def test_original_is_untouched_unless_inplace():
    model = nn.Sequential(nn.PixelShuffle(2), nn.ReLU())
    converted = convert(model)
    assert type(model[0]) is nn.PixelShuffle and type(converted[1]) is pnn.PixelShuffleAct
    assert convert(model, inplace=True) is model
    assert type(model[1]) is pnn.PixelShuffleAct


def test_root_module_and_pyimg_modules():
    assert type(convert(nn.PixelShuffle(3))) is pnn.PixelShuffle
    already = nn.Sequential(pnn.PixelShuffle(2), pnn.Conv2d(1, 1, 1))
    _, report = convert_with_report(already)
    assert report.replaced == []
    assert report.left_alone == [("0", "pyimg.PixelShuffle"), ("1", "pyimg.Conv2d")]


def test_unfusable_activation_is_left_alone():
    _, report = convert_with_report(nn.Sequential(nn.PixelShuffle(2), nn.GELU()))
    assert [(r.path, r.after) for r in report.replaced] == [("0", "pyimg.PixelShuffle")]
    assert report.left_alone == [("1", "GELU")]


def test_report_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="pyimg.conversion"):
        convert(nn.Sequential(nn.PixelShuffle(2), nn.PReLU()))
    assert "PixelShuffle+PReLU -> pyimg.PixelShuffleAct" in caplog.text


def test_registered_sequence_rules_apply(monkeypatch):
    monkeypatch.setattr("pyimg.conversion.SEQUENCE_RULES", list(SEQUENCE_RULES))
    register_sequence_rule("tanh+tanh", (lambda m: isinstance(m, nn.Tanh),) * 2,
                           lambda a, b: nn.Hardtanh())
    converted, report = convert_with_report(nn.Sequential(nn.Tanh(), nn.Tanh(), nn.ReLU()))
    assert [type(m) for m in converted] == [nn.Identity, nn.Hardtanh, nn.ReLU]
    assert report.replaced[0].rule == "tanh+tanh"


def test_max_pool_and_unpool_become_pyimg_modules():
    model = nn.Sequential(nn.MaxPool2d(3, 2, padding=1, ceil_mode=True),
                          nn.MaxPool2d(2, return_indices=True))
    unpool = nn.MaxUnpool2d(2)
    converted = convert(nn.ModuleList([model, unpool]))
    assert type(converted[0][0]) is pnn.MaxPool2d and type(converted[1]) is pnn.MaxUnpool2d
    assert repr(converted) == repr(nn.ModuleList([model, unpool]))
    x = torch.randn(2, 3, 9, 10)
    (y, indices), (y_ref, indices_ref) = converted[0](x), model(x)
    assert torch.equal(y, y_ref) and torch.equal(indices, indices_ref)
    size = model[0](x).shape[-2:]  # odd: the unpool needs it
    assert torch.equal(converted[1](y, indices, size), unpool(y_ref, indices_ref, size))


def test_misfit_convolution_is_left_to_the_shuffle_rule():
    stage = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1, padding_mode="reflect"),
                          nn.PixelShuffle(2), nn.PReLU())
    converted, report = convert_with_report(stage)
    assert [(r.path, r.after) for r in report.replaced] == [("1..2", "pyimg.PixelShuffleAct"),
                                                            ("0", "pyimg.Conv2d")]
    x = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(converted.eval()(x), stage.eval()(x))


def test_stock_keys_survive_pickling_and_copies():
    model = randomized(nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.PixelShuffle(2),
                                     nn.PReLU(2)))
    converted = convert(model)
    buffer = io.BytesIO()
    torch.save(converted, buffer)
    buffer.seek(0)
    for copy_ in (torch.load(buffer, weights_only=False), copy.deepcopy(converted)):
        assert copy_.state_dict().keys() == model.state_dict().keys() == {
            "0.weight", "0.bias", "2.weight"}
        copy_.load_state_dict(model.state_dict())


@pytest.mark.parametrize("act", [None, nn.ReLU(), nn.LeakyReLU(0.2), nn.PReLU(4)], ids=repr)
def test_conv_batch_norm_activation_becomes_conv2d_bn_act(act):
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)] + ([act] if act else [])
    model = trained(nn.Sequential(*layers, nn.Conv2d(4, 2, 1)))
    converted, report = convert_with_report(model)
    last = str(len(layers) - 1)
    assert type(converted[len(layers) - 1]) is pnn.Conv2dBNAct
    assert type(converted[len(layers)]) is pnn.Conv2d
    assert [r.path for r in report.replaced] == [f"0..{last}", str(len(layers))]
    assert converted.state_dict().keys() == model.state_dict().keys()
    model.load_state_dict(converted.state_dict())
    converted.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 5, 6)
    for training in (False, True):  # eval folds the batch norm; training updates its stats
        model.train(training)
        converted.train(training)
        torch.testing.assert_close(converted(x), model(x), atol=1e-5, rtol=1e-5)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(converted.state_dict()[name], value, msg=name)


def test_in_place_conversion_keeps_the_optimizers_parameters():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU())
    weight = model[0].weight
    convert(model, inplace=True)
    assert type(model[0]) is pnn.Conv2d and model[0].weight is weight


# -- a model's own SRResNet blocks -----------------------------------------------------------


class SRBlock(nn.Module):
    """A user's SRResNet block (what pyimg's zoo had before ResidualBlock)."""

    def __init__(self, channels=4, residual="after"):
        super().__init__()
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.PReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))

    def forward(self, x):
        if self.residual == "after":
            return x + self.body(x)
        if self.residual == "before":
            return self.body(x) + x
        if self.residual == "scaled":
            return x + 0.1 * self.body(x)
        if self.residual == "branchy":  # data-dependent: fx cannot trace it
            return x + self.body(x) if x.mean() > 0 else x
        return self.body(x)


class FlatSRBlock(nn.Module):
    def __init__(self, channels=4):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.act = nn.PReLU(channels)
        self.c2, self.b2 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.add(self.b2(self.c2(self.act(self.b1(self.c1(x))))), x)


def trained(model):
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(3, 3, 5, 5) * 2 + 1)  # running statistics away from (0, 1)
    return model


@pytest.mark.parametrize("block", [SRBlock(residual="after"), SRBlock(residual="before"),
                                   FlatSRBlock()], ids=["x+f(x)", "f(x)+x", "flat"])
def test_residual_blocks_become_residual_block(block):
    torch.manual_seed(0)
    model = trained(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), copy.deepcopy(block)))
    converted, report = convert_with_report(model)
    assert type(converted[1]) is pnn.ResidualBlock
    assert ("1", "pyimg.ResidualBlock", "residual_block") in [
        (r.path, r.after, r.rule) for r in report.replaced]
    assert converted.state_dict().keys() == model.state_dict().keys()
    model.load_state_dict(converted.state_dict())
    converted.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 6, 5)
    for training in (False, True):  # training last: it moves the running statistics
        model.train(training)
        converted.train(training)
        torch.testing.assert_close(converted(x), model(x), atol=1e-5, rtol=1e-5)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(converted.state_dict()[name], value, msg=name)


@pytest.mark.parametrize("block", [SRBlock(residual="none"), SRBlock(residual="scaled"),
                                   SRBlock(residual="branchy")], ids=["f(x)", "x+0.1f(x)", "if"])
def test_look_alike_blocks_get_only_their_layers_fused(block):
    block = trained(nn.Sequential(nn.Conv2d(3, 4, 1), copy.deepcopy(block)))[1].eval()
    converted, report = convert_with_report(block)
    assert [r.rule for r in report.replaced] == ["conv+batch_norm+activation", "conv+batch_norm"]
    x = torch.randn(2, 4, 5, 5) + 0.5
    torch.testing.assert_close(converted(x), block(x), atol=1e-5, rtol=1e-5)
