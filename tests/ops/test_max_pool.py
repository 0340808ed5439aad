"""max_pool2d_with_indices / max_unpool2d, every backend against stock and the reference."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from support import backend_op, backend_params, layouts, poisoned_outputs
from torch._subclasses.fake_tensor import FakeTensorMode

import pyimg
from pyimg._format import output_memory_format
from pyimg.ops import max_pool as max_pool_module
from pyimg.ops.max_pool import (
    compact_from_flat,
    max_unpool2d_reference,
    max_unpool2d_reference_backward,
    pool_geometry,
    unpool_geometry,
)

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
pool = pyimg.ops.max_pool2d_with_indices
unpool = pyimg.ops.max_unpool2d

# (shape, kernel_size, stride, padding, dilation, ceil_mode): odd sizes, overlap, padding,
# dilation, ceil_mode, batch 0 and 1, a 3-D input.
CASES = [
    ((2, 3, 7, 9), 2, 2, 0, 1, False),
    ((1, 2, 7, 9), 3, 2, 1, 1, True),
    ((1, 2, 6, 5), (3, 2), (1, 2), (1, 0), 1, False),
    ((1, 2, 9, 8), 3, 2, 1, 2, True),
    ((0, 2, 4, 4), 2, 2, 0, 1, False),
    ((3, 5, 4), 2, None, 0, 1, True),
    ((1, 37, 5, 6), 2, 2, 1, 1, False),  # channels_last: whole blocks of channels and a rest
]


@pytest.fixture(params=backend_params())
def backend(request):
    name, device = request.param
    with pyimg.use_backend(name):
        yield device


def _stock(x, k, s, p, d, ceil):
    return F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)


def _geometry(x, k, s, p, d, ceil):
    return pool_geometry(x, k, s, p, d, ceil, False)


# -- pool forward ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_matches_stock_exactly(backend, dtype):
    for shape, k, s, p, d, ceil in CASES:
        x = torch.randn(shape, device=backend).to(dtype)
        y_ref, i_ref = _stock(x, k, s, p, d, ceil)
        compact_ref = compact_from_flat(i_ref, _geometry(x, k, s, p, d, ceil))
        for name, xl in layouts(x):
            with poisoned_outputs():
                y, i = pool(xl, k, s, p, d, ceil)
                yc, ic = pool(xl, k, s, p, d, ceil, compact=True)
            assert torch.equal(y, y_ref) and torch.equal(yc, y_ref), (shape, name)
            assert torch.equal(i, i_ref), (shape, name)
            assert ic.dtype == torch.uint8 and torch.equal(ic, compact_ref), (shape, name)
            if x.dim() == 4:
                fmt = output_memory_format(xl)
                assert y.is_contiguous(memory_format=fmt) and i.is_contiguous(memory_format=fmt)


def test_pool_nan_ties_and_infinities_as_stock(backend):
    nan, inf = float("nan"), float("inf")
    x = torch.tensor([[[[1.0, 3.0, 3.0, nan, 2.0, nan],
                        [3.0, nan, -inf, -inf, 5.0, 5.0],
                        [-inf, -inf, 0.0, -0.0, 7.0, nan]]]], device=backend)
    for k, s, p in [(2, 1, 1), (3, 1, 1), ((1, 3), (1, 2), (0, 1)), (2, 2, 0)]:
        y_ref, i_ref = _stock(x, k, s, p, 1, True)
        for _, xl in layouts(x):
            y, i = pool(xl, k, s, p, 1, True)
            assert torch.equal(y.isnan(), y_ref.isnan())
            assert torch.equal(y.nan_to_num(), y_ref.nan_to_num()) and torch.equal(i, i_ref)


# -- unpool forward --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_unpool_matches_stock_on_pool_indices(backend, dtype):
    # Disjoint windows: stock is deterministic there, and pyimg must agree exactly.
    for shape, k, s, p in [((2, 3, 8, 6), 2, 2, 0), ((1, 2, 7, 9), 2, 2, 0),
                           ((1, 2, 9, 7), 3, 3, 1), ((0, 2, 4, 4), 2, 2, 0), ((3, 5, 4), 2, 2, 0),
                           ((1, 37, 6, 7), 2, 2, 1)]:
        x = torch.randn(shape, device=backend).to(dtype)
        y, i = _stock(x, k, s, p, 1, False)
        _, ic = pool(x, k, s, p, compact=True)
        expected = F.max_unpool2d(y, i, k, s, p, output_size=x.shape[-2:])
        for layout, yv in layouts(y):
            for idx in (i, ic):
                il = idx.contiguous(memory_format=output_memory_format(yv))
                with poisoned_outputs():
                    out = unpool(yv, il, k, s, p, output_size=x.shape[-2:])
                assert torch.equal(out, expected), (shape, layout, idx.dtype)
                if yv.dim() == 4:
                    assert out.is_contiguous(memory_format=output_memory_format(yv))


def _overlapping_case(device, dtype=torch.float32):
    """Overlapping windows with equal maxima, so several indices name one position."""
    x = torch.randint(0, 3, (2, 3, 7, 8), device=device).to(dtype)
    y, i = _stock(x, 3, 1, 1, 1, False)
    return y, i


def test_unpool_duplicates_follow_the_rule_on_every_backend(backend):
    y, i = _overlapping_case(backend)
    g = unpool_geometry(y, i, 3, 1, 1, None)
    expected = max_unpool2d_reference(y, i, g)
    # The rule: each named position holds the largest value that names it.
    manual = torch.zeros(expected.shape, device=backend).flatten(2)
    manual.scatter_reduce_(2, i.flatten(2), y.flatten(2), "amax", include_self=False)
    assert torch.equal(expected, manual.view_as(expected))
    for _, yl in layouts(y):
        with poisoned_outputs():
            out = unpool(yl, i.contiguous(memory_format=output_memory_format(yl)), 3, 1, 1)
        assert torch.equal(out, expected)


def test_unpool_backward_gives_the_winner_its_gradient(backend):
    y = torch.tensor([[[[2.0, 2.0, 1.0]]]], device=backend, requires_grad=True)
    # All three name position 1 of a (1, 4) plane; both 2.0s tie: the first wins.
    i = torch.tensor([[[[1, 1, 1]]]], device=backend)
    out = unpool(y, i, (1, 2), 1, output_size=(1, 4))
    assert out.tolist() == [[[[0.0, 2.0, 0.0, 0.0]]]]
    (grad,) = torch.autograd.grad(out, y, torch.tensor([[[[1.0, 10.0, 100.0, 1000.0]]]],
                                                       device=backend))
    assert grad.tolist() == [[[[10.0, 0.0, 0.0]]]]


def test_unpool_nan_wins_and_first_nan_is_kept(backend):
    nan = float("nan")
    y = torch.tensor([[[[5.0, nan, nan]]]], device=backend, requires_grad=True)
    i = torch.tensor([[[[1, 1, 1]]]], device=backend)
    out = unpool(y, i, (1, 2), 1, output_size=(1, 4))
    assert out[0, 0, 0, 1].isnan() and out[0, 0, 0, [0, 2, 3]].eq(0).all()
    (grad,) = torch.autograd.grad(out, y, torch.ones_like(out))
    assert grad.tolist() == [[[[0.0, 1.0, 0.0]]]]


def test_unpool_indices_outside_their_window_scatter_deterministically(backend):
    y = torch.randn(2, 3, 3, 4, device=backend, requires_grad=True)
    i = torch.randint(0, 6 * 8, (2, 3, 3, 4), device=backend)  # anywhere in a 6x8 plane
    out = unpool(y, i, 2, 2)
    g = unpool_geometry(y, i, 2, 2, 0, None)
    expected = max_unpool2d_reference(y.detach(), i, g)
    assert torch.equal(out, expected)
    assert torch.equal(out, unpool(y, i, 2, 2))
    grad = torch.randn_like(out)
    (ours,) = torch.autograd.grad(out, y, grad)
    yr = y.detach().requires_grad_()
    (ref,) = torch.autograd.grad(max_unpool2d_reference(yr, i, g), yr, grad)
    assert torch.equal(ours, ref)


def test_same_bits_twice_and_across_backends(backend):
    y, i = _overlapping_case(backend, torch.float16)
    y = y + torch.randn_like(y) * 0.01
    first = unpool(y, i, 3, 1, 1)
    assert torch.equal(first, unpool(y, i, 3, 1, 1))
    with pyimg.use_backend("torch"):
        assert torch.equal(first.cpu(), unpool(y.cpu(), i.cpu(), 3, 1, 1))


# -- backward --------------------------------------------------------------------------------


@pytest.mark.parametrize("compact", (False, True))
def test_pool_gradients_match_stock(backend, compact):
    for shape, k, s, p, d, ceil in CASES:
        x = torch.randn(shape, device=backend)
        for name, xl in layouts(x):
            xl = xl.detach().requires_grad_()
            y, _ = pool(xl, k, s, p, d, ceil, compact=compact)
            grad = torch.randn_like(y)
            with poisoned_outputs():
                (ours,) = torch.autograd.grad(y, xl, grad)
            xr = x.detach().requires_grad_()
            (ref,) = torch.autograd.grad(_stock(xr, k, s, p, d, ceil)[0], xr, grad)
            torch.testing.assert_close(ours, ref, msg=name)


def _gradcheck(fn, inputs):
    # Triton's CPU interpreter launches slowly: check random Jacobian projections there.
    fast = pyimg._backend.forced() == "triton" and inputs[0].device.type == "cpu"
    return torch.autograd.gradcheck(fn, inputs, fast_mode=fast)


@pytest.mark.parametrize("compact", (False, True))
def test_gradcheck(backend, compact):
    # Distinct values, so no tie sits on a finite-difference step.
    x = torch.randperm(2 * 2 * 5 * 6, device=backend).view(2, 2, 5, 6).double() / 7
    for _, xl in layouts(x):
        assert _gradcheck(lambda t: pool(t, 3, 2, 1, compact=compact)[0], [xl.requires_grad_()])
    y, i = pool(x, 2, 2, compact=compact)
    for _, yl in layouts(y):
        assert _gradcheck(lambda t: unpool(t, i, 2, 2, output_size=(5, 6)),
                          [yl.detach().requires_grad_()])


# -- torch.library contract and torch.compile ------------------------------------------------


@pytest.mark.parametrize("param", backend_params())
def test_opcheck(param):
    name, device = param
    x = torch.randn(2, 3, 5, 7, device=device)
    for compact in (False, True):
        for _, xl in layouts(x):
            torch.library.opcheck(backend_op(name, "max_pool2d_with_indices"),
                                  (xl.requires_grad_(), [3, 2], [2, 1], [1, 0], [1, 1], True,
                                   compact))
        y, i = pool(x, 2, 2, compact=compact)
        torch.library.opcheck(backend_op(name, "max_unpool2d"),
                              (y.requires_grad_(), i, [2, 2], [2, 2], [0, 0], [5, 7], compact))
        torch.library.opcheck(backend_op(name, "max_pool2d_with_indices_backward"),
                              (torch.randn_like(y), i, [5, 7], [2, 2], [2, 2], [0, 0], [1, 1],
                               compact))
        torch.library.opcheck(backend_op(name, "max_unpool2d_backward"),
                              (torch.randn_like(x), y.detach(), i, [2, 2], [2, 2], [0, 0],
                               compact))


def test_compile_fullgraph(backend):
    x = torch.randn(2, 4, 7, 6, device=backend).contiguous(memory_format=torch.channels_last)

    def fn(x):
        y, i = pool(x, 2, 2, compact=True)
        return unpool(y * 2, i, 2, 2, output_size=x.shape[-2:])

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    xc = x.clone().requires_grad_()
    out = compiled(xc)
    torch.testing.assert_close(out, fn(x))
    assert out.is_contiguous(memory_format=torch.channels_last)
    out.sum().backward()
    assert xc.grad is not None


# -- bad input -------------------------------------------------------------------------------


def test_bad_indices_raise_and_write_nothing_out_of_bounds(backend):
    if pyimg._backend.forced() == "cuda":
        pytest.skip("the CUDA kernels assert on the device: test_cuda_bad_index_asserts")
    y = torch.randn(1, 2, 2, 2, device=backend)
    for bad in (16, -1, 1 << 40):
        i = torch.zeros(1, 2, 2, 2, dtype=torch.long, device=backend)
        i[0, 1, 1, 0] = bad
        with pytest.raises(RuntimeError, match="invalid max index"):
            unpool(y, i, 2, 2)
    # A compact tap whose position falls in the padding, or past the window.
    for tap in (0, 9):
        ic = torch.full((1, 2, 2, 2), 3, dtype=torch.uint8, device=backend)
        ic[0, 0, 0, 0] = tap
        with pytest.raises(RuntimeError, match="invalid max index"):
            unpool(y, ic, 3, 2, 1, output_size=(4, 4))


def test_unpool_backward_checks_indices(backend):
    # The backward reads the gradient where each index points: a bad one must raise, and one
    # outside its window (in the plane) takes the scatter rule's gradient, on the disjoint
    # windows' fast path too.
    name = pyimg._backend.forced()
    if name == "cuda":
        pytest.skip("the CUDA kernels assert on the device: test_cuda_bad_index_asserts")
    op = backend_op(name, "max_unpool2d_backward")
    y = torch.randn(1, 2, 2, 2, device=backend)
    grad = torch.randn(1, 2, 4, 4, device=backend)
    for bad in (16, -1, 1 << 40):
        i = torch.zeros(1, 2, 2, 2, dtype=torch.long, device=backend)
        i[0, 1, 1, 0] = bad
        with pytest.raises(RuntimeError, match="invalid max index"):
            op(grad, y, i, [2, 2], [2, 2], [0, 0], False)
    i = torch.tensor([[[[0, 2], [8, 10]], [[5, 5], [15, 0]]]], device=backend)
    expected = grad.flatten(2).gather(2, i.flatten(2)).view_as(y)
    expected[0, 1, 0, 1] = 0.0  # position 5 is named twice; the first of equal values wins
    y[0, 1, 0, 1] = y[0, 1, 0, 0]
    assert torch.equal(op(grad, y, i, [2, 2], [2, 2], [0, 0], False), expected)


@pytest.fixture
def capturing(monkeypatch):
    """As while a CUDA graph is captured: the unpool paths may not read a value back."""
    monkeypatch.setattr(max_pool_module, "_capturing", lambda t: True)


def test_unpool_paths_read_nothing_back_while_capturing(capturing):
    # Fake tensors raise on any data-dependent host read (bool(), .item()), as a capture does.
    y = torch.randn(2, 3, 3, 4)
    i = torch.randint(0, 6 * 8, (2, 3, 3, 4))
    g = unpool_geometry(y, i, 2, 2, 0, None)
    with FakeTensorMode() as mode:
        fy, fi = mode.from_tensor(y), mode.from_tensor(i)
        assert not max_pool_module._in_window(fi, g, False)
        max_unpool2d_reference(fy, fi, g)
        max_unpool2d_reference_backward(torch.empty(2, 3, 6, 8), fy, fi, g)


@pytest.mark.parametrize("param", [p for p in backend_params()
                                   if p.values[0][0] in ("triton", "torch")])
def test_unpool_while_capturing_checks_on_the_device_and_takes_the_general_path(param,
                                                                                capturing):
    name, device = param
    y = torch.randn(2, 3, 3, 4, device=device)
    i = torch.randint(0, 6 * 8, (2, 3, 3, 4), device=device)
    expected = max_unpool2d_reference(y, i, unpool_geometry(y, i, 2, 2, 0, None))
    with pyimg.use_backend(name):
        assert torch.equal(unpool(y, i, 2, 2), expected)
        i[0, 1, 1, 0] = -1
        with pytest.raises(RuntimeError, match="invalid max index"):
            unpool(y, i, 2, 2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("index", ["16", "-1", "1 << 40"])
def test_cuda_bad_index_asserts(index):
    # As stock's CUDA unpool: a device-side assert, no host sync; it ends the CUDA context, so
    # it runs in a process of its own.
    code = (
        "import torch, pyimg\n"
        "y = torch.randn(1, 2, 2, 2, device='cuda')\n"
        "i = torch.zeros(1, 2, 2, 2, dtype=torch.long, device='cuda')\n"
        f"i[0, 1, 1, 0] = {index}\n"
        "with pyimg.use_backend('cuda'):\n"
        "    pyimg.ops.max_unpool2d(y, i, 2, 2)\n"
        "torch.cuda.synchronize()\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0 and "device-side assert" in run.stderr, run.stderr[-2000:]


def _raises_like_stock(stock, ours):
    with pytest.raises(Exception) as info:
        stock()
    with pytest.raises(info.type):
        ours()


@pytest.mark.parametrize(
    ("shape", "k", "s", "p", "d", "ceil"),
    [
        ((4, 4), 2, 2, 0, 1, False),  # rank
        ((1, 1, 2, 2), 3, 1, 0, 1, False),  # output too small
        ((1, 1, 4, 4), 3, 1, 2, 1, False),  # padding over half the kernel
        ((1, 1, 4, 4), 0, 1, 0, 1, False),  # kernel 0
        ((1, 1, 4, 4), 2, 0, 0, 1, False),  # stride 0
        ((1, 1, 4, 4), 2, 1, 0, 0, False),  # dilation 0
        ((1, 0, 4, 4), 2, 2, 0, 1, False),  # no channels
    ],
)
def test_bad_pool_arguments_raise_like_stock(backend, shape, k, s, p, d, ceil):
    x = torch.randn(shape, device=backend)
    _raises_like_stock(lambda: _stock(x, k, s, p, d, ceil), lambda: pool(x, k, s, p, d, ceil))


def test_bad_unpool_arguments_raise_like_stock(backend):
    y = torch.randn(1, 1, 2, 2, device=backend)
    i = torch.zeros(1, 1, 2, 2, dtype=torch.long, device=backend)
    cases = [
        (y, i.int(), {}),  # index dtype
        (y, i[..., :1], {}),  # index shape
        (y, i, {"output_size": (9, 9)}),  # output size out of range
        (y, i, {"output_size": (4,)}),  # output size length
        (y, i, {"output_size": (1, 4, 4)}),  # 3 elements: neither (H, W) nor (N, C, H, W)
        (y, i, {"output_size": (1, 1, 1, 4, 4)}),
        (y[0], i[0], {"output_size": (1, 4, 4)}),  # an unbatched input's own shape
        (y[0, 0], i[0, 0], {}),  # rank
    ]
    for yv, iv, kwargs in cases:
        _raises_like_stock(lambda yv=yv, iv=iv, kw=kwargs: F.max_unpool2d(yv, iv, 2, **kw),
                           lambda yv=yv, iv=iv, kw=kwargs: unpool(yv, iv, 2, **kw))


def test_unpool_takes_output_size_of_two_or_four_elements(backend):
    y, i = F.max_pool2d(torch.randn(2, 3, 5, 5, device=backend), 2, return_indices=True)
    for size in ((5, 5), (2, 3, 5, 5), torch.Size((9, 9, 5, 5))):
        torch.testing.assert_close(unpool(y, i, 2, output_size=size),
                                   F.max_unpool2d(y, i, 2, output_size=size))


@pytest.mark.parametrize(
    "param", [*backend_params(), pytest.param(("torch", "cpu"), id="torch-cpu")])
@pytest.mark.parametrize("compact", (False, True))
def test_empty_batch_unpool_and_backward(param, compact):
    name, device = param
    x = torch.randn(0, 2, 4, 6, device=device, requires_grad=True)
    with pyimg.use_backend(name):
        y, indices = pool(x, 2, compact=compact)
        out = unpool(y, indices, 2, output_size=(4, 6))
        assert out.shape == (0, 2, 4, 6)
        out.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize(
    "param", [*backend_params(), pytest.param(("torch", "cpu"), id="torch-cpu")])
def test_all_padding_window_backward_stays_in_bounds(param):
    # Dilation 3 puts both taps of this 2x2 window in the padding. Stock's index names no
    # plane position (6 of a 2x2 plane) and its backward writes that gradient out of bounds;
    # ours returns stock's values and index, and the backward drops that gradient. The torch
    # reference backend must not reach stock's backward either.
    name, backend = param
    x = torch.randn(1, 1, 2, 2, device=backend, requires_grad=True)
    with pyimg.use_backend(name):
        y, indices = pool(x, 2, 1, 1, 3)
    assert "MaxPool2DWithIndicesBackward" not in type(y.grad_fn).__name__
    stock_y, stock_indices = F.max_pool2d(x.detach(), 2, 1, 1, 3, return_indices=True)
    torch.testing.assert_close(y, stock_y)
    assert torch.equal(indices, stock_indices)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, torch.zeros_like(x))
    with pyimg.use_backend(name):
        _, compact = pool(x.detach(), 2, 1, 1, 3, compact=True)
        _, reference = pyimg.ops.max_pool.max_pool2d_reference(
            x.detach(), _geometry(x, 2, 1, 1, 3, False), False, True)
        assert torch.equal(compact, reference)
        with pytest.raises(RuntimeError, match="invalid max index"):
            unpool(y.detach(), indices, 2, 3, 1, output_size=(2, 2))


def test_compiled_ops_check_their_arguments():
    if not pyimg._extension.loaded():
        pytest.skip("compiled extension not loaded")
    ops = torch.ops.pyimg
    y = torch.randn(1, 1, 2, 2)
    with pytest.raises(RuntimeError, match="4-D"):
        ops.max_pool2d_with_indices(y[0], [2, 2], [2, 2], [0, 0], [1, 1], False, False)
    with pytest.raises(RuntimeError, match="256"):
        ops.max_pool2d_with_indices(torch.randn(1, 1, 20, 20), [17, 17], [1, 1], [0, 0], [1, 1],
                                    False, True)
    with pytest.raises(RuntimeError, match="int64"):
        ops.max_unpool2d(y, torch.zeros(1, 1, 2, 2, dtype=torch.uint8), [2, 2], [2, 2], [0, 0],
                         [4, 4], False)
    with pytest.raises(RuntimeError, match="invalid max index"):
        ops.max_unpool2d(y, torch.full((1, 1, 2, 2), 99), [2, 2], [2, 2], [0, 0], [4, 4], False)
    with pytest.raises(RuntimeError, match="grad_out"):
        ops.max_unpool2d_backward(torch.zeros(2, 1, 4, 4), y, torch.zeros(1, 1, 2, 2).long(),
                                  [2, 2], [2, 2], [0, 0], False)


# -- a sweep of geometries -------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    s=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    d=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    ceil=st.booleans(),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    channels_last=st.booleans(),
)
def test_sweep_against_stock(k, s, pad, d, ceil, size, channels_last):
    x = torch.randint(-3, 4, (2, 3, *size)).float()  # small integers: many ties
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    try:
        y_ref, i_ref = _stock(x, k, s, pad, d, ceil)
    except RuntimeError:
        with pytest.raises(RuntimeError):
            pool(x, k, s, pad, d, ceil)
        return
    with pyimg.use_backend("cpu" if pyimg._extension.loaded() else "torch"):
        y, i = pool(x, k, s, pad, d, ceil)
        assert torch.equal(y, y_ref) and torch.equal(i, i_ref)
        _, ic = pool(x, k, s, pad, d, ceil, compact=True)
        g = _geometry(x, k, s, pad, d, ceil)
        assert torch.equal(ic, compact_from_flat(i_ref, g))
        if d != (1, 1):
            return
        ug = unpool_geometry(y, i, k, s, pad, x.shape[-2:]) if _fits(y, k, s, pad, size) else None
        if ug is None:
            return
        expected = max_unpool2d_reference(y, i, ug)
        assert torch.equal(unpool(y, i, k, s, pad, output_size=size), expected)
        assert torch.equal(unpool(y, ic, k, s, pad, output_size=size), expected)


def _fits(y, k, s, pad, size):
    """Whether stock accepts output_size=size for this unpool (ceil_mode may exceed it)."""
    try:
        F.max_unpool2d(y, torch.zeros_like(y, dtype=torch.long), k, s, pad, output_size=size)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "param", [*backend_params(), pytest.param(("torch", "cpu"), id="torch-cpu")])
def test_all_padding_window_whose_index_wraps_into_the_plane(param):
    # Kernel (1, 2), padding (0, 1), dilation (1, 3) on a 2x2 plane: the one window per row
    # taps columns -1 and 2, both padding, and stock's index for row 0 is 0 * 2 + 2 = 2 — a
    # position inside the plane (row 1), not in the window. The value stays stock's (-inf),
    # and no gradient reaches x.
    name, backend = param
    x = torch.randn(1, 1, 2, 2, device=backend, requires_grad=True)
    with pyimg.use_backend(name):
        y, indices = pool(x, (1, 2), 1, (0, 1), (1, 3))
    stock_y, stock_indices = F.max_pool2d(x.detach(), (1, 2), 1, (0, 1), (1, 3),
                                          return_indices=True)
    assert torch.equal(y.detach(), stock_y) and bool((stock_y == float("-inf")).all())
    assert torch.equal(indices, stock_indices)
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad, torch.zeros_like(x))
