"""Differential fuzzing of max_pool2d_with_indices (int64 and compact indices) and max_unpool2d
against stock, and against the documented duplicate rule (max_unpool2d_reference) where
stock's own answer is nondeterministic."""

import dataclasses

import torch
import torch.nn.functional as F
from fuzz.harness import (
    Layout,
    arrange,
    assert_close,
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
from pyimg.ops.max_pool import (
    compact_from_flat,
    flat_from_compact,
    max_unpool2d_reference,
    pool_geometry,
    unpool_geometry,
)

DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


@dataclasses.dataclass(frozen=True)
class PoolCase:
    lead: tuple[int, ...]  # () unbatched or (N,)
    channels: int
    h: int
    w: int
    kernel: tuple[int, int]
    stride: tuple[int, int] | None
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool
    compact: bool
    layout: Layout
    index_layout: Layout  # of the indices handed to unpool
    dtype: torch.dtype
    ties: bool  # values drawn from a few integers: many equal maxima
    nonfinite: bool
    seed: int


@st.composite
def pool_cases(draw, small: bool):
    pair = st.tuples(st.integers(1, 4), st.integers(1, 4))
    lead = draw(st.sampled_from([(), (0,), (1,), (2,), (3,)]))
    dtype = draw(st.sampled_from(DTYPES))
    kernel = draw(pair)
    size = st.integers(1, 9 if small else 40)
    return PoolCase(
        lead=lead, channels=draw(st.integers(1, 4 if small else 40)), h=draw(size),
        w=draw(size), kernel=kernel, stride=draw(st.one_of(st.none(), pair)),
        # Mostly within stock's limit of half the kernel; sometimes past it (must raise).
        padding=draw(st.tuples(st.integers(0, kernel[0] // 2 + (draw(st.integers(0, 9)) == 0)),
                               st.integers(0, kernel[1] // 2))),
        dilation=draw(st.tuples(st.integers(1, 3), st.integers(1, 3))),
        ceil_mode=draw(st.booleans()), compact=draw(st.booleans()),
        layout=draw(layouts(len(lead) + 3)), index_layout=draw(layouts(len(lead) + 3)),
        dtype=dtype, ties=draw(st.booleans()),
        nonfinite=draw(st.booleans()) and dtype == torch.float64,
        seed=draw(st.integers(0, 2**31 - 1)))


def _input(case: PoolCase, device):
    shape = (*case.lead, case.channels, case.h, case.w)
    x = random_tensor(shape, torch.float64, device, case.seed, -3, 3)
    if case.ties:
        x = x.round()
    if case.nonfinite:
        x = with_nonfinite(x, case.seed + 1)
    return arrange(x.to(case.dtype), case.layout)


def _pool_grad_reference(g, indices, x_shape):
    """Stock's backward without its out-of-bounds write: each pooled gradient added at the
    plane position its index names, those naming none (a window wholly in the padding) left
    out."""
    planes = x_shape[-2] * x_shape[-1]
    rows = g.numel() // max(g.shape[-2] * g.shape[-1], 1)
    g2 = g.reshape(rows, g.shape[-2] * g.shape[-1])
    i2 = indices.reshape(g2.shape)
    valid = (i2 >= 0) & (i2 < planes)
    out = torch.zeros(rows, planes + 1, dtype=g.dtype, device=g.device)
    out.scatter_add_(1, torch.where(valid, i2, planes), g2)
    return out[:, :planes].reshape(x_shape)


@fuzz("max_pool2d", pool_cases, quick=15)
def pool_property(backend, device, case: PoolCase):
    x = _input(case, device)
    args = (case.kernel, case.stride, case.padding, case.dilation, case.ceil_mode)
    grad = case.dtype == torch.float64
    xi = x.detach().requires_grad_(grad)

    def ours():
        return pyimg.ops.max_pool2d_with_indices(xi, *args, compact=case.compact)

    with use(backend), poisoned_outputs():
        if raises_like_stock(lambda: F.max_pool2d(x, *args[:4], case.ceil_mode,
                                                  return_indices=True), ours):
            return
        y, indices = ours()
    stock_y, stock_i = F.max_pool2d(x, *args[:4], case.ceil_mode, return_indices=True)
    assert torch.equal(y.isnan(), stock_y.isnan())
    torch.testing.assert_close(y, stock_y, atol=0, rtol=0, equal_nan=True)  # a selection
    geometry = pool_geometry(x, *args, case.compact)
    expected_i = stock_i
    if case.compact:
        expected_i = compact_from_flat(stock_i.reshape(-1, *stock_i.shape[-3:]),
                                       geometry).reshape(stock_i.shape)
    assert indices.dtype == expected_i.dtype and torch.equal(indices, expected_i)
    if x.dim() == 4:
        check_format(y, x, "values")
        check_format(indices, x, "indices")
    if grad:
        g = random_tensor(y.shape, y.dtype, device, case.seed + 2)
        with use(backend), poisoned_outputs():
            (ours_grad,) = torch.autograd.grad(y, xi, g)
        assert_close(ours_grad, _pool_grad_reference(g, stock_i, x.shape), torch.float64,
                     msg="grad x")
    if backend != "torch" and x.dim() == 4:
        check_fake(lambda t: pyimg.ops.max_pool2d_with_indices(t, *args, compact=case.compact),
                   [x], (y, indices))
    if case.dilation == (1, 1):
        _check_unpool(backend, device, case, y.detach(), indices, x.shape[-2:])


def _check_unpool(backend, device, case: PoolCase, y, indices, size):
    """Unpool of the pool's own output, back to the input's size: stock where windows do not
    overlap (no duplicate indices), the documented duplicate rule where they do."""
    stride = case.stride or case.kernel
    args = (case.kernel, case.stride, case.padding)
    y = arrange(y, case.layout)
    indices = arrange(indices, case.index_layout)
    grad = case.dtype == torch.float64
    yi = y.detach().requires_grad_(grad)
    with use(backend), poisoned_outputs():
        result, error = outcome(lambda: pyimg.ops.max_unpool2d(yi, indices, *args,
                                                               output_size=size))
    flat = indices
    if case.compact:
        geometry = pool_geometry(torch.empty(*case.lead, case.channels, *size), *args,
                                 (1, 1), case.ceil_mode, True)
        flat = _flat_of(indices, geometry)
    _, stock_error = outcome(lambda: F.max_unpool2d(y, flat, *args, output_size=size))
    if stock_error is not None:
        # Output sizes stock rejects (ceil_mode pools, padding) and indices naming no output
        # position (a window wholly in the padding) raise in ours too.
        assert error is not None, f"stock raised {stock_error!r}, ours returned"
        return
    assert error is None, f"unpool raised {error!r}"
    y4 = y.reshape(-1, *y.shape[-3:])
    g = unpool_geometry(y4, flat.reshape(y4.shape), *args, size)
    expected = max_unpool2d_reference(y4, flat.reshape(y4.shape), g).reshape(result.shape)
    if stride[0] >= case.kernel[0] and stride[1] >= case.kernel[1]:
        torch.testing.assert_close(expected, F.max_unpool2d(y, flat, *args, output_size=size),
                                   atol=0, rtol=0, equal_nan=True)
    torch.testing.assert_close(result, expected, atol=0, rtol=0, equal_nan=True)
    if y.dim() == 4:
        check_format(result, y, "unpool")
    if grad:
        go = random_tensor(result.shape, result.dtype, device, case.seed + 3)
        with use(backend), poisoned_outputs():
            (ours_grad,) = torch.autograd.grad(result, yi, go)
        yr = y4.detach().requires_grad_()
        (ref_grad,) = torch.autograd.grad(
            max_unpool2d_reference(yr, flat.reshape(y4.shape), g), yr,
            go.reshape(-1, *go.shape[-3:]))
        assert_close(ours_grad, ref_grad.reshape(y.shape), torch.float64, msg="unpool grad")
    if backend != "torch" and y.dim() == 4:
        check_fake(lambda t, i: pyimg.ops.max_unpool2d(t, i, *args, output_size=size),
                   [y, indices], result)


def _flat_of(compact, geometry):
    """Flat plane positions of compact taps (-1 where a tap names none)."""
    c4 = compact.reshape(-1, *compact.shape[-3:])
    return flat_from_compact(c4, geometry).reshape(compact.shape)


test_pool, test_pool_long = pool_property


@dataclasses.dataclass(frozen=True)
class UnpoolCase:
    """Hand-made indices: anywhere in (and past) the output plane, in or out of their window,
    duplicated; output_size of any length."""

    lead: tuple[int, ...]
    channels: int
    ph: int
    pw: int
    kernel: tuple[int, int]
    stride: tuple[int, int] | None
    padding: tuple[int, int]
    output_size: tuple[int, ...] | None
    compact: bool
    index_range: int  # indices drawn in [-1, index_range)
    dtype: torch.dtype
    seed: int


@st.composite
def unpool_cases(draw, small: bool):
    pair = st.tuples(st.integers(1, 3), st.integers(1, 3))
    lead = draw(st.sampled_from([(), (1,), (2,)]))
    kernel = draw(pair)
    ph, pw = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    stride = draw(st.one_of(st.none(), pair))
    s = stride or kernel
    default = ((ph - 1) * s[0] + kernel[0], (pw - 1) * s[1] + kernel[1])
    near = st.tuples(*[st.integers(d - 1, d + 1) for d in default])
    size = draw(st.one_of(st.none(), near, near.map(lambda t: (1, 1, *t)),
                          near.map(lambda t: (1, *t))))
    return UnpoolCase(
        lead=lead, channels=draw(st.integers(1, 3)), ph=ph, pw=pw, kernel=kernel,
        stride=stride, padding=(0, 0), output_size=size, compact=draw(st.booleans()),
        index_range=draw(st.integers(1, default[0] * default[1] + 2)),
        dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 2**31 - 1)))


@fuzz("max_unpool2d", unpool_cases, quick=15)
def unpool_property(backend, device, case: UnpoolCase):
    shape = (*case.lead, case.channels, case.ph, case.pw)
    x = random_tensor(shape, case.dtype, device, case.seed)
    g = torch.Generator().manual_seed(case.seed + 1)
    taps = case.kernel[0] * case.kernel[1]
    high = taps + 1 if case.compact else case.index_range
    indices = torch.randint(-1 if not case.compact else 0, high, shape, generator=g)
    indices = indices.to(device=device, dtype=torch.uint8 if case.compact else torch.int64)
    args = (case.kernel, case.stride, case.padding)
    with use(backend), poisoned_outputs():
        result, error = outcome(lambda: pyimg.ops.max_unpool2d(x, indices, *args,
                                                               output_size=case.output_size))
    if case.compact:
        # Stock has no compact indices: the argument checks are stock's, the indices ours.
        _, stock_error = outcome(lambda: F.max_unpool2d(x, indices.long(), *args,
                                                        output_size=case.output_size))
        if stock_error is not None and "invalid max index" not in str(stock_error):
            assert isinstance(error, type(stock_error)), (stock_error, error)
            return
    else:
        stock, stock_error = outcome(lambda: F.max_unpool2d(x, indices, *args,
                                                            output_size=case.output_size))
        if stock_error is not None:
            assert isinstance(error, type(stock_error)), (stock_error, error)
            return
    x4 = x.reshape(-1, *x.shape[-3:])
    size = None if case.output_size is None else tuple(case.output_size)[-2:]
    geometry = unpool_geometry(x4, indices.reshape(x4.shape), *args, size)
    expected, expected_error = outcome(
        lambda: max_unpool2d_reference(x4, indices.reshape(x4.shape), geometry))
    if expected_error is not None:
        assert error is not None and "invalid max index" in str(error), error
        return
    assert error is None, f"unpool raised {error!r}"
    torch.testing.assert_close(result, expected.reshape(result.shape), atol=0, rtol=0)
    rows = indices.reshape(-1, case.ph * case.pw)
    unique = all(len(set(row.tolist())) == row.numel() for row in rows)
    if not case.compact and unique:  # stock is deterministic without duplicates
        torch.testing.assert_close(result, stock, atol=0, rtol=0)


test_unpool, test_unpool_long = unpool_property
