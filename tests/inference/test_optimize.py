"""optimize_for_inference on zoo models, stock-module user models and hand-written forward
patterns: outputs against the unoptimized model, layouts, dtypes, batch 0 and 1, odd sizes,
what was fused, and clear errors."""

import copy

import pytest
import torch
import torch.nn.functional as F
from inference.reference_nets import MSRResNetStyle, SRVGGStyle, randomize_batch_norm, to_stock
from torch import nn

from pyimg import models
from pyimg.inference import FusedConv2d, optimize_for_inference
from pyimg.inference.capability import onednn_missing

pytestmark = pytest.mark.skipif(onednn_missing() is not None, reason=str(onednn_missing()))

# fp32: 1e-4 of the output's largest magnitude (oneDNN sums in another order; BatchNorm is
# folded in float64 and rounded once). bf16: see test_bf16_error_is_bf16_sized.
FP32_RELATIVE = 1e-4

ZOO = {
    "espcn_x2": (lambda: models.ESPCN(upscale_factor=2), (1, 17, 23)),
    "espcn_x3": (lambda: models.ESPCN(upscale_factor=3, in_channels=3), (3, 9, 14)),
    "srresnet": (lambda: models.SRResNet(num_blocks=2, channels=16), (3, 11, 13)),
    "segnet": (lambda: models.SegNet(width=0.125), (3, 33, 45)),
    "unet": (lambda: models.UNet(base_channels=8, depth=2), (1, 37, 41)),
}
USER = {
    "msrresnet": (lambda: MSRResNetStyle(channels=16, blocks=2), (3, 9, 14)),
    "srvgg": (lambda: SRVGGStyle(channels=16, convs=2), (3, 9, 14)),
}


def _max_relative_error(actual, expected):
    return ((actual.float() - expected).abs().max() / expected.abs().max().clamp_min(1e-12))


def _build(builder):
    torch.manual_seed(0)
    return randomize_batch_norm(builder().eval())


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("batch", [1, 0])
@pytest.mark.parametrize("name", list(ZOO) + list(USER))
def test_fp32_matches_model(name, batch, layout):
    builder, shape = {**ZOO, **USER}[name]
    model = _build(builder)
    x = torch.rand(batch, *shape)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    fast = optimize_for_inference(model, dtype=torch.float32)
    with torch.no_grad():
        expected = model(x)
    actual = fast(x)
    assert actual.shape == expected.shape and actual.dtype == x.dtype
    if batch:  # channels_last out for an input that is channels_last only
        cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        assert actual.is_contiguous(memory_format=torch.channels_last if cl
                                    else torch.contiguous_format)
        assert _max_relative_error(actual, expected) < FP32_RELATIVE


@pytest.mark.parametrize("name", ["espcn_x2", "srresnet"])
def test_zoo_matches_stock_modules(name):
    # The optimized zoo model also agrees with its stock-module twin (the benchmark's eager).
    builder, shape = ZOO[name]
    model = _build(builder)
    x = torch.rand(1, *shape)
    with torch.no_grad():
        expected = to_stock(model).eval()(x)
    assert _max_relative_error(optimize_for_inference(model, dtype=torch.float32)(x),
                               expected) < FP32_RELATIVE


@pytest.mark.parametrize("name", ["espcn_x2", "srresnet", "msrresnet", "srvgg"])
def test_bf16_error_is_bf16_sized(name):
    # bf16 keeps 8 bits of mantissa: the output's error stays within a few bf16 roundings of
    # the output's scale, as a stock bf16 run's does.
    builder, shape = {**ZOO, **USER}[name]
    model = _build(builder)
    x = torch.rand(1, *shape)
    with torch.no_grad():
        expected = model(x)
        stock_bf16 = to_stock(model).to(torch.bfloat16)(x.bfloat16()).float()
    actual = optimize_for_inference(model, dtype=torch.bfloat16)(x)
    assert actual.dtype == torch.float32
    ours = _max_relative_error(actual, expected)
    stock = _max_relative_error(stock_bf16, expected)
    assert ours < max(2 * stock, 2**-7), (ours, stock)


def _fused(fast) -> list[FusedConv2d]:
    return [m for m in fast.modules() if isinstance(m, FusedConv2d)]


def test_espcn_fuses_both_tanhs():
    fast = optimize_for_inference(models.ESPCN(upscale_factor=2), dtype=torch.float32)
    assert [m.act.attr for m in _fused(fast)] == ["tanh", "tanh", "none"]


def test_srresnet_folds_batch_norm_and_sums():
    fast = optimize_for_inference(_build(ZOO["srresnet"][0]), dtype=torch.float32)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    # two blocks' second convs, and the long skip after the blocks
    assert sum(m.add for m in _fused(fast)) == 3


def test_graph_fusion_of_user_models():
    fast = optimize_for_inference(_build(USER["msrresnet"][0]), dtype=torch.float32)
    fused = _fused(fast)
    # head, 2 x (relu conv, sum conv), 2 upsampling convs, hr conv, last conv + upsampled
    assert [m.act.attr for m in fused].count("leaky_relu") == 4
    assert sum(m.add for m in fused) == 3
    fast = optimize_for_inference(_build(USER["srvgg"][0]), dtype=torch.float32)
    assert sum(m.prelu_weight is not None for m in _fused(fast)) == 3


class _Patterns(nn.Module):
    """Forward-written patterns: a conv called twice, a conv output read twice, an in-place
    activation, a sum with broadcasting, an activation after a sum."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 4, 1)

    def forward(self, x, bias):
        y = F.relu(self.a(x))
        y = F.leaky_relu(self.a(y), 0.3)           # the same conv again
        z = self.b(y)
        w = torch.tanh(z) + z                       # z read twice: not fused
        w = torch.relu(self.c(w) + y)               # sum, then relu
        return torch.sigmoid(self.c(w) + bias)     # sum with broadcast, sigmoid after it


def test_hand_written_patterns():
    torch.manual_seed(0)
    model = _Patterns().eval()
    x, bias = torch.randn(2, 4, 9, 7), torch.randn(1, 4, 1, 7)
    fast = optimize_for_inference(model, dtype=torch.float32)
    with torch.no_grad():
        expected = model(x, bias)
    torch.testing.assert_close(fast.body(x.contiguous(memory_format=torch.channels_last),
                                         bias.contiguous(memory_format=torch.channels_last)),
                               expected, rtol=1e-4, atol=1e-5)
    acts = sorted(f"{m.act.attr}{'+add' * m.add}" for m in _fused(fast))
    assert acts == ["leaky_relu", "none", "none+add", "relu", "relu+add"]


def test_unbatched_input_and_dtype_round_trip():
    fast = optimize_for_inference(_build(ZOO["espcn_x2"][0]), dtype=torch.float32)
    x = torch.rand(1, 5, 7, dtype=torch.float64)
    y = fast(x)
    assert y.shape == (1, 10, 14) and y.dtype == torch.float64


def test_source_model_is_untouched():
    model = _build(ZOO["srresnet"][0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimize_for_inference(model, dtype=torch.float32)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training is False and any(isinstance(m, nn.BatchNorm2d)
                                           for m in model.modules())


def test_bad_inputs_give_clear_errors():
    fast = optimize_for_inference(models.ESPCN(upscale_factor=2), dtype=torch.float32)
    with pytest.raises(ValueError, match="floating-point"):
        fast(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        fast(torch.zeros(4, 4))
    with pytest.raises(TypeError, match="tensor"):
        fast([1, 2])
    with pytest.raises(ValueError, match="dtype must be"):
        optimize_for_inference(models.ESPCN(), dtype=torch.float16)
    with pytest.raises(ValueError, match="only device='cpu'"):
        optimize_for_inference(models.ESPCN(), device="cuda")
    with pytest.raises(TypeError, match=r"nn\.Module"):
        optimize_for_inference(lambda x: x)


def _up_conv():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(8, 4, 2, 2))


@pytest.mark.parametrize("name", ["srresnet", "srvgg", "up_conv"])
def test_compiled_optimized_model_matches(name):
    # residual sums, per-channel PReLU, transposed convolutions: one graph, same numbers
    builder, shape = {**ZOO, **USER, "up_conv": (_up_conv, (3, 9, 14))}[name]
    fast = optimize_for_inference(_build(builder), dtype=torch.float32)
    x = torch.rand(1, *shape)
    compiled = torch.compile(fast, fullgraph=True)
    torch.testing.assert_close(compiled(x), fast(x), rtol=1e-5, atol=1e-6)


def test_deepcopy_packs_again():
    fast = optimize_for_inference(_build(ZOO["unet"][0]), dtype=torch.float32)
    twin = copy.deepcopy(fast)
    x = torch.rand(1, *ZOO["unet"][1])
    torch.testing.assert_close(twin(x), fast(x), rtol=0, atol=0)
    assert all(a.packed is not b.packed for a, b in zip(_fused(fast), _fused(twin), strict=True))


class _InPlaceSum(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = x * 2
        alias = y
        y += self.conv(x)  # updates alias too
        return y + alias


def test_in_place_sum_keeps_its_aliases():
    model = _InPlaceSum().eval()
    x = torch.randn(1, 4, 6, 7)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(optimize_for_inference(model, dtype=torch.float32)(x), expected,
                               rtol=1e-4, atol=1e-5)


class _SumForms(nn.Module):
    """Sums in the forms pyimg.convert reads too: an in-place add into the conv's own output,
    and torch.add with alpha 1."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.a(x).add_(x)
        return torch.add(self.b(y), y, alpha=1)


def test_sum_forms_fuse():
    torch.manual_seed(0)
    model = _SumForms().eval()
    x = torch.randn(2, 4, 9, 7)
    fast = optimize_for_inference(model, dtype=torch.float32)
    assert [m.add for m in _fused(fast)] == [True, True]
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)
