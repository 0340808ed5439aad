"""Still images in and out: PNG, JPEG, TIFF and WebP, 8 or 16 bits, gray, gray + alpha, RGB,
RGBA. Pillow reads and writes them, keeping EXIF, the ICC profile and the resolution; 16-bit
RGB(A), which Pillow would cut to 8 bits, goes through FFmpeg's PNG and TIFF codecs (PyAV)."""

import warnings
from pathlib import Path

import numpy as np

from pyimg.atomic import atomic_output
from pyimg.video.layout import Layout
from pyimg.video.picture import Picture, from_av_frame, to_av_frame

FORMAT_OF_SUFFIX = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF",
                    ".tiff": "TIFF", ".webp": "WEBP"}
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
_METADATA = ("exif", "icc_profile", "dpi")


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in FORMAT_OF_SUFFIX


def read_image(path: str | Path) -> Picture:
    """The image at ``path`` as a picture whose ``extra`` keeps its metadata."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        image = Image.open(path)
        raw = image.tile[0].args if image.tile else ""  # loading empties the tile list
        image.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: not a readable image ({error})") from None
    extra = {k: image.info[k] for k in _METADATA if k in image.info}
    raw = raw if isinstance(raw, str) else (raw or ("",))[0]
    if image.mode in ("RGB", "RGBA", "LA") and ";16" in str(raw):
        picture = _read_with_ffmpeg(path)
    else:
        picture = _from_pillow(image, path)
    picture.extra.update(extra)
    return picture


def _read_with_ffmpeg(path: Path) -> Picture:
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        picture = from_av_frame(frame)
    picture.planes = [p.copy() for p in picture.planes]
    return picture


def _from_pillow(image, path: Path) -> Picture:
    mode = image.mode
    if mode in ("1", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"):
        has_alpha = mode in ("PA", "RGBa", "La") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
    if mode.startswith("I;16"):
        return Picture([np.array(image, dtype=np.uint16)], Layout("gray", 16))
    if mode == "I":
        values = np.array(image)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"{path}: 32-bit integer samples outside 0..65535 are not supported")
        return Picture([values.astype(np.uint16)], Layout("gray", 16))
    if mode == "L":
        return Picture([np.array(image)], Layout("gray"))
    if mode == "LA":
        values = np.array(image)
        return Picture([values[..., 0], values[..., 1]], Layout("gray", alpha=True))
    if mode == "RGB":
        return Picture([np.array(image)], Layout("rgb"))
    if mode == "RGBA":
        values = np.array(image)
        return Picture([values[..., :3], values[..., 3]], Layout("rgb", alpha=True))
    raise ValueError(f"{path}: unsupported image mode {mode!r} (pyimg reads gray, gray + alpha, "
                     "RGB and RGBA, 8 or 16 bits)")


def output_layout(layout: Layout, path: str | Path) -> Layout:
    """The layout an image of ``layout`` keeps when written to ``path``: the same, but 8-bit
    for formats without 16-bit samples (JPEG, WebP; with a warning) and without alpha for
    JPEG."""
    fmt = image_format(path)
    bits, alpha = layout.bits, layout.alpha
    if bits > 8 and fmt not in SIXTEEN_BIT_FORMATS:
        warnings.warn(f"{path}: {fmt} holds 8-bit samples; the {bits}-bit input is rounded",
                      stacklevel=2)
        bits = 8
    if bits > 8 and layout.family == "gray" and alpha:  # only FFmpeg writes it: as RGBA
        return Layout("rgb", 16, alpha=True)
    if alpha and fmt == "JPEG":
        warnings.warn(f"{path}: JPEG has no alpha; the alpha channel is dropped", stacklevel=2)
        alpha = False
    family = "rgb" if layout.family == "yuv" else layout.family
    return Layout(family, 16 if bits > 8 else 8, alpha=alpha)


def image_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMAT_OF_SUFFIX:
        raise ValueError(f"{path}: unknown image format {suffix!r}; pyimg writes "
                         f"{', '.join(sorted(FORMAT_OF_SUFFIX))}")
    return FORMAT_OF_SUFFIX[suffix]


def write_image(path: str | Path, picture: Picture) -> None:
    """Write ``picture`` (in ``output_layout``) to ``path`` atomically, with the metadata its
    ``extra`` carries."""
    fmt = image_format(path)
    layout = picture.layout
    with atomic_output(path) as temporary:
        if layout.bits > 8 and layout.family == "rgb":
            _write_with_ffmpeg(temporary, picture, fmt)
        else:
            _to_pillow(picture).save(temporary, format=fmt, **_save_options(picture, fmt))


def _to_pillow(picture: Picture):
    from PIL import Image

    planes, layout = picture.planes, picture.layout
    if layout.family == "gray" and layout.bits > 8:
        return Image.fromarray(planes[0].astype(np.uint16))
    if layout.family == "gray":
        if layout.alpha:
            return Image.fromarray(np.stack(planes, axis=-1), mode="LA")
        return Image.fromarray(planes[0], mode="L")
    if layout.alpha:
        return Image.fromarray(np.concatenate([planes[0], planes[1][..., None]], axis=-1),
                               mode="RGBA")
    return Image.fromarray(np.ascontiguousarray(planes[0]), mode="RGB")


def _save_options(picture: Picture, fmt: str) -> dict:
    options = {k: v for k, v in picture.extra.items() if k in _METADATA and v}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = 95
    return options


def _write_with_ffmpeg(temporary: Path, picture: Picture, fmt: str) -> None:
    import av

    codec = "png" if fmt == "PNG" else "tiff"
    alpha = picture.layout.alpha
    pix_fmt = {"png": ("rgb48be", "rgba64be"), "tiff": ("rgb48le", "rgba64le")}[codec][alpha]
    height, width = picture.size
    with av.open(str(temporary), "w", format="image2") as container:
        stream = container.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        frame = to_av_frame(Picture(picture.planes, picture.layout, 0))
        for packet in stream.encode(frame.reformat(format=pix_fmt)):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
