"""Reading images of every depth and channel layout exactly, and failing by name."""

import numpy as np
import pytest
import torch
from PIL import Image

from pyimg.data import ImageSource, read_array, read_image, read_mask
from pyimg.data.io import list_images


def write_png16_rgb(path, array):
    """A 16-bit RGB PNG (Pillow cannot write one), through PyAV."""
    import av

    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height = array.shape[1], array.shape[0]
        stream.pix_fmt = "rgb48be"
        frame = av.VideoFrame.from_ndarray(array, format="rgb48le")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_8bit_gray_rgb_and_alpha(tmp_path, rng):
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    rgba = np.concatenate([rgb, rng.integers(0, 256, (5, 7, 1), dtype=np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    assert np.array_equal(read_array(tmp_path / "rgb.png"), rgb)
    # Alpha is dropped, colour kept as stored (not composited).
    assert np.array_equal(read_array(tmp_path / "rgba.png"), rgb)
    assert np.array_equal(read_array(tmp_path / "gray.png"), rgb[..., 0])
    image = read_image(tmp_path / "rgb.png")
    assert image.shape == (3, 5, 7) and image.dtype == torch.float32
    torch.testing.assert_close(image, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    assert read_image(tmp_path / "gray.png").shape == (3, 5, 7)  # grey repeated
    assert read_image(tmp_path / "gray.png", channels="any").shape == (1, 5, 7)
    assert read_image(tmp_path / "rgb.png", channels="gray").shape == (1, 5, 7)


def test_16bit_png_gray_and_rgb_keep_all_bits(tmp_path, rng):
    gray = rng.integers(0, 65536, (6, 5), dtype=np.uint16)
    Image.fromarray(gray).save(tmp_path / "gray16.png")
    rgb = rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    write_png16_rgb(tmp_path / "rgb16.png", rgb)
    assert np.array_equal(read_array(tmp_path / "gray16.png"), gray)
    assert np.array_equal(read_array(tmp_path / "rgb16.png"), rgb)
    torch.testing.assert_close(read_image(tmp_path / "rgb16.png"),
                               torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1) / 65535)


def test_tiff_8_and_16_bit_with_alpha(tmp_path, rng):
    import tifffile

    rgba16 = rng.integers(0, 65536, (4, 6, 4), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgba16.tif", rgba16, photometric="rgb", extrasamples=[2])
    gray8 = rng.integers(0, 256, (4, 6), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "gray8.tiff", gray8)
    assert np.array_equal(read_array(tmp_path / "rgba16.tif"), rgba16[..., :3])
    assert np.array_equal(read_array(tmp_path / "gray8.tiff"), gray8)


def test_palette_image_and_mask(tmp_path):
    labels = np.array([[0, 1, 2], [255, 1, 0]], dtype=np.uint8)
    mask = Image.fromarray(labels, mode="P")
    mask.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
    mask.save(tmp_path / "mask.png")
    assert torch.equal(read_mask(tmp_path / "mask.png"), torch.from_numpy(labels).long())
    # Read as an image, a palette file gives its colours.
    assert read_array(tmp_path / "mask.png").shape == (2, 3, 3)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(OSError, match=r"rgb\.png.*palette or grey"):
        read_mask(tmp_path / "rgb.png")


def test_corrupt_truncated_and_missing_files_are_named(tmp_path, rng):
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[:len(data) // 2])
    for name in ("junk.png", "truncated.png", "missing.png"):
        with pytest.raises(OSError, match=name.replace(".", r"\.")):
            read_array(tmp_path / name)


def test_source_raises_or_skips_and_counts(tmp_path, rng):
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
            tmp_path / f"good{i}.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "tiny.png")
    paths = list_images(tmp_path)
    strict = ImageSource(paths, min_size=8)
    bad = [p.name for p in strict.paths].index("bad.png")
    with pytest.raises(OSError, match=r"bad\.png"):
        strict[bad]
    with pytest.warns(UserWarning, match="skipped 2 of 5"):
        lenient = ImageSource(paths, min_size=8, skip_bad=True)
    assert len(lenient) == 3
    assert sorted(p.name for p, _ in lenient.skipped) == ["bad.png", "tiny.png"]
    assert all(lenient[i].shape == (3, 20, 20) for i in range(3))


def test_list_images_errors(tmp_path):
    with pytest.raises(OSError, match="not a folder"):
        list_images(tmp_path / "nope")
