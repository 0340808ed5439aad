"""pyimg.nn pooling modules against the stock modules they replace, and the compact (uint8)
indices SegNet keeps between its encoder's pools and its decoder's unpools."""

import pytest
import torch
from torch import nn

import pyimg


@pytest.mark.parametrize("memory_format", (torch.contiguous_format, torch.channels_last))
def test_drop_in_modules_match_stock(memory_format):
    x = torch.randn(2, 3, 9, 7).contiguous(memory_format=memory_format)
    ours_pool = pyimg.nn.MaxPool2d(3, 2, 1, return_indices=True, ceil_mode=True)
    stock_pool = nn.MaxPool2d(3, 2, 1, return_indices=True, ceil_mode=True)
    assert isinstance(ours_pool, nn.MaxPool2d)
    assert repr(ours_pool) == repr(stock_pool)
    (y, i), (y_ref, i_ref) = ours_pool(x), stock_pool(x)
    assert torch.equal(y, y_ref) and torch.equal(i, i_ref)
    assert y.is_contiguous(memory_format=memory_format)
    assert torch.equal(pyimg.nn.MaxPool2d(2)(x), nn.MaxPool2d(2)(x))

    x2 = torch.randn(2, 3, 8, 6)
    y2, i2 = nn.MaxPool2d(2, return_indices=True)(x2)
    ours_unpool, stock_unpool = pyimg.nn.MaxUnpool2d(2), nn.MaxUnpool2d(2)
    assert isinstance(ours_unpool, nn.MaxUnpool2d) and repr(ours_unpool) == repr(stock_unpool)
    assert ours_unpool.state_dict().keys() == stock_unpool.state_dict().keys()
    assert torch.equal(ours_unpool(y2, i2), stock_unpool(y2, i2))
    assert torch.equal(ours_unpool(y2, i2, output_size=(9, 7)),
                       stock_unpool(y2, i2, output_size=(9, 7)))


@pytest.mark.parametrize("size", ((8, 8), (9, 7), (5, 3)))
def test_compact_indices_round_trip_the_maxima(size):
    pool = pyimg.nn.MaxPool2d(2, return_indices=True, compact_indices=True)
    x = torch.randn(2, 4, *size, requires_grad=True)
    y, indices = pool(x)
    assert indices.dtype == torch.uint8
    out = pyimg.nn.MaxUnpool2d(2)(y, indices, output_size=size)
    y_ref, i_ref = nn.MaxPool2d(2, return_indices=True)(x)
    expected = nn.MaxUnpool2d(2)(y_ref, i_ref, output_size=size)
    assert torch.equal(out, expected)
    out.sum().backward()
    # Each window's maximum, and only it, receives a gradient.
    assert x.grad.sum().item() == y.numel() and torch.equal(x.grad != 0, expected != 0)


def test_compact_pool_and_unpool_compile_fullgraph():
    pool = pyimg.nn.MaxPool2d(2, return_indices=True, compact_indices=True)
    unpool = pyimg.nn.MaxUnpool2d(2)

    def round_trip(x):
        return unpool(*pool(x), output_size=x.shape[-2:])

    fn = torch.compile(round_trip, fullgraph=True, backend="aot_eager")
    x = torch.randn(1, 3, 7, 6)
    torch.testing.assert_close(fn(x), round_trip(x))
