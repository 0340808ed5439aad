"""Folder datasets in the layouts people have (VOC, pix2pix A|B, CycleGAN trainA/trainB),
the label-free pairs (noise, colour, synthetic shapes, edges) and the packaged photos."""

import numpy as np
import pytest
import torch
from PIL import Image

from pyimg.data import ImageSource, sample_images
from pyimg.data.restoration import ColorizationPairs, NoisyPairs, lab_to_rgb, rgb_to_lab
from pyimg.data.segmentation import (
    IGNORE_INDEX,
    SegmentationFolder,
    SyntheticShapes,
    voc_pairs,
)
from pyimg.data.translation import AlignedPairs, EdgesToPhoto, UnalignedPairs


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_voc_layout(tmp_path, rng):
    for name in ("a", "b"):
        save(tmp_path / "JPEGImages" / f"{name}.jpg",
             rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
        mask = Image.fromarray(rng.integers(0, 3, (20, 30), dtype=np.uint8), mode="P")
        mask.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
        (tmp_path / "SegmentationClass").mkdir(exist_ok=True)
        mask.save(tmp_path / "SegmentationClass" / f"{name}.png")
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "train.txt").write_text("b\n")
    assert [p[0].name for p in voc_pairs(tmp_path, "train")] == ["b.jpg"]
    assert [p[0].name for p in voc_pairs(tmp_path, "val")] == ["a.jpg", "b.jpg"]
    whole = SegmentationFolder(voc_pairs(tmp_path, "train"))[0]
    assert whole["image"].shape == (3, 20, 30) and whole["mask"].shape == (20, 30)
    crop = SegmentationFolder(voc_pairs(tmp_path, "train"), size=24)[(0, 0, 3)]
    assert crop["image"].shape == (3, 24, 24)
    # 20 rows padded to 24: the padding is ignored, not background.
    assert (crop["mask"] == IGNORE_INDEX).sum() == 4 * 24
    (tmp_path / "ImageSets" / "Segmentation" / "train.txt").write_text("c\n")
    with pytest.raises(OSError, match=r"c\.jpg"):
        voc_pairs(tmp_path, "train")


def test_pix2pix_aligned_pairs(tmp_path, rng):
    a = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    save(tmp_path / "1.png", np.concatenate([a, b], axis=1))
    item = AlignedPairs(tmp_path, size=None)[0]
    assert torch.equal(item["input"], torch.from_numpy(a).permute(2, 0, 1).float() / 255)
    flipped = AlignedPairs(tmp_path, size=None, direction="BtoA")[0]
    assert torch.equal(flipped["input"], item["target"])
    crop = AlignedPairs(tmp_path, size=16)[(0, 0, 5)]
    whole_a = item["input"]
    # The same window of A and B (possibly flipped together).
    found = [(t, left) for t in range(17) for left in range(25)
             if torch.equal(crop["input"], whole_a[:, t:t + 16, left:left + 16])
             or torch.equal(crop["input"], whole_a[:, t:t + 16, left:left + 16].flip(-1))]
    assert len(found) == 1
    save(tmp_path / "odd.png", np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match=r"odd\.png.*even width"):
        AlignedPairs(tmp_path, size=None)[1]


def test_cyclegan_folders(tmp_path, rng):
    for domain, count in (("trainA", 3), ("trainB", 2)):
        for i in range(count):
            save(tmp_path / domain / f"{i}.png", rng.integers(0, 256, (24, 24, 3), np.uint8))
    dataset = UnalignedPairs.from_folder(tmp_path, 16)
    assert len(dataset) == 3
    item = dataset[(2, 0, 9)]
    assert item["a"].shape == item["b"].shape == (3, 16, 16)
    with pytest.raises(OSError, match="testA"):
        UnalignedPairs.from_folder(tmp_path, 16, split="test")


def test_noisy_and_colour_pairs(tmp_path, rng):
    save(tmp_path / "c.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    source = ImageSource([tmp_path / "c.png"], "gray")
    item = NoisyPairs(source, 32, sigma=25, clip=False)[(0, 0, 0)]
    noise = item["input"] - item["target"]
    assert abs(noise.std().item() * 255 - 25) < 3
    ranged = NoisyPairs(source, 32, sigma=[5, 50])
    assert ranged[(0, 0, 1)]["input"].min() >= 0
    colour = ColorizationPairs(ImageSource([tmp_path / "c.png"], "rgb"), 24)[(0, 0, 2)]
    assert colour["input"].shape == (1, 24, 24) and colour["target"].shape == (2, 24, 24)
    rgb = torch.rand(3, 8, 8)
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-5, rtol=0)


def test_synthetic_shapes_and_edges():
    source = ImageSource(sample_images().train[:3], "rgb", cache=True)
    shapes = SyntheticShapes(source, 64, length=10)
    item = shapes[(4, 1, 4)]
    assert item["image"].shape == (3, 64, 64) and item["mask"].dtype == torch.int64
    labels = set(item["mask"].unique().tolist())
    assert 0 in labels and labels - {0} and labels <= {0, 1, 2, 3}
    assert torch.equal(shapes[(4, 1, 4)]["mask"], item["mask"])
    pair = EdgesToPhoto(source, 48)[(0, 0, 0)]
    assert pair["input"].shape == pair["target"].shape == (3, 48, 48)
    assert set(pair["input"].unique().tolist()) <= {0.0, 1.0}


def test_sample_lists():
    images = sample_images()
    names = {p.name for p in images.eval}
    assert {"astronaut.png", "coffee.png"} <= names
    assert not names & {p.name for p in images.train}
    assert all(p.is_file() for p in images.train + images.eval)
