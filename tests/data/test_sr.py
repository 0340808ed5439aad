"""Super-resolution pairs: the on-the-fly LR is exactly the whole image's MATLAB LR, flips
apply to both sides, DIV2K folders pair by name, and the evaluation protocol."""

import numpy as np
import pytest
import torch
from PIL import Image

from pyimg.data import ImageSource, PairedSR, SRPairs, eval_pair, imresize, paired_paths
from pyimg.data.augment import random_crop_box
from pyimg.data.sampler import sample_rng


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(61, 50), (47, 73)]):
        # Smooth content plus noise, so that crops differ everywhere.
        base = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[0], size[1], 3)
        image = np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)
        paths.append(tmp_path / f"photo{i}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", ["y", "rgb"])
def test_lr_crop_equals_whole_image_lr(photos, scale, channels):
    source = ImageSource(photos, channels)
    pairs = SRPairs(source, scale, 6 * scale, hflip=False, rot=False, quantize=False)
    for position in range(12):
        key = (position % 2, 0, position)
        item = pairs[key]
        image = source[position % 2]
        height, width = image.shape[-2] // scale * scale, image.shape[-1] // scale * scale
        whole = imresize(image[:, :height, :width], 1 / scale)
        top, left = random_crop_box(height, width, 6 * scale, sample_rng(key), step=scale)
        assert torch.equal(item["target"], image[:, top:top + 6 * scale, left:left + 6 * scale])
        lr = whole[:, top // scale:top // scale + 6, left // scale:left // scale + 6]
        torch.testing.assert_close(item["input"], lr, atol=2e-6, rtol=0)


def test_flips_apply_to_both_and_quantize(photos):
    source = ImageSource(photos, "rgb")
    plain = SRPairs(source, 2, 16, hflip=False, rot=False)
    augmented = SRPairs(source, 2, 16)
    transformed = 0
    for position in range(16):
        key = (0, 5, position)
        a, b = plain[key], augmented[key]
        draws = sample_rng(key)
        draws.integers(0, 100, 2)  # the crop's draws come first
        hflip, vflip, transpose = draws.random(3) < 0.5
        for name in ("input", "target"):
            expected = a[name]
            expected = expected.flip(-1) if hflip else expected
            expected = expected.flip(-2) if vflip else expected
            expected = expected.transpose(-2, -1) if transpose else expected
            assert torch.equal(b[name], expected)
        transformed += bool(hflip or vflip or transpose)
        assert torch.equal(b["input"] * 255, torch.round(b["input"] * 255))
    assert transformed > 0


def test_same_key_same_sample_and_errors(photos):
    pairs = SRPairs(ImageSource(photos, "y"), 3, 15)
    assert torch.equal(pairs[(1, 2, 3)]["input"], pairs[(1, 2, 3)]["input"])
    with pytest.raises(ValueError, match="multiple"):
        SRPairs(ImageSource(photos, "y"), 3, 16)
    with pytest.raises(ValueError, match=r"photo0\.png.*smaller"):
        SRPairs(ImageSource(photos, "y"), 2, 60)[(0, 0, 0)]
    with pytest.raises(ValueError, match="degradations"):
        SRPairs(ImageSource(photos, "y"), 2, 8, degradations={"haze": 1})


def test_degradations_change_the_input_only(photos):
    source = ImageSource(photos, "rgb")
    clean = SRPairs(source, 2, 16)[(0, 0, 1)]
    noisy = SRPairs(source, 2, 16, degradations={"blur": [1, 2], "noise": [5, 10],
                                                  "jpeg_quality": [30, 60]})[(0, 0, 1)]
    assert torch.equal(clean["target"], noisy["target"])
    assert not torch.equal(clean["input"], noisy["input"])
    assert noisy["input"].shape == clean["input"].shape
    assert noisy["input"].min() >= 0 and noisy["input"].max() <= 1


def test_div2k_paired_folders(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "HR").mkdir()
    (tmp_path / "X2").mkdir()
    for name in ("0001", "0002"):
        hr = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
        Image.fromarray(hr).save(tmp_path / "HR" / f"{name}.png")
        Image.fromarray(hr[::2, ::2]).save(tmp_path / "X2" / f"{name}x2.png")
    pairs = paired_paths(tmp_path / "X2", tmp_path / "HR", 2)
    assert [(lr.name, hr.name) for lr, hr in pairs] == [("0001x2.png", "0001.png"),
                                                         ("0002x2.png", "0002.png")]
    dataset = PairedSR(pairs, 2, 16)
    item = dataset[(1, 0, 7)]
    assert item["input"].shape == (3, 8, 8) and item["target"].shape == (3, 16, 16)
    # Nearest-neighbour LR here: the crops are aligned when LR = HR[::2, ::2].
    assert torch.equal(item["input"], item["target"][:, ::2, ::2])
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
        tmp_path / "X2" / "0003x2.png")
    with pytest.raises(OSError, match=r"0003x2\.png"):
        paired_paths(tmp_path / "X2", tmp_path / "HR", 2)


def test_eval_pair_follows_the_matlab_protocol(photos):
    lr, hr = eval_pair(photos[0], 3, "y")
    assert hr.shape == (1, 60, 48) and lr.shape == (1, 20, 16)
    image = torch.from_numpy(np.array(Image.open(photos[0]))).permute(2, 0, 1)
    from pyimg.data import rgb_to_ycbcr

    y = rgb_to_ycbcr(image)[:1, :60, :48]
    assert torch.equal(hr, y.float() / 255)
    assert torch.equal(lr, imresize(y, 1 / 3).float() / 255)
    lr, hr = eval_pair(photos[0], 4, "rgb", crop=32)
    assert hr.shape == (3, 32, 32) and lr.shape == (3, 8, 8)
