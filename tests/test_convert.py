"""pyimg.convert: stock modules and patterns become pyimg's, outputs and state_dicts stay."""

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
    assert type(converted.stage[2]) is pnn.PixelShuffleAct
    assert isinstance(converted.stage[1], nn.Identity)
    assert type(converted.down) is pnn.PixelUnshuffle
    assert type(converted.shuffle) is pnn.PixelShuffle
    x = torch.randn(2, 3, 5, 6, dtype=dtype)
    torch.testing.assert_close(converted(x), model(x), **TOLERANCE[dtype])
    assert converted.state_dict().keys() == model.state_dict().keys()
    model.load_state_dict(converted.state_dict())
    converted.load_state_dict(model.state_dict())
    assert [r.path for r in report.replaced] == ["stage.1..2", "down", "shuffle"]
    assert sorted(path for path, _ in report.left_alone) == ["norm", "stage.0"]


def test_original_is_untouched_unless_inplace():
    model = nn.Sequential(nn.PixelShuffle(2), nn.ReLU())
    converted = convert(model)
    assert type(model[0]) is nn.PixelShuffle and type(converted[1]) is pnn.PixelShuffleAct
    assert convert(model, inplace=True) is model
    assert type(model[1]) is pnn.PixelShuffleAct


def test_root_module_and_pyimg_modules():
    assert type(convert(nn.PixelShuffle(3))) is pnn.PixelShuffle
    already = nn.Sequential(pnn.PixelShuffle(2), nn.Conv2d(1, 1, 1))
    _, report = convert_with_report(already)
    assert report.replaced == []
    assert ("0", "pyimg.PixelShuffle") in report.left_alone


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
