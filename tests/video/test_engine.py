"""The compute stage on the CPU: the model runs through pyimg.inference's optimized copy by
default, with the same result as the model itself."""

import pytest
import torch

from pyimg.inference import InferenceModel
from pyimg.models import ESPCN, SRResNet
from pyimg.video.engine import Upscaler
from pyimg.video.model_spec import SRModel


def _model(name):
    torch.manual_seed(0)
    if name == "espcn":
        return SRModel(ESPCN(2, channels=16).eval(), 2, "y", name)
    model = SRResNet(2, channels=8, num_blocks=2).eval()
    for module in model.modules():  # BatchNorm statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return SRModel(model, 2, "rgb", name)


@pytest.mark.parametrize("name", ["espcn", "srresnet"])
def test_optimized_cpu_path_matches_the_model(name):
    sr = _model(name)
    x = torch.rand(2, sr.in_channels, 19, 23)
    with torch.inference_mode():
        expected = sr.module(x)
    fast = Upscaler(sr, device="cpu")
    assert isinstance(fast._forward, InferenceModel)
    with torch.inference_mode():
        out = fast.infer(x)
    assert out.dtype == torch.float32 and out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-4 * expected.abs().max().item(),
                               rtol=1e-4)


def test_no_optimize_and_forced_backends_run_the_model_itself():
    sr = _model("espcn")
    assert Upscaler(sr, device="cpu", optimize=False)._forward is sr.module
    assert Upscaler(_model("espcn"), device="cpu", backend="torch")._forward.__class__ is ESPCN
    assert not isinstance(Upscaler(_model("espcn"), device="cpu", dtype="fp16")._forward,
                          InferenceModel)


def test_bf16_runs_optimized_and_returns_float():
    sr = _model("espcn")
    x = torch.rand(1, 1, 16, 16)
    with torch.inference_mode():
        expected = sr.module(x)
        out = Upscaler(_model("espcn"), device="cpu", dtype="bf16").infer(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=0.05, rtol=0.05)
