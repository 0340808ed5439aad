"""What every zoo model must do: any input size, training, state_dict round trip, convert()
equivalence; and the registry listing exactly the eighteen models of the zoo (ZOO_MODELS)."""

import io

import pytest
import torch
from torch import nn

from pyimg import models
from pyimg.conversion import convert_with_report

ZOO_MODELS = {
    "FCN32s", "FCN16s", "FCN8s", "UNet", "SegNet", "ESPCN", "VDSR", "SRResNet",
    "SRGANDiscriminator", "REDNet30", "Pix2PixGenerator", "PatchGANDiscriminator",
    "CycleGANGenerator", "FastStyleNet", "DenoisingAutoencoder", "DCGANGenerator",
    "DCGANDiscriminator", "ColorizationNet",
}


def test_registry_lists_and_creates_every_model(tiny_specs):
    assert set(models.list_models()) == ZOO_MODELS == set(tiny_specs)
    for name in ZOO_MODELS:
        model = models.create(name.lower(), **tiny_specs[name].kwargs)
        assert type(model).__name__ == name
    with pytest.raises(ValueError, match="UNet"):
        models.create("no-such-model")


def test_docstrings_name_paper_configuration_and_input_size():
    for name in ZOO_MODELS:
        doc = " ".join(getattr(models, name).__doc__.split())
        assert "Input size" in doc or "Input:" in doc, name
        assert any(str(year) in doc for year in range(2008, 2018)), name


# Odd, tiny and non-multiple-of-2^k sizes: every model must take them.
SIZES = [(1, 1), (5, 7), (13, 16), (24, 19)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_output_shape_at_any_size(tiny, size):
    name, model, spec = tiny
    model.eval()
    with torch.no_grad():
        out = model(*spec.inputs(2, *size))
    assert out.shape == spec.out_shape(2, *size), name
    assert torch.isfinite(out).all()


def test_few_optimizer_steps_lower_the_loss(tiny):
    name, model, spec = tiny
    model.train()
    inputs = spec.inputs(2, 12, 12)
    target = torch.rand(spec.out_shape(2, 12, 12)) * 0.5
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        torch.manual_seed(1)  # the same dropout masks each step
        loss = nn.functional.mse_loss(model(*inputs), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], (name, losses)


def test_state_dict_round_trip(tiny):
    name, model, spec = tiny
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    torch.manual_seed(123)
    fresh = models.create(name, **spec.kwargs)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    inputs = spec.inputs(2, 9, 10)
    with torch.no_grad():
        assert torch.equal(model.eval()(*inputs), fresh.eval()(*inputs))


def test_convert_keeps_outputs_and_state_dict(tiny):
    name, model, spec = tiny
    model.eval()
    converted, report = convert_with_report(model)
    assert converted.state_dict().keys() == model.state_dict().keys()
    model.load_state_dict(converted.state_dict())
    converted.load_state_dict(model.state_dict())
    inputs = spec.inputs(2, 9, 10)
    with torch.no_grad():
        torch.testing.assert_close(converted(*inputs), model(*inputs))
    assert report.fused or report.left_alone, name  # the report accounts for its layers
