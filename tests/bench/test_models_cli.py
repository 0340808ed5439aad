"""`pyimg bench models`: zoo models, a user's model (file.py:factory), safetensors weights,
inference and a training step, and clear errors for bad input."""

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from pyimg import models
from pyimg.bench import zoo

TINY_ESPCN = json.dumps({"channels": 8})
USER_MODEL = '''
from torch import nn


def make(width=8):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, 12, 3, padding=1), nn.PixelShuffle(2))


def not_a_model():
    return 42
'''


def rows_of(folder):
    return json.loads(next(Path(folder).glob("*.json")).read_text())["rows"]


def test_zoo_model_inference_and_train_step(cli, fast, tmp_path):
    status, output = cli("bench", "models", "espcn", "--model-kwargs", TINY_ESPCN,
                         "--size", "10x12", "--batch", "2", "--mode", "inference", "train",
                         "--no-compile", "--device", "cpu", "--out", tmp_path, "--no-plot", *fast)
    assert status == 0, output
    rows = rows_of(tmp_path)
    assert [(r["suite"], r["case"], r["mode"], r["variant"]) for r in rows] == [
        ("ESPCN", "b2 10x12 fp32 NCHW", mode, variant)
        for mode in ("inference", "train step")
        for variant in ("stock", "pyimg", "pyimg converted")]  # convert fuses conv + shuffle
    for r in rows:
        assert r["error"] is None and r["images"] == 2
        assert r["megapixels"] == pytest.approx(2 * 30 * 36 / 1e6)  # ESPCN's output, r = 3
        assert r["fps"] == pytest.approx(2 / (r["p50_us"] * 1e-6))
        assert r["tflops"] > 0 and r["peak_memory_bytes"] is not None
    pyimg_train = rows[4]
    assert pyimg_train["flops"] == 3 * rows[1]["flops"]
    assert pyimg_train["vs_stock"] == pytest.approx(rows[3]["p50_us"] / pyimg_train["p50_us"])
    assert next(Path(tmp_path).glob("models_*.md")).read_text().count("### ESPCN") == 1


def test_weights_load_and_a_mismatch_is_a_clear_error(cli, fast, tmp_path):
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    save_file(models.create("ESPCN", channels=8).state_dict(), str(good))
    save_file(models.create("ESPCN", channels=4).state_dict(), str(bad))
    common = ["bench", "models", "ESPCN", "--model-kwargs", TINY_ESPCN, "--size", "8",
              "--no-compile", "--variants", "stock", "--no-plot", *fast]
    assert cli(*common, "--weights", good, "--out", tmp_path / "a")[0] == 0
    status, _ = cli(*common, "--weights", bad, "--out", tmp_path / "b")
    assert status == 1  # the case failed; its row says why
    (row,) = rows_of(tmp_path / "b")
    assert f"{bad} does not fit ESPCN" in row["error"] and "size mismatch" in row["error"]


def test_a_users_model_against_its_converted_self(cli, fast, tmp_path):
    (tmp_path / "net.py").write_text(textwrap.dedent(USER_MODEL))
    reference = f"{tmp_path / 'net.py'}:make"
    status, output = cli("bench", "models", reference, "--model-kwargs", '{"width": 4}',
                         "--size", "9", "--layout", "nchw", "cl", "--no-compile",
                         "--device", "cpu", "--out", tmp_path / "out", "--no-plot", *fast)
    assert status == 0, output
    rows = rows_of(tmp_path / "out")
    assert {r["suite"] for r in rows} == {"net.py:make"}
    assert {(r["case"], r["variant"]) for r in rows} == {
        (f"b1 9x9 fp32 {layout}", variant) for layout in ("NCHW", "CL")
        for variant in ("stock", "pyimg converted")}
    assert all(r["error"] is None and r["vs_stock"] > 0 for r in rows)
    assert rows[0]["megapixels"] == pytest.approx(18 * 18 / 1e6)


@pytest.mark.parametrize(("args", "message"), [
    (["NoSuchNet"], "unknown model 'NoSuchNet'; the zoo has"),
    (["missing.py:make"], "missing.py:make: no such file"),
    (["ESPCN", "--model-kwargs", "{bad"], "--model-kwargs is not JSON"),
    (["ESPCN", "--size", "0"], "bad --size '0'"),
    (["ESPCN", "--dtype", "int7"], "unknown dtype 'int7'"),
    (["ESPCN", "--variants", "turbo"], "unknown variant(s) ['turbo']"),
    (["ESPCN", "VDSR", "--weights", "w.safetensors"], "--weights needs exactly one model"),
    (["--task", "painting"], "unknown task(s) ['painting']"),
])
def test_bad_input_is_one_clear_line(cli, tmp_path, args, message):
    status, output = cli("bench", "models", *args, "--out", tmp_path)
    assert status == 2
    assert message in output and "Traceback" not in output


def test_a_factory_that_returns_no_module_fails_its_case(cli, fast, tmp_path):
    (tmp_path / "net.py").write_text(textwrap.dedent(USER_MODEL))
    status, _ = cli("bench", "models", f"{tmp_path / 'net.py'}:not_a_model", "--size", "8",
                    "--no-compile", "--out", tmp_path / "out", "--no-plot", *fast)
    assert status == 1
    (row,) = rows_of(tmp_path / "out")
    assert "returned int, not a torch.nn.Module" in row["error"]


def test_tasks_name_the_zoo_models():
    assert zoo.models_of(["super-resolution"]) == ["ESPCN", "SRResNet", "VDSR"]
    assert set(zoo.models_of(["segmentation"])) == {"FCN32s", "FCN16s", "FCN8s", "UNet",
                                                    "SegNet"}
    assert zoo.default_size("ESPCN") == (128, 128) and zoo.default_size("UNet") == (256, 256)


def _tiny_configurations():
    path = Path(__file__).parents[1] / "models" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_zoo_tiny", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TINY


@pytest.mark.parametrize("name", models.list_models())
def test_example_inputs_fit_every_zoo_model(name):
    kwargs = _tiny_configurations()[name].kwargs
    model = models.create(name, **kwargs).eval()
    inputs = zoo.example_inputs(model, kwargs, 2, (16, 20), torch.float32, torch.device("cpu"),
                                channels_last=True)
    with torch.no_grad():
        output = model(*inputs)
    assert output.shape[0] == 2
    assert all(x.is_contiguous(memory_format=torch.channels_last) for x in inputs
               if x.dim() == 4)


@pytest.mark.slow
def test_compiled_variants_of_a_zoo_model(cli, fast, tmp_path):
    status, output = cli("bench", "models", "ESPCN", "--model-kwargs", TINY_ESPCN, "--size", "8",
                         "--device", "cpu", "--out", tmp_path, "--no-plot", *fast)
    assert status == 0, output
    variants = {r["variant"]: r for r in rows_of(tmp_path)}
    assert set(variants) == {"stock", "stock compiled", "pyimg", "pyimg compiled",
                             "pyimg converted", "pyimg converted compiled"}
    assert variants["pyimg compiled"]["vs_compiled"] > 0
