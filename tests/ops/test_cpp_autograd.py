"""The C++ ops' autograd kernels (csrc/ops/autograd/): registered in C++ rather than in
Python, the gradients of the torch reference, float64 gradchecks of each op called directly,
and double backward: differentiable where the backward is made of differentiable ops, an
error (never a silent zero) where it calls a backward op; and the nodes behave as stock's
generated ones: names, saved tensors (version checks, hooks, release), retain_graph, an error
for forward-mode AD, and compiled autograd (torch._dynamo.compiled_autograd) tracing them into
its graph with eager's gradients."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo import compiled_autograd
from torch.autograd import forward_ad

from pyimg import _extension
from pyimg.nn import MaxPool2d, MaxUnpool2d, PixelUnshuffle, ResidualBlock, UpsampleBlock
from pyimg.ops.batch_norm import batch_norm_prelu_reference
from pyimg.ops.max_pool import (
    max_pool2d_reference,
    max_unpool2d_reference,
    pool_geometry,
    unpool_geometry,
)
from pyimg.ops.pixel_shuffle import pixel_shuffle_reference, pixel_unshuffle_reference

pytestmark = pytest.mark.skipif(not _extension.loaded(), reason="the extension is not built")

CPP_AUTOGRAD_OPS = ("pixel_shuffle", "pixel_unshuffle", "max_pool2d_with_indices",
                    "max_unpool2d", "batch_norm_stats", "bn_prelu")
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
        not (torch.cuda.is_available() and _extension.has_cuda_kernels()),
        reason="no CUDA device or no CUDA kernels")]),
]
FORMATS = (torch.contiguous_format, torch.channels_last)
DOUBLE = {"atol": 1e-12, "rtol": 1e-10}
pyimg_ops = torch.ops.pyimg


def _autograd_line(name: str) -> str:
    lines = torch._C._dispatch_dump(f"pyimg::{name}").splitlines()
    return next(line for line in lines if line.startswith("Autograd[alias]"))


@pytest.mark.parametrize("name", CPP_AUTOGRAD_OPS)
def test_autograd_kernel_is_cpp(name):
    line = _autograd_line(name)
    assert "csrc/ops/autograd/" in line and ".py:" not in line, line


def test_triton_ops_keep_python_autograd():
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    y = pyimg_ops.pixel_shuffle_triton(x, 2)
    assert "GeneratedBackwardFor_pyimg_pixel_shuffle_triton" in type(y.grad_fn).__name__


def _grads(y, inputs, grad_out):
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    got = iter(torch.autograd.grad(y, wanted, grad_out))
    return [next(got) if t is not None and t.requires_grad else None for t in inputs]


def _assert_same_grads(ours, reference, inputs, grad_out):
    for got, want in zip(_grads(ours, inputs, grad_out), _grads(reference, inputs, grad_out),
                         strict=True):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, **DOUBLE)


def _leaf(t, requires_grad=True):
    return None if t is None else t.detach().clone().requires_grad_(requires_grad)


# -- pixel shuffle ----------------------------------------------------------------------------

SHUFFLE_CASES = [  # (activation, bias, PReLU weight size, x requires grad)
    ("none", False, None, True),
    ("none", True, None, True),
    ("relu", True, None, True),
    ("leaky_relu", False, None, True),
    ("prelu", True, "per-channel", True),
    ("prelu", False, "one", True),
    ("prelu", True, "per-channel", False),
    ("tanh", True, None, True),
    ("sigmoid", False, None, True),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", FORMATS, ids=("nchw", "nhwc"))
@pytest.mark.parametrize("batch", (0, 1, 2))
@pytest.mark.parametrize("case", SHUFFLE_CASES, ids=str)
def test_pixel_shuffle_grads_match_reference(device, fmt, batch, case):
    activation, with_bias, weight_size, x_grad = case
    r, channels = 2, 3
    x = torch.randn(batch, channels * r * r, 5, 3, device=device, dtype=torch.float64)
    x = _leaf(x.contiguous(memory_format=fmt), x_grad)
    bias = _leaf(torch.randn(channels * r * r, device=device, dtype=torch.float64)
                 ) if with_bias else None
    weight = None
    if weight_size is not None:
        n = channels if weight_size == "per-channel" else 1
        weight = _leaf(torch.rand(n, device=device, dtype=torch.float64))
    ours = pyimg_ops.pixel_shuffle(x, r, bias, activation, weight, 0.2)
    reference = pixel_shuffle_reference(x, r, bias, activation, weight, 0.2)
    grad_out = torch.randn_like(reference)
    _assert_same_grads(ours, reference, [x, bias, weight], grad_out)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", FORMATS, ids=("nchw", "nhwc"))
@pytest.mark.parametrize("batch", (0, 1, 2))
def test_pixel_unshuffle_grads_match_reference(device, fmt, batch):
    x = torch.randn(batch, 3, 6, 9, device=device, dtype=torch.float64)
    x = _leaf(x.contiguous(memory_format=fmt))
    ours = pyimg_ops.pixel_unshuffle(x, 3)
    reference = pixel_unshuffle_reference(x, 3)
    _assert_same_grads(ours, reference, [x], torch.randn_like(reference))


@pytest.mark.parametrize("device", DEVICES)
def test_pixel_shuffle_gradcheck(device):
    x = torch.randn(2, 12, 3, 4, device=device, dtype=torch.float64)
    bias = torch.randn(12, device=device, dtype=torch.float64)
    weight = torch.rand(3, device=device, dtype=torch.float64)
    for fmt in FORMATS:
        xl = _leaf(x.contiguous(memory_format=fmt))
        assert torch.autograd.gradcheck(
            lambda t, b, w: pyimg_ops.pixel_shuffle(t, 2, b, "prelu", w, 0.01),
            [xl, _leaf(bias), _leaf(weight)])
        assert torch.autograd.gradcheck(lambda t: pyimg_ops.pixel_shuffle(t, 2), [xl])
        assert torch.autograd.gradcheck(lambda t: pyimg_ops.pixel_unshuffle(t, 2),
                                        [_leaf(xl.detach().reshape(2, 3, 6, 8))])


@pytest.mark.parametrize("device", DEVICES)
def test_pixel_shuffle_double_backward(device):
    x = _leaf(torch.randn(1, 8, 3, 3, device=device, dtype=torch.float64))
    # A rearrangement's gradient is a rearrangement: differentiable again.
    assert torch.autograd.gradgradcheck(lambda t: pyimg_ops.pixel_shuffle(t, 2), [x])
    assert torch.autograd.gradgradcheck(lambda t: pyimg_ops.pixel_unshuffle(t, 2),
                                        [_leaf(x.detach().reshape(1, 2, 6, 6))])
    bias = _leaf(torch.randn(8, device=device, dtype=torch.float64))
    y = pyimg_ops.pixel_shuffle(x, 2, bias, "relu", None, 0.01)
    (grad_x,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice pyimg::pixel_shuffle"):
        torch.autograd.grad(grad_x.sum(), x, allow_unused=True)
    with pytest.raises(RuntimeError, match="differentiate twice pyimg::pixel_shuffle"):
        torch.autograd.grad(grad_x.sum(), bias, allow_unused=True)


# -- max pool / unpool ------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", FORMATS, ids=("nchw", "nhwc"))
@pytest.mark.parametrize("batch", (1, 2))
@pytest.mark.parametrize("compact", (False, True), ids=("flat", "compact"))
def test_max_pool_grads_match_reference(device, fmt, batch, compact):
    x = torch.randn(batch, 3, 7, 6, device=device, dtype=torch.float64)
    x = _leaf(x.contiguous(memory_format=fmt))
    for kernel, stride, padding, dilation, ceil_mode in ((2, 2, 0, 1, False),
                                                          (3, 2, 1, 1, True),
                                                          (3, 1, 1, 2, False)):
        g = pool_geometry(x, kernel, stride, padding, dilation, ceil_mode, compact)
        values, indices = pyimg_ops.max_pool2d_with_indices(x, *g.args(), ceil_mode, compact)
        ref_values, ref_indices = max_pool2d_reference(x, g, ceil_mode, compact)
        assert torch.equal(indices, ref_indices)
        assert not indices.requires_grad
        _assert_same_grads(values, ref_values, [x], torch.randn_like(ref_values))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", FORMATS, ids=("nchw", "nhwc"))
@pytest.mark.parametrize("batch", (1, 2))
@pytest.mark.parametrize("compact", (False, True), ids=("flat", "compact"))
def test_max_unpool_grads_match_reference(device, fmt, batch, compact):
    source = torch.randn(batch, 3, 7, 8, device=device, dtype=torch.float64)
    # Overlapping windows: positions named twice, where only the winner gets a gradient.
    for kernel, stride in ((2, 2), (3, 2)):
        pooled, indices = F.max_pool2d(source, kernel, stride, return_indices=True)
        g = unpool_geometry(pooled, indices, kernel, stride, 0, (7, 8))
        if compact:
            pool_g = pool_geometry(source, kernel, stride, 0, 1, False, True)
            indices = max_pool2d_reference(source, pool_g, False, True)[1]
        x = _leaf(pooled.contiguous(memory_format=fmt))
        indices = indices.contiguous(memory_format=fmt)
        kernel_, stride_, padding_, _ = g.args()
        ours = pyimg_ops.max_unpool2d(x, indices, kernel_, stride_, padding_, [7, 8], compact)
        reference = max_unpool2d_reference(x, indices, g)
        _assert_same_grads(ours, reference, [x], torch.randn_like(reference))


@pytest.mark.parametrize("device", DEVICES)
def test_max_pool_gradcheck_and_no_double_backward(device):
    # A permutation: distinct values, so a small perturbation keeps every window's maximum.
    x = torch.randperm(2 * 2 * 5 * 6, device=device).view(2, 2, 5, 6).double() / 7
    for fmt in FORMATS:
        xl = _leaf(x.contiguous(memory_format=fmt))
        assert torch.autograd.gradcheck(
            lambda t: pyimg_ops.max_pool2d_with_indices(t, [3, 3], [2, 2], [1, 1], [1, 1],
                                                        False, False)[0], [xl])
        pooled, indices = pyimg_ops.max_pool2d_with_indices(xl.detach(), [2, 2], [2, 2],
                                                            [0, 0], [1, 1], False, True)
        assert torch.autograd.gradcheck(
            lambda t, i=indices: pyimg_ops.max_unpool2d(t, i, [2, 2], [2, 2], [0, 0], [5, 6],
                                                        True),
            [_leaf(pooled)])
    x2 = _leaf(x)
    values, _ = pyimg_ops.max_pool2d_with_indices(x2, [2, 2], [2, 2], [0, 0], [1, 1], False,
                                                  False)
    (grad_x,) = torch.autograd.grad(values.square().sum(), x2, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice pyimg::max_pool2d_with_indices"):
        grad_x.sum().backward()
    p = _leaf(pooled)
    unpooled = pyimg_ops.max_unpool2d(p, indices, [2, 2], [2, 2], [0, 0], [5, 6], True)
    (grad_p,) = torch.autograd.grad(unpooled.square().sum(), p, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice pyimg::max_unpool2d"):
        grad_p.sum().backward()


# -- batch norm -------------------------------------------------------------------------------


def _bn_inputs(device, batch, fmt, prelu, residual):
    x = torch.randn(batch, 4, 3, 5, device=device, dtype=torch.float64)
    params = [torch.randn(4, device=device, dtype=torch.float64) for _ in range(2)]
    alpha = {None: None, "one": torch.rand(1), "per-channel": torch.rand(4)}[prelu]
    alpha = None if alpha is None else alpha.to(device, torch.float64)
    res = torch.randn_like(x) if residual else None
    return _leaf(x.contiguous(memory_format=fmt)), *map(_leaf, params), _leaf(alpha), _leaf(res)


def _bn_ours(x, weight, bias, alpha, res, training, running):
    """The public function's composition of the C++ ops, called directly."""
    if training:
        mean, var = pyimg_ops.batch_norm_stats(x.detach())
    else:
        mean, var = running
    return pyimg_ops.bn_prelu(x, mean, torch.rsqrt(var + 1e-5), weight, bias, alpha, res,
                              training)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", FORMATS, ids=("nchw", "nhwc"))
@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
@pytest.mark.parametrize("case", [("per-channel", False), ("one", False), (None, True)],
                         ids=("prelu", "prelu-one", "add"))
@pytest.mark.parametrize("batch", (0, 1, 2))
def test_bn_prelu_grads_match_reference(device, fmt, training, case, batch):
    if training and batch == 0:
        pytest.skip("no batch statistics of an empty batch")
    prelu, residual = case
    x, weight, bias, alpha, res = _bn_inputs(device, batch, fmt, prelu, residual)
    running = (torch.randn(4, device=device, dtype=torch.float64),
               torch.rand(4, device=device, dtype=torch.float64) + 0.5)
    ours = _bn_ours(x, weight, bias, alpha, res, training, running)
    reference = batch_norm_prelu_reference(x, *[t.clone() for t in running], weight, bias,
                                           alpha, training, 0.1, 1e-5, res)
    _assert_same_grads(ours, reference, [x, weight, bias, alpha, res],
                       torch.randn_like(reference))


@pytest.mark.parametrize("device", DEVICES)
def test_bn_prelu_only_some_inputs_need_grad(device):
    x, weight, bias, alpha, _ = _bn_inputs(device, 2, torch.channels_last, "per-channel", False)
    weight.requires_grad_(False)
    x.requires_grad_(False)
    y = _bn_ours(x, weight, bias, alpha, None, True, None)
    grad_bias, grad_alpha = torch.autograd.grad(y.sum(), [bias, alpha])
    reference = batch_norm_prelu_reference(x, None, None, weight, bias, alpha, True)
    want = torch.autograd.grad(reference.sum(), [bias, alpha])
    torch.testing.assert_close(grad_bias, want[0], **DOUBLE)
    torch.testing.assert_close(grad_alpha, want[1], **DOUBLE)


@pytest.mark.parametrize("device", DEVICES)
def test_batch_norm_gradcheck_and_double_backward(device):
    x, weight, bias, alpha, res = _bn_inputs(device, 2, torch.channels_last, "per-channel", True)
    assert torch.autograd.gradcheck(lambda t: pyimg_ops.batch_norm_stats(t), [x])
    # The statistics' gradient is torch ops: differentiable again.
    assert torch.autograd.gradgradcheck(lambda t: pyimg_ops.batch_norm_stats(t), [x])
    running = (torch.randn(4, device=device, dtype=torch.float64),
               torch.rand(4, device=device, dtype=torch.float64) + 0.5)
    for training in (True, False):
        assert torch.autograd.gradcheck(
            lambda *t, training=training: _bn_ours(*t, training, running),
            [x, weight, bias, alpha, res])
    y = _bn_ours(x, weight, bias, alpha, None, True, None)
    (grad_x,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice pyimg::bn_prelu"):
        grad_x.sum().backward()



# -- the nodes: names, saved tensors, retain_graph, forward mode ------------------------------


def _recorded_calls():
    """Per node name, a call on fresh float64 leaves returning (output, {name: a tensor the
    node saved})."""
    def shuffle():
        x = _leaf(torch.randn(1, 8, 3, 3, dtype=torch.float64))
        return pyimg_ops.pixel_shuffle(x, 2), {}

    def shuffle_fused():
        x = _leaf(torch.randn(1, 8, 3, 3, dtype=torch.float64))
        bias = _leaf(torch.randn(8, dtype=torch.float64))
        weight = _leaf(torch.rand(2, dtype=torch.float64))
        out = pyimg_ops.pixel_shuffle(x, 2, bias, "prelu", weight, 0.01)
        return out, {"x": x, "bias": bias, "weight": weight}

    def unshuffle():
        x = _leaf(torch.randn(1, 2, 6, 6, dtype=torch.float64))
        return pyimg_ops.pixel_unshuffle(x, 2), {}

    def pool():
        x = _leaf(torch.randn(1, 2, 6, 6, dtype=torch.float64))
        values, indices = pyimg_ops.max_pool2d_with_indices(x, [2, 2], [2, 2], [0, 0], [1, 1],
                                                            False, False)
        return values, {"indices": indices}

    def unpool():
        pooled, indices = F.max_pool2d(torch.randn(1, 2, 6, 6, dtype=torch.float64), 2,
                                       return_indices=True)
        x = _leaf(pooled)
        out = pyimg_ops.max_unpool2d(x, indices, [2, 2], [2, 2], [0, 0], [6, 6], False)
        return out, {"x": x, "indices": indices}

    def stats():
        x = _leaf(torch.randn(2, 3, 4, 4, dtype=torch.float64))
        mean, var = pyimg_ops.batch_norm_stats(x)
        return mean + var, {"x": x}

    def bn_prelu():
        x, weight, bias, alpha, res = _bn_inputs("cpu", 2, torch.contiguous_format,
                                                 "per-channel", True)
        out = _bn_ours(x, weight, bias, alpha, res, True, None)
        return out, {"x": x, "weight": weight, "bias": bias, "prelu_weight": alpha}

    return {"PixelShuffleBackward": shuffle, "PixelShuffleBackward (fused)": shuffle_fused,
            "PixelUnshuffleBackward": unshuffle, "MaxPool2DWithIndicesBackward": pool,
            "MaxUnpool2DBackward": unpool, "BatchNormStatsBackward": stats,
            "BnPreluBackward": bn_prelu}


RECORDED = _recorded_calls()
SAVING = [name for name in RECORDED if name not in ("PixelShuffleBackward",
                                                     "PixelUnshuffleBackward")]


def _node(y):
    """y's pyimg node (batch_norm_stats' output is mean + var: the node below the add)."""
    node = y.grad_fn
    return node.next_functions[0][0] if node.name().startswith("AddBackward") else node


def _graph_nodes(y):
    """The nodes of y's graph, depth first."""
    found, todo, seen = [], [y.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        found.append(node)
        todo.extend(next_node for next_node, _ in node.next_functions)
    return found


def _leaves(y):
    """The leaves y's graph accumulates gradients into."""
    return [node.variable for node in _graph_nodes(y) if hasattr(node, "variable")]


def _grads_of_sum(y):
    return torch.autograd.grad(y.sum(), _leaves(y))


@pytest.mark.parametrize("name", RECORDED)
def test_node_names(name):
    y, _ = RECORDED[name]()
    assert _node(y).name() == "pyimg::" + name.split()[0]


@pytest.mark.parametrize("name", SAVING)
def test_modified_saved_tensor_raises_like_stock(name):
    for saved_name in RECORDED[name]()[1]:
        y, saved = RECORDED[name]()
        with torch.no_grad():
            saved[saved_name].add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled")
def test_anomaly_mode_names_the_node_and_its_forward():
    y, saved = RECORDED["PixelShuffleBackward (fused)"]()
    with torch.no_grad():
        saved["x"].mul_(2)
    with torch.autograd.detect_anomaly(), \
            pytest.warns(UserWarning, match="Error detected in pyimg::PixelShuffleBackward"), \
            pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@pytest.mark.parametrize("name", RECORDED)
def test_retain_graph_and_release_of_saved_tensors(name):
    y, _ = RECORDED[name]()
    leaves = _leaves(y)
    first = torch.autograd.grad(y.sum(), leaves, retain_graph=True)
    second = torch.autograd.grad(y.sum(), leaves)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    if name in SAVING:  # released, as stock's nodes release theirs
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            torch.autograd.grad(y.sum(), leaves)
    else:  # nothing saved: a rearrangement's backward runs again, as stock's does
        torch.autograd.grad(y.sum(), leaves)


@pytest.mark.parametrize("name", SAVING)
def test_saved_tensors_hooks_apply(name):
    packed, unpacked = [], []

    def pack(t):
        packed.append(t)
        return t.clone()

    def unpack(t):
        unpacked.append(t)
        return t

    torch.manual_seed(0)
    want = _grads_of_sum(RECORDED[name]()[0])
    torch.manual_seed(0)
    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        y, saved = RECORDED[name]()
    assert packed and not unpacked
    assert any(t.data_ptr() == s.data_ptr() for t in packed for s in saved.values())
    got = _grads_of_sum(y)
    assert len(unpacked) == len(packed)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, **DOUBLE)


@pytest.mark.parametrize("call", [
    lambda t: pyimg_ops.pixel_shuffle(t, 2),
    lambda t: pyimg_ops.pixel_unshuffle(t, 2),
    lambda t: pyimg_ops.max_pool2d_with_indices(t, [2, 2], [2, 2], [0, 0], [1, 1], False, False),
    lambda t: pyimg_ops.batch_norm_stats(t),
    lambda t: pyimg_ops.bn_prelu(t, torch.zeros(8, dtype=t.dtype), torch.ones(8, dtype=t.dtype),
                                 None, None, None, None, False),
], ids=("pixel_shuffle", "pixel_unshuffle", "max_pool", "stats", "bn_prelu"))
def test_forward_mode_ad_raises(call):
    x = torch.randn(1, 8, 4, 4, dtype=torch.float64)
    with forward_ad.dual_level():
        dual = forward_ad.make_dual(x, torch.randn_like(x))
        with pytest.raises(NotImplementedError,
                           match=r"forward AD with pyimg::.*no forward-mode formula"):
            call(dual)


@pytest.mark.parametrize("shape, r", [((2, 3, 4, 5), 1), ((0, 8, 4, 4), 2), ((1, 0, 4, 4), 2)])
@pytest.mark.parametrize("op", ("pixel_shuffle", "pixel_unshuffle"))
def test_outputs_never_alias_inputs(shape, r, op):
    x = _leaf(torch.randn(shape, dtype=torch.float64))
    y = getattr(pyimg_ops, op)(x, r)
    assert y is not x and not y._is_view()
    assert x.is_leaf and x.grad_fn is None
    if y.numel():
        assert y.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_stats_gradient_of_one_output():
    # The other output's gradient is undefined: it counts as zero.
    x = _leaf(torch.randn(2, 3, 4, 4, dtype=torch.float64))
    mean, var = pyimg_ops.batch_norm_stats(x)
    for used, want in ((mean, x.mean((0, 2, 3))), (var, x.var((0, 2, 3), unbiased=False))):
        grad_out = torch.randn(3, dtype=torch.float64)
        (got,) = torch.autograd.grad(used, x, grad_out, retain_graph=True)
        (expected,) = torch.autograd.grad(want, x, grad_out)
        torch.testing.assert_close(got, expected, **DOUBLE)


# -- compiled autograd ------------------------------------------------------------------------


def _compiled_backward(loss, backend="eager", create_graph=False):
    """loss.backward() under compiled autograd; how many graphs it captured."""
    counters = torch._dynamo.utils.counters["compiled_autograd"]
    before = counters["captures"]
    with compiled_autograd._enable(torch.compile(backend=backend)):
        loss.backward(create_graph=create_graph)
    return counters["captures"] - before


@pytest.mark.parametrize("name", RECORDED)
def test_compiled_autograd_matches_eager(name):
    torch.manual_seed(0)
    want = _grads_of_sum(RECORDED[name]()[0])
    torch.manual_seed(0)
    y, _ = RECORDED[name]()
    assert _node(y).name() == "pyimg::" + name.split()[0]
    leaves = _leaves(y)
    assert _compiled_backward(y.sum()) == 1
    for leaf, w in zip(leaves, want, strict=True):
        torch.testing.assert_close(leaf.grad, w, **DOUBLE)


@pytest.mark.parametrize("name", SAVING)
def test_compiled_autograd_applies_saved_tensors_hooks(name):
    unpacked = []

    def unpack(t):
        unpacked.append(t)
        return t

    torch.manual_seed(0)
    want = _grads_of_sum(RECORDED[name]()[0])
    torch.manual_seed(0)
    with torch.autograd.graph.saved_tensors_hooks(torch.clone, unpack):
        y, _ = RECORDED[name]()
    leaves = _leaves(y)
    _compiled_backward(y.sum())
    assert unpacked
    for leaf, w in zip(leaves, want, strict=True):
        torch.testing.assert_close(leaf.grad, w, **DOUBLE)


NO_DOUBLE_BACKWARD = ("PixelShuffleBackward (fused)", "MaxPool2DWithIndicesBackward",
                      "MaxUnpool2DBackward", "BnPreluBackward")


@pytest.mark.filterwarnings("ignore:Using backward.. with create_graph=True")
@pytest.mark.parametrize("name", RECORDED)
def test_compiled_autograd_double_backward_as_eager(name):
    # With create_graph the compiled graph records its ops, the nodes' backward ops among them:
    # differentiable again where eager's is, the same error where eager's raises.
    torch.manual_seed(0)
    y, _ = RECORDED[name]()
    leaves = _leaves(y)
    grads = torch.autograd.grad(y.square().sum(), leaves, create_graph=True)
    torch.manual_seed(0)
    y, _ = RECORDED[name]()
    compiled_leaves = _leaves(y)
    _compiled_backward(y.square().sum(), create_graph=True)
    compiled_grads = []
    for leaf, g in zip(compiled_leaves, grads, strict=True):
        torch.testing.assert_close(leaf.grad, g, **DOUBLE)
        compiled_grads.append(leaf.grad)
        leaf.grad = None
    if name in NO_DOUBLE_BACKWARD:
        with pytest.raises(RuntimeError, match="differentiate twice pyimg::"):
            _compiled_backward(sum(g.sum() for g in compiled_grads))
        return
    second = torch.autograd.grad(sum(g.sum() for g in grads), leaves, allow_unused=True)
    _compiled_backward(sum(g.sum() for g in compiled_grads))
    for leaf, want in zip(compiled_leaves, second, strict=True):
        if want is None:
            assert leaf.grad is None
        else:
            torch.testing.assert_close(leaf.grad, want, **DOUBLE)


def test_compiled_autograd_checks_saved_tensor_versions():
    y, saved = RECORDED["MaxUnpool2DBackward"]()
    with torch.no_grad():
        saved["x"].add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        _compiled_backward(y.sum())


class _NodesStack(torch.nn.Module):
    """The C++ nodes in one training-mode model: ResidualBlock (bn_prelu with PReLU and with
    the residual; it takes batch_norm_stats of a detached x, their gradient being within
    bn_prelu's), max pool and unpool with compact indices, UpsampleBlock (pixel_shuffle with
    bias and PReLU), pixel_unshuffle."""

    def __init__(self, channels=4):
        super().__init__()
        self.block = ResidualBlock(channels, prelu_parameters=channels)
        self.pool = MaxPool2d(2, return_indices=True, compact_indices=True)
        self.unpool = MaxUnpool2d(2)
        self.up = UpsampleBlock(channels, 2)
        self.down = PixelUnshuffle(2)
        self.head = torch.nn.Conv2d(channels * 4, channels, 1)

    def forward(self, x):
        y = self.block(x)
        pooled, indices = self.pool(y)
        y = self.unpool(pooled, indices, output_size=y.shape[-2:])
        return self.head(self.down(self.up(y)))


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_autograd_model_matches_eager(device):
    compiled_autograd.reset()  # a graph cached by an earlier test would hide the capture
    torch.manual_seed(0)
    model = _NodesStack().to(device).train()
    twin = copy.deepcopy(model)
    captures = []
    # A second size: the graph's sizes are inputs (symbolic), the window's input_size among
    # them; whether compiled autograd reuses its graph or captures again, the gradients match.
    for shape in ((2, 4, 8, 6), (3, 4, 10, 12)):
        x = torch.randn(shape, device=device).contiguous(memory_format=torch.channels_last)
        x_eager, x_compiled = x.clone().requires_grad_(), x.clone().requires_grad_()
        model(x_eager).square().mean().backward()
        y = twin(x_compiled)
        assert {"pyimg::BnPreluBackward",
                "pyimg::MaxPool2DWithIndicesBackward", "pyimg::MaxUnpool2DBackward",
                "pyimg::PixelShuffleBackward", "pyimg::PixelUnshuffleBackward"} \
            <= {node.name() for node in _graph_nodes(y)}
        # aot_eager: AOTAutograd traces the nodes' backward into aten and pyimg ops.
        captures.append(_compiled_backward(y.square().mean(), "aot_eager"))
        torch.testing.assert_close(x_compiled.grad, x_eager.grad)
        for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(q.grad, p.grad, msg=name)
        model.zero_grad()
        twin.zero_grad()
    assert captures[0] == 1
