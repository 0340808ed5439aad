"""Differential fuzzing of conv2d / dilated_conv2d / depthwise convolution with every epilogue
against stock F.conv2d and the stock ops of the epilogue (conv2d_reference)."""

import dataclasses
import math

import torch
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
from support import TOLERANCE, poisoned_outputs

import pyimg
from pyimg.ops.conv import conv2d_reference

DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
# A convolution sums up to a thousand products in an order of its own (outputs are O(1)).
CONV_TOLERANCE = {**TOLERANCE, torch.float64: {"atol": 1e-11, "rtol": 1e-9},
                  torch.float32: {"atol": 1e-4, "rtol": 1e-4}}
# What may be wrong with a call (None: nothing): stock must reject it too, but for a scale or
# residual of another size, which stock's product or sum may broadcast and our contract refuses.
BAD = (None, "channels", "bias_size", "scale_size", "prelu_size", "residual_shape", "dtype")
CONTRACT_ONLY = ("scale_size", "residual_shape")


@dataclasses.dataclass(frozen=True)
class ConvCase:
    lead: tuple[int, ...]  # () unbatched or (N,)
    c_in: int
    groups: int
    out_per_group: int
    r: int  # upscale_factor
    h: int
    w: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: object  # int, pair, "same" or "valid"
    dilation: tuple[int, int]
    bias: bool
    scale: bool
    shift: bool
    activation: str
    prelu_per_channel: bool
    residual: str  # none, after, before
    layout: Layout
    weight_layout: Layout
    param_layout: Layout
    residual_layout: Layout
    dtype: torch.dtype
    nonfinite: bool
    bad: str | None
    dilated_api: bool  # called as dilated_conv2d (dilation and padding first)
    seed: int


@st.composite
def conv_cases(draw, small: bool):
    c_in = draw(st.integers(1, 6 if small else 40))
    divisors = [g for g in range(1, c_in + 1) if c_in % g == 0]
    groups = draw(st.sampled_from([1, c_in, *divisors]))
    r = draw(st.sampled_from((1, 1, 2)))
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = draw(st.one_of(
        st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.just("same") if stride == (1, 1) else st.just(1), st.just("valid")))
    size = st.integers(1, 8 if small else 40)
    dtype = draw(st.sampled_from(DTYPES))
    return ConvCase(
        lead=draw(st.sampled_from([(), (0,), (1,), (2,), (3,)])), c_in=c_in, groups=groups,
        out_per_group=draw(st.integers(1, 2 if small else 4)) * r * r, r=r, h=draw(size),
        w=draw(size), kernel=draw(st.tuples(st.integers(1, 5), st.integers(1, 5))),
        stride=stride, padding=padding,
        dilation=draw(st.tuples(st.integers(1, 3), st.integers(1, 3))),
        bias=draw(st.booleans()), scale=draw(st.booleans()), shift=draw(st.booleans()),
        activation=draw(st.sampled_from(("none", "relu", "leaky_relu", "prelu"))),
        prelu_per_channel=draw(st.booleans()),
        residual=draw(st.sampled_from(("none", "after", "before"))),
        layout=draw(layouts(4)), weight_layout=draw(layouts(4)), param_layout=draw(layouts(1)),
        residual_layout=draw(layouts(4)), dtype=dtype,
        nonfinite=dtype == torch.float64 and draw(st.integers(0, 3)) == 0,
        bad=draw(st.sampled_from(BAD)) if draw(st.integers(0, 7)) == 0 else None,
        dilated_api=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))


def _broken(case: ConvCase) -> str | None:
    """What is wrong with the call: case.bad where the case has that argument."""
    present = {"bias_size": case.bias, "scale_size": case.scale,
               "prelu_size": case.activation == "prelu", "residual_shape": case.residual != "none"}
    return case.bad if present.get(case.bad, True) else None


def _call(case: ConvCase, x, weight, bias, kw):
    if case.dilated_api:
        return pyimg.ops.dilated_conv2d(x, weight, bias, case.dilation, case.padding,
                                        case.stride, case.groups, **kw)
    return pyimg.ops.conv2d(x, weight, bias, *_geometry(case), **kw)


def _output_shape(case: ConvCase, c_out):
    kh, kw = case.kernel
    spans = [d * (k - 1) for d, k in zip(case.dilation, (kh, kw), strict=True)]
    if case.padding == "same":
        pads = spans
    elif case.padding == "valid":
        pads = [0, 0]
    else:
        p = case.padding if isinstance(case.padding, tuple) else (case.padding,) * 2
        pads = [2 * p[0], 2 * p[1]]
    oh = (case.h + pads[0] - spans[0] - 1) // case.stride[0] + 1
    ow = (case.w + pads[1] - spans[1] - 1) // case.stride[1] + 1
    r = case.r
    return (*case.lead, c_out // (r * r), max(oh, 1) * r, max(ow, 1) * r)


def _inputs(case: ConvCase, device):
    dtype, seed = case.dtype, case.seed
    c_out = case.groups * case.out_per_group
    c_in = case.c_in + (case.bad == "channels")
    x = random_tensor((*case.lead, c_in, case.h, case.w), torch.float64, device, seed, -1, 1)
    if case.nonfinite:
        x = with_nonfinite(x, seed + 1, 0.03)
    x = arrange(x.to(dtype), case.layout if x.dim() == 4 else Layout((0, 1, 2), (1, 1, 1)))
    fan_in = case.c_in // case.groups * case.kernel[0] * case.kernel[1]
    bound = 1 / math.sqrt(fan_in)  # outputs of O(1), as in a network
    wdtype = dtype
    if case.bad == "dtype":
        wdtype = torch.float64 if dtype == torch.float32 else torch.float32
    weight = arrange(random_tensor((c_out, case.c_in // case.groups, *case.kernel), wdtype,
                                   device, seed + 2, -bound, bound), case.weight_layout)

    def param(k, n, low=-1.0, high=1.0, bad=False):
        return arrange(random_tensor((n + bad,), dtype, device, seed + k, low, high),
                       case.param_layout)

    bias = param(3, c_out, bad=case.bad == "bias_size") if case.bias else None
    kw = dict(activation=case.activation, upscale_factor=case.r, negative_slope=0.2,
              add_before_activation=case.residual == "before")
    if case.scale:
        kw["scale"] = param(4, c_out, 0.5, 2, case.bad == "scale_size")
    if case.shift:
        kw["shift"] = param(5, c_out)
    if case.activation == "prelu":
        n = c_out // (case.r * case.r) if case.prelu_per_channel else 1
        kw["prelu_weight"] = param(6, n + 2 * (case.bad == "prelu_size"), -0.5, 0.5)
    if case.residual != "none":
        shape = list(_output_shape(case, c_out))
        shape[-1] += case.bad == "residual_shape"
        residual = random_tensor(shape, dtype, device, seed + 7, -1, 1)
        kw["residual"] = arrange(residual, case.residual_layout) if residual.dim() == 4 \
            else residual
    return x, weight, bias, kw


def _geometry(case: ConvCase):
    return case.stride, case.padding, case.dilation, case.groups


def _reference(x, weight, bias, kw, case):
    """Stock ops, with contiguous copies of every tensor; an unbatched x as a batch of one,
    so that the PReLU weight is per channel (stock's PReLU takes dim 1 of any input)."""
    def c(t):
        return t.contiguous() if isinstance(t, torch.Tensor) else t

    if x.dim() == 3:
        kw = {**kw, "residual": None if kw.get("residual") is None else kw["residual"][None]}
        return _reference(x[None], weight, bias, kw, case)[0]
    return conv2d_reference(c(x), c(weight), c(bias), *_geometry(case),
                            **{k: c(v) for k, v in kw.items()})


@fuzz("conv2d", conv_cases, quick=15)
def conv_property(backend, device, case: ConvCase):
    x, weight, bias, kw = _inputs(case, device)
    grad = case.dtype == torch.float64
    tensor_names = [k for k, v in kw.items() if isinstance(v, torch.Tensor)]
    leaves = [t.detach().requires_grad_(grad) if t is not None else None
              for t in (x, weight, bias, *(kw[k] for k in tensor_names))]
    ours_kw = {**kw, **dict(zip(tensor_names, leaves[3:], strict=True))}

    def ours():
        with poisoned_outputs():
            return _call(case, *leaves[:3], ours_kw)

    with use(backend):
        if _broken(case) in CONTRACT_ONLY:
            _, error = outcome(ours)
            assert isinstance(error, RuntimeError), error
            return
        if raises_like_stock(lambda: _reference(x, weight, bias, kw, case), ours):
            return
        y, error = outcome(ours)
        if _broken(case) == "dtype" and x.numel() == 0:
            # Stock skips its dtype check on an empty batch; ours does not.
            assert isinstance(error, RuntimeError), error
            return
        assert _broken(case) is None, f"{case.bad}: stock took it"
        assert error is None, f"stock took it, ours raised {error!r}"
    if x.dim() == 4:
        check_format(y, x)
    stock = _reference(x, weight, bias, kw, case)
    reference = stock
    if case.dtype != torch.float64:
        def up(t):
            return t.float() if isinstance(t, torch.Tensor) else t

        reference = _reference(up(x), up(weight), up(bias), {k: up(v) for k, v in kw.items()},
                               case)
    assert_dtype_rule(y, stock, reference, CONV_TOLERANCE, msg="output")
    if grad:
        used = [t for t in leaves if t is not None]
        g = random_tensor(y.shape, y.dtype, device, case.seed + 8)
        with use(backend), poisoned_outputs():
            ours_grads = torch.autograd.grad(y, used, g, allow_unused=True)
        if y.numel() == 0:  # stock's pixel_shuffle backward fails there: zeros are the answer
            ref_grads = [torch.zeros_like(t) for t in used]
        else:
            refs = [t.detach().requires_grad_() for t in used]
            it = iter(refs)
            xr, wr, br, *rest = (next(it) if t is not None else None for t in leaves)
            y_ref = _reference(xr, wr, br, {**kw, **dict(zip(tensor_names, rest, strict=True))},
                               case)
            ref_grads = torch.autograd.grad(y_ref, refs, g, allow_unused=True)
        for ours_g, ref_g, t in zip(ours_grads, ref_grads, used, strict=True):
            ours_g = torch.zeros_like(t) if ours_g is None else ours_g
            ref_g = torch.zeros_like(t) if ref_g is None else ref_g
            assert_close(ours_g, ref_g, torch.float64, CONV_TOLERANCE, f"grad {tuple(t.shape)}")
    if backend != "torch":
        check_fake(lambda *t: _call(case, *t[:3], {
            **kw, **dict(zip(tensor_names, t[3:], strict=True))}),
            [x, weight, bias, *(kw[k] for k in tensor_names)], y)


test_conv, test_conv_long = conv_property
