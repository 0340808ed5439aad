"""torch.compile on two small zoo models, one on pyimg's fused pixel-shuffle op (aot_eager
traces through the op's fake kernel and autograd registration without a C++ compiler)."""

import pytest
import torch

from pyimg import models


@pytest.mark.parametrize("name", ["ESPCN", "SRResNet"])
def test_compiled_forward_and_backward_match_eager(name, tiny_specs):
    torch.manual_seed(0)
    model = models.create(name, **tiny_specs[name].kwargs).eval()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    (x,) = tiny_specs[name].inputs(2, 5, 6)
    x.requires_grad_(True)
    expected = model(x)
    (grad,) = torch.autograd.grad(expected.sum(), x)
    actual = compiled(x)
    (compiled_grad,) = torch.autograd.grad(actual.sum(), x)
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(compiled_grad, grad)
