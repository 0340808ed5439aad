"""Whole-graph CUDA capture: on the cuda backend no op syncs with the device or allocates
from a value it must read back (unpool checks its indices on the device, with a device-side
assert and a flag its fix-up kernel reads), so ops and models built from pyimg's modules
capture in one ``torch.cuda.graph`` with sync debugging set to error, and replaying the
graph on new inputs gives the eager results. The triton and torch backends' unpool, which
check indices on the host outside a capture, check them on the device inside one."""

import pytest
import torch

import pyimg
from pyimg.models.segnet import SegNet
from pyimg.models.super_resolution import ESPCN, SRResNet

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def _captured(fn, inputs):
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):  # the allocator's pools and cuDNN's algorithm choice, before capture
            fn(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.cuda.graph(graph):
            out = fn(*inputs)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return graph, out


def _replays_like_eager(fn, make_inputs):
    static = make_inputs()
    graph, out = _captured(fn, static)
    for _ in range(2):
        fresh = make_inputs()
        for s, f in zip(static, fresh, strict=True):
            s.copy_(f)
        graph.replay()
        expected = fn(*fresh)
        for got, want in zip(*(o if isinstance(o, tuple) else (o,) for o in (out, expected)),
                             strict=True):
            torch.testing.assert_close(got, want)


def _randn(*shape):
    return torch.randn(*shape, device="cuda")


def _pooled(x):
    return pyimg.ops.max_pool2d_with_indices(x, 2)


OPS = {
    "pixel_shuffle": (lambda x, b, a: pyimg.ops.pixel_shuffle(x, 2, b, "prelu", a),
                      lambda: (_randn(2, 16, 9, 7), _randn(16), _randn(4))),
    "pixel_unshuffle": (lambda x: pyimg.ops.pixel_unshuffle(x, 2), lambda: (_randn(2, 4, 8, 6),)),
    "max_pool": (_pooled, lambda: (_randn(2, 8, 9, 7),)),
    "max_pool_unpool": (lambda x: pyimg.ops.max_unpool2d(*_pooled(x), 2, output_size=(9, 7)),
                        lambda: (_randn(2, 8, 9, 7),)),
    "batch_norm_prelu": (lambda x, m, v: pyimg.ops.batch_norm_prelu(x, m, v, None, None,
                                                                    torch.ones(1, device="cuda")),
                         lambda: (_randn(2, 8, 5, 5), _randn(8), _randn(8).abs() + 0.5)),
    "batch_norm_add": (lambda x, r, m, v: pyimg.ops.batch_norm_add(x, r, m, v),
                       lambda: (_randn(2, 8, 5, 5), _randn(2, 8, 5, 5), _randn(8),
                                _randn(8).abs() + 0.5)),
    "conv2d_epilogue": (lambda x, w, s, t, r: pyimg.ops.conv2d(
        x, w, None, padding=1, scale=s, shift=t, activation="relu", residual=r),
        lambda: (_randn(2, 8, 9, 7), _randn(8, 8, 3, 3), _randn(8), _randn(8),
                 _randn(2, 8, 9, 7))),
    "depthwise_dilated": (lambda x, w: pyimg.ops.dilated_conv2d(x, w, dilation=2, padding=2,
                                                                groups=8, activation="relu"),
                          lambda: (_randn(2, 8, 9, 7), _randn(8, 1, 3, 3))),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_captures_and_replays(name):
    fn, make_inputs = OPS[name]
    with torch.no_grad():
        _replays_like_eager(fn, make_inputs)


@pytest.mark.parametrize("backend", ("cuda", "triton", "torch"))
def test_unpool_captures_on_every_backend(backend):
    fn, make_inputs = OPS["max_pool_unpool"]
    with torch.no_grad(), pyimg.use_backend(backend):
        _replays_like_eager(fn, make_inputs)


MODELS = {
    "espcn_x2": (lambda: ESPCN(2), (1, 1, 36, 28)),
    "srresnet_x4": (lambda: SRResNet(4, num_blocks=2), (1, 3, 24, 20)),
    "segnet": (lambda: SegNet(width=0.125), (1, 3, 64, 64)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_captures_and_replays(name):
    build, shape = MODELS[name]
    model = build().cuda().eval()
    with torch.no_grad():
        _replays_like_eager(model, lambda: (_randn(*shape),))
