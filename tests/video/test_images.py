"""Images: every format and sample layout in and out, bit depth kept, alpha upscaled apart,
metadata kept, folders, and clear errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pyimg.video import load_model, upscale
from pyimg.video.image_io import read_image, write_image
from pyimg.video.layout import Layout
from pyimg.video.picture import Picture


def _bicubic(values: np.ndarray, top: int, scale: int = 2) -> np.ndarray:
    """(H, W[, C]) samples -> bicubic x scale, clamped and rounded, as the y/alpha paths do."""
    t = torch.from_numpy(values.astype(np.float64) / top)
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    up = F.interpolate(t.float(), scale_factor=scale, mode="bicubic", align_corners=False)
    up = (up.clamp(0, 1) * top).round().to(torch.int64)[0]
    return (up[0] if values.ndim == 2 else up.permute(1, 2, 0)).numpy()


def _gradient(height: int, width: int, channels: int, top: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (np.sin(x / 3.0 + y / 5.0) + 1) / 2
    planes = [np.clip(base * (0.6 + 0.1 * c) + rng.random(base.shape) * 0.3, 0, 1)
              for c in range(channels)]
    values = np.stack(planes, axis=-1) if channels > 1 else planes[0]
    return np.round(values * top).astype(np.uint8 if top == 255 else np.uint16)


SAMPLES = [("L", 1, 255, "png"), ("LA", 2, 255, "png"), ("RGB", 3, 255, "png"),
           ("RGBA", 4, 255, "webp"), ("I;16", 1, 65535, "png"), ("I;16", 1, 65535, "tif")]


@pytest.mark.parametrize(("mode", "channels", "top", "suffix"), SAMPLES,
                         ids=[f"{m}-{s}" for m, _, _, s in SAMPLES])
def test_pillow_images_round_trip(tmp_path, mode, channels, top, suffix):
    values = _gradient(9, 13, channels, top)
    path = tmp_path / f"in.{suffix}"
    image = Image.fromarray(values) if mode != "LA" else Image.fromarray(values, mode="LA")
    options = {"lossless": True} if suffix == "webp" else {}
    image.save(path, **options)
    picture = read_image(path)
    assert picture.layout.bits == (8 if top == 255 else 16)
    assert picture.layout.alpha == (channels in (2, 4))
    joined = (np.concatenate([picture.planes[0].reshape(9, 13, -1),
                              picture.planes[1][..., None]], -1)
              if picture.layout.alpha else picture.planes[0])
    np.testing.assert_array_equal(joined.reshape(values.shape), values)


@pytest.mark.parametrize("alpha", [False, True])
@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_sixteen_bit_rgb_keeps_sixteen_bits(tmp_path, suffix, alpha):
    """Pillow would cut 16-bit RGB to 8 bits; pyimg reads and writes it through FFmpeg."""
    channels = 4 if alpha else 3
    values = _gradient(10, 12, channels, 65535)
    layout = Layout("rgb", 16, alpha=alpha)
    planes = [values[..., :3], values[..., 3]] if alpha else [values]
    path = tmp_path / f"deep.{suffix}"
    write_image(path, Picture(planes, layout))
    back = read_image(path)
    assert back.layout == layout
    for want, got in zip(planes, back.planes, strict=True):
        np.testing.assert_array_equal(got, want)
    assert len(np.unique(back.planes[0] & 0xFF)) > 1  # low bytes carry information


def test_rgba_alpha_is_upscaled_apart(tmp_path):
    """The model sees colour only; alpha is bicubic x2 of the input alpha, whatever the
    colours, and the colours do not depend on the alpha."""
    values = _gradient(8, 10, 4, 255)
    path = tmp_path / "in.png"
    Image.fromarray(values, mode="RGBA").save(path)
    opaque = values.copy()
    opaque[..., 3] = 255
    Image.fromarray(opaque, mode="RGBA").save(tmp_path / "opaque.png")
    upscale(path, tmp_path / "out.png", "bicubic", scale=2, progress=False)
    upscale(tmp_path / "opaque.png", tmp_path / "out_opaque.png", "bicubic", scale=2,
            progress=False)
    out = np.asarray(Image.open(tmp_path / "out.png"))
    out_opaque = np.asarray(Image.open(tmp_path / "out_opaque.png"))
    assert out.shape == (16, 20, 4)
    np.testing.assert_array_equal(out[..., 3], _bicubic(values[..., 3], 255))
    np.testing.assert_array_equal(out[..., :3], out_opaque[..., :3])


def test_gray_sixteen_bit_through_a_y_model(tmp_path, espcn_weights):
    """16-bit gray in, 16-bit gray out, equal to the model on the float luma within a step."""
    values = _gradient(11, 7, 1, 65535)
    Image.fromarray(values).save(tmp_path / "in.png")
    upscale(tmp_path / "in.png", tmp_path / "out.png", str(espcn_weights), progress=False)
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.dtype == np.uint16 and out.shape == (22, 14)
    sr = load_model(str(espcn_weights))
    luma = torch.from_numpy(values.astype(np.float64) / 65535)[None, None].float()
    with torch.inference_mode():
        model_out = sr.module((luma * 219 + 16) / 255).clamp(0, 1)
    want = ((model_out * 255 - 16) / 219 * 65535).round().clamp(0, 65535)[0, 0].numpy()
    assert np.abs(out.astype(np.float64) - want).max() <= 2


def test_metadata_and_jpeg_output(tmp_path):
    image = Image.fromarray(_gradient(8, 8, 3, 255))
    exif = Image.Exif()
    exif[0x010F] = "pyimg test camera"
    image.save(tmp_path / "in.jpg", exif=exif, quality=95)
    upscale(tmp_path / "in.jpg", tmp_path / "out.jpg", "bicubic", scale=3, channels="rgb",
            progress=False)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.size == (24, 24) and out.mode == "RGB"
        assert out.getexif()[0x010F] == "pyimg test camera"


def test_folder_of_images(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    Image.fromarray(_gradient(6, 9, 3, 255)).save(folder / "a.png")
    Image.fromarray(_gradient(7, 5, 1, 255)).save(folder / "b.jpg")
    Image.fromarray(_gradient(5, 5, 1, 65535)).save(folder / "c.tif")
    (folder / "notes.txt").write_text("not an image")
    report = upscale(folder, out, "bicubic", scale=2, progress=False)
    assert report["frames"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg", "c.tif"]
    assert Image.open(out / "a.png").size == (18, 12)
    assert Image.open(out / "b.jpg").size == (10, 14)
    assert np.asarray(Image.open(out / "c.tif")).dtype == np.uint16


def test_bad_images(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"broken\.png: not a readable image"):
        upscale(tmp_path / "broken.png", tmp_path / "out.png", "bicubic", progress=False)
    Image.fromarray(_gradient(4, 4, 3, 255)).save(tmp_path / "ok.png")
    with pytest.raises(ValueError, match=r"out.gif: unknown image format '.gif'"):
        upscale(tmp_path / "ok.png", tmp_path / "out.gif", "bicubic", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: holds no images"):
        upscale(tmp_path / "empty", tmp_path / "out", "bicubic", progress=False)
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.gif").exists()
