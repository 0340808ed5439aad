"""`pyimg train`: lists and shows recipes, trains, and reports bad input in one line."""

import pytest

from pyimg.cli import main
from pyimg.train.checkpoint import load_weights


def test_list_and_show(capsys):
    assert main(["train", "--list"]) == 0
    assert "espcn" in capsys.readouterr().out.split()
    assert main(["train", "espcn", "scale=2", "--show"]) == 0
    out = capsys.readouterr().out
    assert "scale: 2" in out and "task: pixel" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "nope"], "unknown recipe 'nope'"),
    (["train", "espcn", "scal=3"], "unknown setting 'scal'"),
    (["train"], "give a recipe"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("pyimg train: error:")


def test_train_records_its_command(tmp_path, smoke, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "espcn", *smoke("espcn"), "steps=2", "--run-dir", str(run_dir),
            "--no-progress"]
    assert main(argv) == 0
    assert "step 2" in capsys.readouterr().out
    _, meta = load_weights(run_dir / "last.safetensors")
    assert meta["command"] == "pyimg train " + " ".join(argv[1:-1])
    assert float(meta["wall_time_s"]) >= 0 and meta["machine"]


def test_bad_training_images_are_named_or_skipped(tmp_path, smoke, capsys):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    argv = ["train", "espcn", *smoke("espcn"), "steps=2", f"data.train={folder}",
            "--no-progress"]
    assert main([*argv, "--run-dir", str(tmp_path / "a")]) == 2
    assert "broken.png" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        assert main([*argv, "data.skip_bad=true", "--run-dir", str(tmp_path / "b")]) == 0
