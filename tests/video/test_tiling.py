"""Tiled inference equals untiled when the overlap covers the receptive field; out-of-memory
errors are retried with smaller tiles."""

import pytest
import torch
from torch import nn

from pyimg.models import ESPCN, SRResNet
from pyimg.video.engine import Upscaler
from pyimg.video.model_spec import SRModel
from pyimg.video.tiling import receptive_radius, tiled_forward


def _models():
    torch.manual_seed(0)
    return [("espcn-x2", ESPCN(2, channels=16).eval(), 1, 2),
            ("espcn-x3", ESPCN(3, channels=16).eval(), 1, 3),
            ("srresnet-x2", SRResNet(2, channels=8, num_blocks=2).eval(), 3, 2)]


MODELS = _models()


def test_receptive_radius_of_espcn():
    """5x5, 3x3, 3x3 convolutions: 2 + 1 + 1 input pixels."""
    assert receptive_radius(MODELS[0][1], 1, 2) == 4
    assert receptive_radius(MODELS[1][1], 1, 3) == 4


@pytest.mark.parametrize(("name", "model", "channels", "scale", "extra"),
                         [(*m, extra) for m, extra in zip(MODELS, (0, 3, 0), strict=True)],
                         ids=[m[0] for m in MODELS])
def test_tiled_equals_untiled(name, model, channels, scale, extra):
    """Overlap = the receptive radius (``extra`` 0: no feather at all) or a few pixels more."""
    radius = receptive_radius(model, channels, scale)
    overlap = radius + extra
    x = torch.rand(2, channels, 33, 41)  # odd sizes, a batch of 2
    with torch.inference_mode():
        whole = model(x)
        tiled = tiled_forward(model, x, scale, 2 * overlap + 11, overlap, radius)
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, atol=2e-6, rtol=1e-5)


def test_overlap_below_radius_is_not_exact():
    """The test above can fail: too little overlap shows at the seams."""
    model = MODELS[0][1]
    x = torch.rand(1, 1, 40, 40)
    with torch.inference_mode():
        whole = model(x)
        tiled = tiled_forward(model, x, 2, 16, 2, receptive_radius(model, 1, 2))
    assert (tiled - whole).abs().max() > 1e-3


def test_tile_must_exceed_twice_the_overlap():
    with pytest.raises(ValueError, match="twice the overlap"):
        tiled_forward(MODELS[0][1], torch.rand(1, 1, 8, 8), 2, 8, 4, 4)


class RunsOutOfMemory(nn.Module):
    """ESPCN that raises CUDA's out-of-memory error on inputs above ``limit`` pixels."""

    def __init__(self, inner: nn.Module, limit: int):
        super().__init__()
        self.inner, self.limit, self.calls = inner, limit, []

    def forward(self, x):
        self.calls.append(tuple(x.shape[-2:]))
        if x.shape[-2] * x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_out_of_memory_is_retried_with_smaller_tiles():
    inner = MODELS[0][1]
    flaky = RunsOutOfMemory(inner, limit=40 * 40)
    upscaler = Upscaler(SRModel(flaky, 2, "y", "flaky"), device="cpu", overlap=4,
                        optimize=False)  # an optimized copy would not record the calls
    upscaler._radius = 4  # the inner model's; measuring it would trip the limit too
    x = torch.rand(1, 1, 70, 90)
    with pytest.warns(UserWarning, match="out of memory"), torch.inference_mode():
        out = upscaler.infer(x)
        whole = inner(x)
    torch.testing.assert_close(out, whole, atol=2e-6, rtol=1e-5)
    assert flaky.calls[0] == (70, 90)  # whole first, then halved tiles that fit
    assert upscaler.tile == 45
    assert all(h * w <= 40 * 40 for h, w in flaky.calls[2:])


def test_out_of_memory_at_the_smallest_tile_is_a_clear_error():
    upscaler = Upscaler(SRModel(RunsOutOfMemory(MODELS[0][1], limit=1), 2, "y", "tiny"),
                        device="cpu", overlap=4)
    upscaler._radius = 4
    with pytest.raises(OSError, match=r"out of memory .* even with"), pytest.warns(UserWarning):
        upscaler.infer(torch.rand(1, 1, 64, 64))
