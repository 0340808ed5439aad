"""`pyimg upscale`'s command line: help, argument errors as one line, the summary."""

import pytest

from pyimg.cli import main


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["upscale", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--model", "--weights", "--tile", "--overlap", "--pix-fmt", "--frames",
                   "--crf", "--bitrate", "--report", "--sample", "torchrun"):
        assert option in text


def test_input_and_output_are_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["upscale", "only_one.mp4"])
    assert exit_info.value.code == 2
    assert "give INPUT and OUTPUT" in capsys.readouterr().err


def test_bad_option_values_are_one_line(capsys, clip, tmp_path):
    source, _ = clip("in.mp4", frames=2, audio=False)
    cases = [(["--frames", "9:3"], "--frames '9:3': needs 0 <= START < STOP"),
             (["--device", "cuda:7"], "--device cuda:7: no CUDA device is visible"),
             (["--batch", "0"], "--batch must be positive"),
             (["--bitrate", "fast"], "--bitrate 'fast': expected a number"),
             (["--codec", "nosuchcodec"], "--codec nosuchcodec: no such encoder")]
    for extra, message in cases:
        status = main(["upscale", str(source), str(tmp_path / "out.mp4"), "--model", "bicubic",
                       "--quiet", *extra])
        err = capsys.readouterr().err.strip()
        assert status == 2 and message in err and "\n" not in err, (extra, err)


def test_summary_names_every_stage(capsys, clip, tmp_path):
    source, _ = clip("in.mp4", frames=3, audio=False)
    assert main(["upscale", str(source), str(tmp_path / "out.mp4"), "--model", "bicubic"]) == 0
    err = capsys.readouterr().err
    assert "fps end to end" in err
    for stage in ("decode", "upload", "model", "download", "encode"):
        assert f"  {stage}" in err
