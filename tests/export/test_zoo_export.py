"""Every zoo model, before and after pyimg.convert: torch.export with a dynamic batch, height and
width, the program equal to eager at other sizes than the example's; ONNX through the stock
dynamo exporter with pyimg's translations, onnxruntime equal to eager; save / load round
trips. The default run exports every stock model and the converted models whose graphs hold
every pyimg op and sizing path; ``-m slow`` the rest."""

import io
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from export.conftest import MIN_SIZE, TINY, exported, randomized, sizes

import pyimg
import pyimg.export
from pyimg import models

# The default run exports the stock models whose sizing code differs (the rest repeat a
# path: FCN-16s/32s FCN-8s's, ColorizationNet DCGANDiscriminator's padding, FastStyleNet and
# CycleGAN mirror padding, REDNet30 PatchGAN's minimum size) and the converted models whose
# graphs hold every pyimg op: compact max-pool indices and unpool, conv + BN + ReLU, padding
# and cropping (SegNet); residual and sub-pixel conv epilogues (SRResNet); tiles, transposed
# convolutions and centre crops (UNet); adaptive pooling (DCGANDiscriminator); the conv +
# pixel shuffle store (ESPCN). ``-m slow`` runs every model both ways, to ONNX too.
EXPORT_STOCK_SLOW = {"ColorizationNet", "REDNet30", "FCN16s", "FCN32s", "FastStyleNet",
                     "CycleGANGenerator"}
EXPORT_STOCK_DEFAULT = set(MIN_SIZE) - EXPORT_STOCK_SLOW
CONVERTED_DEFAULT = {"SegNet", "SRResNet", "UNet", "DCGANDiscriminator", "ESPCN"}
ONNX_STOCK_DEFAULT = {"ESPCN", "VDSR", "PatchGANDiscriminator"}
ONNX_CONVERTED_DEFAULT = {"SegNet", "SRResNet", "DCGANDiscriminator"}


def params(default: set[str]):
    return [pytest.param(name, marks=[] if name in default else [pytest.mark.slow])
            for name in sorted(MIN_SIZE)]


def inputs(name, n, h, w):
    torch.manual_seed(n * 1000 + h * 10 + w)
    return TINY[name].inputs(n, h, w)


def check_program(name: str, converted: bool):
    model, program = exported(name, converted)
    for n, h, w in sizes(name):
        args = inputs(name, n, h, w)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(*args), model(*args))


@pytest.mark.parametrize("name", params(EXPORT_STOCK_DEFAULT))
def test_stock_model_exports_with_dynamic_batch_height_width(name):
    check_program(name, converted=False)


@pytest.mark.parametrize("name", params(CONVERTED_DEFAULT))
def test_converted_model_exports_with_dynamic_batch_height_width(name):
    check_program(name, converted=True)


def onnx_error(name: str, converted: bool) -> float:
    """Max abs difference of onnxruntime from eager over the check sizes."""
    model, program = exported(name, converted)
    with torch.no_grad(), io.StringIO() as log:
        sys.stdout, stdout = log, sys.stdout  # the exporter prints its progress
        try:
            onnx_program = torch.onnx.export(
                program, inputs(name, 2, MIN_SIZE[name], MIN_SIZE[name]), dynamo=True,
                custom_translation_table=pyimg.export.TRANSLATIONS)
        finally:
            sys.stdout = stdout
    session = onnxruntime.InferenceSession(onnx_program.model_proto.SerializeToString())
    error = 0.0
    for n, h, w in sizes(name):
        args = inputs(name, n, h, w)
        feed = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args, strict=True)}
        (actual,) = session.run(None, feed)
        with torch.no_grad():
            expected = model(*args)
        assert actual.shape == tuple(expected.shape)
        # onnxruntime's convolutions sum in another order than oneDNN's.
        np.testing.assert_allclose(actual, expected.numpy(), atol=1e-5, rtol=1e-4)
        error = max(error, float(np.abs(actual - expected.numpy()).max()))
    print(f"ONNX {name}{' converted' if converted else ''}: max abs error {error:.2e}")
    return error


@pytest.mark.parametrize("name", params(ONNX_STOCK_DEFAULT))
def test_stock_model_to_onnx(name):
    onnx_error(name, converted=False)


@pytest.mark.parametrize("name", params(ONNX_CONVERTED_DEFAULT))
def test_converted_model_to_onnx(name):
    onnx_error(name, converted=True)


def test_to_onnx_writes_a_file_onnxruntime_runs(tmp_path):
    model, _ = exported("ESPCN", True)
    path = tmp_path / "espcn.onnx"
    with io.StringIO() as log:
        sys.stdout, stdout = log, sys.stdout
        try:
            pyimg.export.to_onnx(model, inputs("ESPCN", 2, 5, 6), path, min_size=2)
        finally:
            sys.stdout = stdout
    assert [p.name for p in tmp_path.iterdir()] == ["espcn.onnx"]  # no temporary left
    session = onnxruntime.InferenceSession(str(path))
    (x,) = inputs("ESPCN", 1, 7, 3)
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"input_0": x.numpy()})[0],
                                   model(x).numpy(), atol=1e-5, rtol=1e-4)


def test_saved_program_loads_back(tmp_path):
    model, program = exported("SRResNet", True)
    assert {"bn_prelu", "pixel_shuffle"} <= set(pyimg.export.pyimg_ops(program))
    loaded = torch.export.load(pyimg.export.save(program, tmp_path / "srresnet.pt2"))
    (x,) = inputs("SRResNet", 2, 9, 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module()(x), model(x))


# -- the paper configurations ---------------------------------------------------------------

# (input channels, or the latent size of DCGAN's generator; smallest side) of each model at
# its paper configuration.
PAPER = {
    "ColorizationNet": (1, 9), "CycleGANGenerator": (3, 2), "DCGANDiscriminator": (3, 17),
    "DCGANGenerator": (100, 0), "DenoisingAutoencoder": (1, 9), "ESPCN": (1, 2),
    "FCN8s": (3, 27), "FCN16s": (3, 27), "FCN32s": (3, 27), "FastStyleNet": (3, 5),
    "PatchGANDiscriminator": (3, 32), "Pix2PixGenerator": (3, 257), "REDNet30": (1, 32),
    "SRGANDiscriminator": (3, 17), "SRResNet": (3, 2), "SegNet": (3, 33), "UNet": (1, 2),
    "VDSR": (1, 2),
}


def paper_inputs(name, n, h, w):
    channels, _ = PAPER[name]
    if name == "DCGANGenerator":
        return (torch.randn(n, channels),)
    if name == "PatchGANDiscriminator":
        return torch.rand(n, channels, h, w), torch.rand(n, channels, h, w)
    return (torch.rand(n, channels, h, w),)


@pytest.mark.slow
@pytest.mark.parametrize("converted", [False, True], ids=["stock", "converted"])
@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_configuration_exports(name, converted):
    torch.manual_seed(0)
    # pix2pix's dropout stays on at test time in the paper: off, for comparable outputs.
    kwargs = {"test_time_dropout": False} if name == "Pix2PixGenerator" else {}
    model = randomized(models.create(name, **kwargs))
    model = pyimg.convert(model) if converted else model
    low = max(PAPER[name][1], 2)
    program = pyimg.export.export(model, paper_inputs(name, 2, low + 3, low + 2),
                                  min_size=low)
    args = paper_inputs(name, 1, low, low + 5)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*args), model(*args), atol=1e-4,
                                   rtol=1e-4)
