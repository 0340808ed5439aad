"""Differential fuzzing of batch_norm_prelu / batch_norm_add (training and eval) against stock
F.batch_norm followed by F.prelu or F.relu, or the residual sum."""

import dataclasses

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
from pyimg.ops.batch_norm import batch_norm_prelu_reference

DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
# Statistics are sums over up to N*H*W values, in another order than stock's.
BN_TOLERANCE = {**TOLERANCE, torch.float64: {"atol": 1e-10, "rtol": 1e-9},
                torch.float32: {"atol": 1e-5, "rtol": 1e-5}}
# What may be wrong with a call (None: nothing): stock must reject it too, but for a residual
# of another shape, which stock's sum may broadcast and our contract refuses.
BAD = (None, "rank", "weight_size", "running_size", "prelu_size", "residual_shape")


@dataclasses.dataclass(frozen=True)
class BatchNormCase:
    n: int
    channels: int
    h: int
    w: int
    layout: Layout
    dtype: torch.dtype
    training: bool
    running: bool  # running statistics given (eval needs them)
    momentum: float
    eps: float
    affine: bool
    activation: str  # none, prelu1 (one weight), prelu (per channel), relu; add: residual
    param_layout: Layout  # weight, bias, running statistics, PReLU weight
    residual_layout: Layout
    nonfinite: bool
    bad: str | None
    seed: int


@st.composite
def batch_norm_cases(draw, small: bool):
    dtype = draw(st.sampled_from(DTYPES))
    size = st.integers(1, 5 if small else 40)
    training = draw(st.booleans())
    return BatchNormCase(
        n=draw(st.integers(0, 3)), channels=draw(st.integers(1, 4 if small else 40)),
        h=draw(size), w=draw(size), layout=draw(layouts(4)), dtype=dtype, training=training,
        running=not training or draw(st.booleans()),
        momentum=draw(st.sampled_from((0.1, 0.5, 1.0, 0.0))),
        eps=draw(st.sampled_from((1e-5, 1e-3, 0.5))), affine=draw(st.booleans()),
        activation=draw(st.sampled_from(("none", "prelu1", "prelu", "relu", "add"))),
        param_layout=draw(layouts(1)), residual_layout=draw(layouts(4)),
        nonfinite=dtype == torch.float64 and draw(st.booleans()),
        bad=draw(st.sampled_from(BAD)) if draw(st.integers(0, 7)) == 0 else None,
        seed=draw(st.integers(0, 2**31 - 1)))


def _inputs(case: BatchNormCase, device):
    c, dtype, seed = case.channels, case.dtype, case.seed
    shape = (case.n, c, case.h, case.w) if case.bad != "rank" else (case.n, c, case.h)
    x = random_tensor(shape, torch.float64, device, seed, -1, 3)
    if case.nonfinite:
        x = with_nonfinite(x, seed + 1, 0.02)
    x = arrange(x.to(dtype), case.layout)

    def param(k, n=c, low=-2.0, high=2.0):
        return arrange(random_tensor((n,), dtype, device, seed + k, low, high), case.param_layout)

    n_running = c + (case.bad == "running_size")
    running = (param(2, n_running), param(3, n_running, 0.5, 2)) if case.running else (None, None)
    weight = param(4, c + (case.bad == "weight_size"), 0.5, 2) if case.affine else None
    bias = param(5) if case.affine else None
    prelu = None
    if case.activation.startswith("prelu"):
        prelu = param(6, (c if case.activation == "prelu" else 1) + 2 * (case.bad == "prelu_size"),
                      -0.5, 0.5)
    residual = None
    if case.activation == "add":
        res_shape = x.shape if case.bad != "residual_shape" else (*x.shape[:-1], x.shape[-1] + 1)
        residual = arrange(random_tensor(res_shape, dtype, device, seed + 7), case.residual_layout)
    return x, running, weight, bias, prelu, residual


def _broken(case: BatchNormCase) -> str | None:
    """What is wrong with the call: case.bad where the case has that argument."""
    present = {"weight_size": case.affine, "running_size": case.running,
               "prelu_size": case.activation.startswith("prelu"),
               "residual_shape": case.activation == "add"}
    return case.bad if present.get(case.bad, True) else None


def _ours(case, x, running, weight, bias, prelu, residual):
    if residual is not None:
        return pyimg.ops.batch_norm_add(x, residual, *running, weight, bias, case.training,
                                        case.momentum, case.eps)
    return pyimg.ops.batch_norm_prelu(x, *running, weight, bias, prelu, case.training,
                                      case.momentum, case.eps, relu=case.activation == "relu")


def _stock(case, x, running, weight, bias, prelu, residual):
    """nn.BatchNorm2d's input check, then stock's F.batch_norm (+ F.prelu / F.relu /
    + residual), with x and the parameters contiguous: stock's CPU backward misreads a
    strided weight when H * W == 1, and a channels_last x whose size-1 W has another
    stride."""
    if x.dim() != 4:
        raise ValueError(f"expected 4D input (got {x.dim()}D input)")
    contiguous = [None if t is None else t.contiguous() for t in (weight, bias, prelu)]
    return batch_norm_prelu_reference(x.contiguous(), *running, *contiguous[:2], contiguous[2],
                                      case.training, case.momentum, case.eps, residual,
                                      case.activation == "relu")


@fuzz("batch_norm", batch_norm_cases, quick=15)
def batch_norm_property(backend, device, case: BatchNormCase):
    x, running, weight, bias, prelu, residual = _inputs(case, device)
    grad = case.dtype == torch.float64
    tensors = [t.detach().requires_grad_(grad) if t is not None else None
               for t in (x, weight, bias, prelu, residual)]
    arranged = [None if t is None else arrange(t, case.param_layout) for t in running]

    def copies(dtype=None):
        return [None if t is None else t.to(dtype or t.dtype, copy=True) for t in running]

    def ours():
        with poisoned_outputs():
            return _ours(case, tensors[0], arranged, *tensors[1:4], tensors[4])

    with use(backend):
        if _broken(case) == "residual_shape":
            _, error = outcome(ours)
            assert isinstance(error, RuntimeError), error
            return
        if raises_like_stock(lambda: _stock(case, x, copies(), weight, bias, prelu, residual),
                             ours):
            return
        if _broken(case) is not None and x.numel() == 0:
            # Stock skips its size checks on an empty batch; ours does not.
            _, error = outcome(ours)
            assert isinstance(error, RuntimeError), error
            return
        assert _broken(case) is None, f"{case.bad}: stock took it"
        y = ours()
    check_format(y, x)
    stock_running = copies()
    stock = _stock(case, x, stock_running, weight, bias, prelu, residual)
    reference = stock
    if case.dtype != torch.float64:
        upcast = [None if t is None else t.float() for t in (x, weight, bias, prelu, residual)]
        reference = _stock(case, upcast[0], copies(torch.float32), *upcast[1:4], upcast[4])
    assert_dtype_rule(y, stock, reference, BN_TOLERANCE, msg="output")
    for ours_stat, stock_stat, name in zip(arranged, stock_running, ("mean", "var"),
                                           strict=True):
        if ours_stat is not None:
            if case.dtype in (torch.float64, torch.float32):
                assert_close(ours_stat, stock_stat, case.dtype, BN_TOLERANCE, f"running {name}")
            else:
                torch.testing.assert_close(ours_stat, stock_stat, atol=2e-2, rtol=2e-2)
    if grad:
        g = random_tensor(y.shape, y.dtype, device, case.seed + 8)
        used = [t for t in tensors if t is not None]
        with use(backend), poisoned_outputs():
            ours_grads = torch.autograd.grad(y, used, g, allow_unused=True)
        ref_tensors = [t.detach().requires_grad_() for t in used]
        it = iter(ref_tensors)
        xr, wr, br, pr, rr = (next(it) if t is not None else None for t in tensors)
        y_ref = _stock(case, xr, copies(), wr, br, pr, rr)
        ref_grads = torch.autograd.grad(y_ref, ref_tensors, g, allow_unused=True)
        for ours_g, ref_g, t in zip(ours_grads, ref_grads, used, strict=True):
            ours_g = torch.zeros_like(t) if ours_g is None else ours_g
            ref_g = torch.zeros_like(t) if ref_g is None else ref_g
            assert_close(ours_g, ref_g, torch.float64, BN_TOLERANCE, f"grad {tuple(t.shape)}")
    if backend != "torch":
        check_fake(lambda *t: _ours(case, t[0], t[5:], *t[1:5]),
                   [x, weight, bias, prelu, residual, *copies()], y)


test_batch_norm, test_batch_norm_long = batch_norm_property
