"""Differential fuzzing of pixel_shuffle (plain and fused) and pixel_unshuffle against stock."""

import dataclasses

import torch
import torch.nn.functional as F
from fuzz.harness import (
    Layout,
    arrange,
    assert_close,
    assert_dtype_rule,
    check_fake,
    check_format,
    fuzz,
    layouts,
    outcome,
    raises_like_stock,
    random_tensor,
    use,
    with_nonfinite,
)
from hypothesis import strategies as st
from support import poisoned_outputs

import pyimg
from pyimg.ops.pixel_shuffle import pixel_shuffle_reference, pixel_unshuffle_reference

DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
ACTIVATIONS = ("none", "relu", "leaky_relu", "prelu", "tanh", "sigmoid")


@dataclasses.dataclass(frozen=True)
class ShuffleCase:
    lead: tuple[int, ...]  # leading dimensions: () unbatched, (N,), or two of them
    channels: int  # of the large tensor
    r: int
    h: int  # of the small tensor
    w: int
    layout: Layout
    dtype: torch.dtype
    activation: str
    bias: str  # none, small (one per input channel), large (one per output channel)
    prelu_per_channel: bool
    param_layout: Layout  # bias and PReLU weight: contiguous or a view
    negative_slope: float
    nonfinite: bool
    seed: int


@st.composite
def shuffle_cases(draw, small: bool):
    r = draw(st.integers(1, 3))
    size = st.integers(1, 5 if small else 24)
    lead = draw(st.sampled_from([(), (0,), (1,), (2,), (3,), (2, 2), (0, 3)]))
    dtype = draw(st.sampled_from(DTYPES))
    rank = len(lead) + 3
    return ShuffleCase(
        lead=lead, channels=draw(st.integers(1, 4 if small else 12)), r=r,
        h=draw(size), w=draw(size), layout=draw(layouts(rank)), dtype=dtype,
        activation=draw(st.sampled_from(ACTIVATIONS)),
        bias=draw(st.sampled_from(("none", "small", "large"))),
        prelu_per_channel=draw(st.booleans()), param_layout=draw(layouts(1)),
        negative_slope=draw(st.sampled_from((0.01, 0.2, -0.5))),
        nonfinite=dtype == torch.float64 and draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)))


def _shuffle_inputs(case: ShuffleCase, device):
    c_small = case.channels * case.r * case.r
    x = random_tensor((*case.lead, c_small, case.h, case.w), case.dtype, device, case.seed)
    if case.nonfinite:
        x = with_nonfinite(x, case.seed + 1)
    bias = None
    if case.bias != "none":
        n = c_small if case.bias == "small" else case.channels
        bias = arrange(random_tensor((n,), case.dtype, device, case.seed + 2), case.param_layout)
    weight = None
    if case.activation == "prelu":
        n = case.channels if case.prelu_per_channel else 1
        weight = arrange(random_tensor((n,), case.dtype, device, case.seed + 3, -0.5, 0.5),
                         case.param_layout)
    return arrange(x, case.layout), bias, weight


@fuzz("pixel_shuffle", shuffle_cases, quick=12)
def shuffle_property(backend, device, case: ShuffleCase):
    x, bias, weight = _shuffle_inputs(case, device)
    r, act, slope = case.r, case.activation, case.negative_slope
    grad = case.dtype == torch.float64
    inputs = [None if t is None else t.detach().requires_grad_(grad) for t in (x, bias, weight)]
    with use(backend), poisoned_outputs():
        y = pyimg.ops.pixel_shuffle(inputs[0], r, inputs[1], act, inputs[2], slope)
    full_bias = None
    if bias is not None:
        full_bias = bias.repeat_interleave(r * r) if bias.numel() == case.channels else bias
    expected_shape = (*case.lead, case.channels, case.h * r, case.w * r)
    assert y.shape == expected_shape and y.dtype == case.dtype
    if x.dim() == 4:
        check_format(y, x)
    reference = pixel_shuffle_reference(
        x.double(), r, None if full_bias is None else full_bias.double(), act,
        None if weight is None else weight.double(), slope)
    stock = pixel_shuffle_reference(x, r, full_bias, act, weight, slope)
    assert_dtype_rule(y, stock, reference, msg="output")
    if grad:
        g = random_tensor(y.shape, y.dtype, device, case.seed + 4)
        used = [t for t in inputs if t is not None]
        with use(backend), poisoned_outputs():
            ours = torch.autograd.grad(y, used, g, allow_unused=True)
        # Stock's pixel_shuffle backward fails on an empty batch: zeros are the answer.
        if y.numel() == 0:
            expected = [torch.zeros_like(t) for t in used]
        else:
            ref_inputs = [t.detach().requires_grad_() for t in used]
            it = iter(ref_inputs)
            xr, br, wr = (next(it) if t is not None else None for t in inputs)
            br_full = None if br is None else (
                br.repeat_interleave(r * r) if br.numel() == case.channels else br)
            y_ref = pixel_shuffle_reference(xr, r, br_full, act, wr, slope)
            expected = torch.autograd.grad(y_ref, ref_inputs, g)
        for ours_g, ref_g, name in zip(ours, expected, ("x", "bias", "weight"), strict=False):
            ours_g = torch.zeros_like(ref_g) if ours_g is None else ours_g
            assert_close(ours_g, ref_g, torch.float64, msg=f"grad {name}")
    if backend != "torch" and x.dim() == 4:
        check_fake(lambda *t: pyimg.ops.pixel_shuffle(t[0], r, t[1], act, t[2], slope),
                   [x, bias, weight], y)


test_shuffle, test_shuffle_long = shuffle_property


@fuzz("pixel_unshuffle", shuffle_cases, quick=8)
def unshuffle_property(backend, device, case: ShuffleCase):
    r = case.r
    large = random_tensor((*case.lead, case.channels, case.h * r, case.w * r), case.dtype,
                          device, case.seed)
    if case.nonfinite:
        large = with_nonfinite(large, case.seed + 1)
    x = arrange(large, case.layout)
    grad = case.dtype == torch.float64
    xi = x.detach().requires_grad_(grad)
    with use(backend), poisoned_outputs():
        y = pyimg.ops.pixel_unshuffle(xi, r)
    assert y.shape == (*case.lead, case.channels * r * r, case.h, case.w)
    x4 = x.reshape(-1, *x.shape[-3:])
    expected = pixel_unshuffle_reference(x4, r).reshape(y.shape)
    assert torch.equal(y.isnan(), expected.isnan())
    assert_close(y, expected, case.dtype, msg="output")  # a permutation: exact
    if x.dim() == 4:
        check_format(y, x)
    if grad:
        g = random_tensor(y.shape, y.dtype, device, case.seed + 4)
        with use(backend), poisoned_outputs():
            (ours,) = torch.autograd.grad(y, xi, g)
        expected_grad = F.pixel_shuffle(g.reshape(-1, *g.shape[-3:]), r).reshape(x.shape)
        assert_close(ours, expected_grad, torch.float64, msg="grad x")
    if backend != "torch" and x.dim() == 4:
        check_fake(lambda t: pyimg.ops.pixel_unshuffle(t, r), [x], y)


test_unshuffle, test_unshuffle_long = unshuffle_property


@dataclasses.dataclass(frozen=True)
class BadShuffleCase:
    shape: tuple[int, ...]
    r: int
    bias_numel: int | None
    activation: str
    weight_numel: int | None
    unshuffle: bool


@st.composite
def bad_shuffle_cases(draw, small: bool):
    rank = draw(st.integers(1, 5))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=rank, max_size=rank)))
    return BadShuffleCase(
        shape=shape, r=draw(st.integers(-1, 3)),
        bias_numel=draw(st.one_of(st.none(), st.integers(0, 20))),
        activation=draw(st.sampled_from((*ACTIVATIONS, "gelu"))),
        weight_numel=draw(st.one_of(st.none(), st.integers(0, 5))),
        unshuffle=draw(st.booleans()))


def _epilogue_error(case: BadShuffleCase):
    """The error the fused epilogue's contract gives these arguments (None: valid): a bias of
    C*r*r (input) or C (output) values, a PReLU weight of 1 or C, given exactly with prelu."""
    if case.activation not in ACTIVATIONS or (case.weight_numel is not None) != (
            case.activation == "prelu"):
        return ValueError
    small = case.shape[-3]
    large = small // (case.r * case.r)
    if case.bias_numel is not None and case.bias_numel not in (small, large):
        return RuntimeError
    if case.weight_numel is not None and case.weight_numel not in (1, large):
        return RuntimeError
    return None


@fuzz("bad_pixel_shuffle", bad_shuffle_cases, quick=25)
def bad_shuffle_property(backend, device, case: BadShuffleCase):
    # Where stock's pixel_shuffle / pixel_unshuffle rejects the input, ours raises the same
    # type; where it takes it, ours does too unless the epilogue's contract is broken.
    x = torch.randn(case.shape, device=device)
    if case.unshuffle:
        with use(backend):
            raises_like_stock(lambda: F.pixel_unshuffle(x, case.r),
                              lambda: pyimg.ops.pixel_unshuffle(x, case.r))
        return
    bias = None if case.bias_numel is None else torch.randn(case.bias_numel, device=device)
    weight = None if case.weight_numel is None else torch.rand(case.weight_numel, device=device)

    def ours():
        return pyimg.ops.pixel_shuffle(x, case.r, bias, case.activation, weight)

    plain_valid = len(case.shape) >= 3 and case.r > 0
    with use(backend):
        if raises_like_stock(lambda: F.pixel_shuffle(x, case.r), ours,
                             same_type=not plain_valid or _epilogue_error(case) is None):
            return
        error = _epilogue_error(case)
        _, our_error = outcome(ours)
        if error is None:
            assert our_error is None, f"valid arguments raised {our_error!r}"
        else:
            assert isinstance(our_error, error), f"expected {error.__name__}, got {our_error!r}"


test_bad_shuffle, test_bad_shuffle_long = bad_shuffle_property
