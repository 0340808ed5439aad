"""The trainer's parts on their own: recipes and overrides, schedules, EMA, atomic
checkpoints and safetensors weights."""

import math

import pytest
import torch

from pyimg.atomic import write_atomically
from pyimg.train import checkpoint as ckpt
from pyimg.train import list_recipes, load_config
from pyimg.train.config import parse_override
from pyimg.train.ema import EMA
from pyimg.train.schedule import LRFactor, build_scheduler


def test_recipes_load_and_overrides_apply():
    assert {"espcn", "srresnet", "unet", "pix2pix", "cyclegan", "dcgan"} <= set(list_recipes())
    config = load_config("espcn", ["scale=2", "optimizers.model.lr=5e-4",
                                   "model.kwargs.channels=32", "data.degradations.noise=[1, 5]",
                                   "schedule.min_factor=0.1"])
    assert config["scale"] == 2 and config["optimizers"]["model"]["lr"] == 5e-4
    assert config["model"]["kwargs"] == {"channels": 32}
    assert config["data"]["degradations"] == {"noise": [1, 5]}
    assert config["steps"] > 0 and config["seed"] == 0  # the trainer's defaults filled in
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("name=hello") == (["name"], "hello")
    assert parse_override("lr=1e-4") == (["lr"], 1e-4)  # YAML 1.1 alone would give text
    assert parse_override("path=runs/x") == (["path"], "runs/x")


@pytest.mark.parametrize(("override", "message"), [
    ("scal=2", "unknown setting 'scal'"),
    ("lr=1", r"did you mean 'optimizers\.model\.lr'"),
    ("scale", "key=value"),
    ("scale.x=1", "not a group"),
])
def test_bad_overrides_are_named(override, message):
    with pytest.raises(ValueError, match=message):
        load_config("espcn", [override])


def test_unknown_recipe_and_bad_file(tmp_path):
    with pytest.raises(ValueError, match=r"unknown recipe 'nope'.*espcn"):
        load_config("nope")
    (tmp_path / "r.yaml").write_text("[1, 2")
    with pytest.raises(ValueError, match=r"r\.yaml: not valid YAML"):
        load_config(tmp_path / "r.yaml")
    with pytest.raises(OSError, match="no such recipe"):
        load_config(tmp_path / "missing.yaml")


def test_schedules():
    assert LRFactor(100)(50) == 1.0
    step = LRFactor(100, "step", milestones=[10, 20], gamma=0.5)
    assert [step(s) for s in (9, 10, 19, 20, 99)] == [1, 0.5, 0.5, 0.25, 0.25]
    cosine = LRFactor(100, "cosine", min_factor=0.1)
    assert cosine(0) == 1.0 and cosine(100) == pytest.approx(0.1)
    assert cosine(50) == pytest.approx(0.55)
    linear = LRFactor(100, "linear", decay_start=60)
    assert linear(59) == 1.0 and linear(80) == pytest.approx(0.5) and linear(100) == 0.0
    warm = LRFactor(100, "cosine", warmup=4)
    assert [warm(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError, match=r"schedule\.name"):
        LRFactor(10, "exp")
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
    scheduler = build_scheduler(optimizer, 100, {"name": "step", "milestones": [1]})
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown schedule settings"):
        build_scheduler(optimizer, 10, {"name": "step", "gama": 2})


def test_ema_follows_the_weights():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(model, 0.75)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(4.0)
    model[1].num_batches_tracked += 3
    ema.update(model)
    torch.testing.assert_close(ema.model[0].weight, start + 1.0)
    assert ema.model[1].num_batches_tracked.item() == 3  # buffers copied
    assert not any(p.requires_grad for p in ema.model.parameters())
    with pytest.raises(ValueError, match="decay"):
        EMA(model, 1.0)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "state.pt"
    ckpt.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(path, fail)
    assert ckpt.load_checkpoint(path)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind


def test_checkpoints_load_without_unpickling_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": ckpt.FORMAT, "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(OSError, match=r"evil\.pt: not a readable pyimg checkpoint"):
        ckpt.load_checkpoint(tmp_path / "evil.pt")
    torch.save({"step": 1}, tmp_path / "other.pt")
    with pytest.raises(OSError, match="not a pyimg checkpoint"):
        ckpt.load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(OSError, match="no such checkpoint"):
        ckpt.load_checkpoint(tmp_path / "none.pt")


def test_rng_state_round_trip():
    state = ckpt.rng_state()
    import random

    import numpy as np

    a = (torch.rand(3), np.random.rand(3), random.random())
    ckpt.set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]


def test_weights_files_with_metadata(tmp_path):
    tensors = {"w": torch.arange(6.0).view(2, 3).t(), "b": torch.zeros(2)}
    ckpt.save_weights(tensors, tmp_path / "w.safetensors", {"scale": "3"})
    loaded, meta = ckpt.load_weights(tmp_path / "w.safetensors")
    assert torch.equal(loaded["w"], tensors["w"]) and meta == {"scale": "3"}
    with pytest.raises(ValueError, match="strings"):
        ckpt.save_weights(tensors, tmp_path / "x.safetensors", {"scale": 3})
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(OSError, match=r"bad\.safetensors"):
        ckpt.load_weights(tmp_path / "bad.safetensors")
    assert not math.isnan(loaded["b"].sum())
