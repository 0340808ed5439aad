"""What --model names: weights files with metadata, zoo architectures with weights,
FILE.py:FACTORY, shipped names; and the clear errors for each way that goes wrong."""

import pytest
import torch

from pyimg import models
from pyimg.models import ESPCN
from pyimg.video import load_model, save_weights


def test_weights_file_alone_is_a_model(espcn_weights):
    sr = load_model(str(espcn_weights))
    assert (sr.scale, sr.channels) == (2, "y")
    torch.manual_seed(0)  # as the fixture made it
    reference = ESPCN(2, channels=16).eval()
    x = torch.rand(1, 1, 9, 11)
    with torch.inference_mode():
        torch.testing.assert_close(sr.module(x), reference(x))


def test_zoo_architecture_with_weights(espcn_weights):
    sr = load_model("espcn", weights=str(espcn_weights), kwargs={"channels": 16})
    assert (sr.scale, sr.channels) == (2, "y")


def test_weights_that_do_not_fit_name_the_file(tmp_path):
    path = tmp_path / "x3.safetensors"
    save_weights(path, ESPCN(3), "ESPCN", {"upscale_factor": 3}, 3, "y")
    with pytest.raises(ValueError, match=r"x3\.safetensors: weights do not fit ESPCN"):
        load_model("espcn", weights=str(path), scale=2)


def test_scale_contradicting_the_model_is_refused(espcn_weights):
    with pytest.raises(ValueError, match="upscales by 2"):
        load_model(str(espcn_weights), scale=4)


def test_factory_file(tmp_path):
    source = tmp_path / "mine.py"
    source.write_text("import torch\n"
                      "def build():\n"
                      "    return torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1),\n"
                      "                               torch.nn.PixelShuffle(2))\n"
                      "def not_a_model():\n"
                      "    return 3\n")
    sr = load_model(f"{source}:build")
    assert (sr.scale, sr.channels) == (2, "rgb")
    with pytest.raises(ValueError, match=r"not a torch\.nn\.Module"):
        load_model(f"{source}:not_a_model")
    with pytest.raises(ValueError, match="has no function 'missing'"):
        load_model(f"{source}:missing")


def test_a_model_that_does_not_upscale_is_refused(tmp_path):
    source = tmp_path / "seg.py"
    source.write_text("import torch\n"
                      "def build():\n"
                      "    return torch.nn.Conv2d(3, 5, 3, padding=1)\n")
    with pytest.raises(ValueError, match="not an integer upscaling"):
        load_model(f"{source}:build")


def test_zoo_architecture_without_weights_is_refused():
    with pytest.raises(ValueError, match="give its weights"):
        load_model("espcn")


def test_missing_and_corrupt_weights_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.safetensors: no such weights file"):
        load_model(str(tmp_path / "nothere.safetensors"))
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"bad\.safetensors: not a readable safetensors file"):
        load_model(str(corrupt))


def test_unknown_spec_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown model 'nonsense'.*zoo architecture"):
        load_model("nonsense")


@pytest.mark.skipif(hasattr(models, "pretrained"), reason="shipped weights are present")
def test_shipped_name_without_shipped_weights_is_a_clear_error():
    with pytest.raises(ValueError, match="shipped model 'espcn-x2' is not available"):
        load_model("espcn-x2")


@pytest.mark.skipif(not hasattr(models, "pretrained"), reason="no shipped weights yet")
@pytest.mark.parametrize("name", ["espcn-x2", "espcn-x3", "espcn-x4"])
def test_shipped_espcn(name):
    sr = load_model(name)
    assert sr.scale == int(name[-1]) and sr.channels == "y"


def test_bicubic_baseline():
    sr = load_model("bicubic", scale=3)
    assert sr.scale == 3
    assert sr.module(torch.rand(1, 1, 4, 5)).shape == (1, 1, 12, 15)


def test_shipped_name_through_the_pretrained_interface(monkeypatch):
    """pyimg.models.pretrained / pretrained_info / list_pretrained, as the zoo will ship
    them (stood in for here): the name loads with its scale and channels; a load failure is
    a clear error naming the model."""
    def pretrained(name):
        if name == "espcn-x4":
            raise FileNotFoundError("espcn-x4.safetensors is missing")
        return ESPCN(int(name[-1])).eval()

    def pretrained_info(name):
        return {"architecture": "ESPCN", "kwargs": {"upscale_factor": int(name[-1])},
                "scale": int(name[-1]), "channels": "y"}

    monkeypatch.setattr(models, "pretrained", pretrained, raising=False)
    monkeypatch.setattr(models, "pretrained_info", pretrained_info, raising=False)
    monkeypatch.setattr(models, "list_pretrained", lambda: ["espcn-x2", "espcn-x3", "espcn-x4"],
                        raising=False)
    sr = load_model("espcn-x3")
    assert (sr.scale, sr.channels, sr.name) == (3, "y", "espcn-x3")
    with pytest.raises(OSError, match="shipped model 'espcn-x4': its weights could not be"):
        load_model("espcn-x4")
    with pytest.raises(ValueError, match="unknown shipped model 'espcn-x8'"):
        load_model("espcn-x8")
