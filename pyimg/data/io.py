"""Reading images from disk into arrays and tensors, whatever their depth and channels.

8- and 16-bit PNG, TIFF (any depth, through tifffile), JPEG, BMP, WebP, PPM; grey, RGB,
palette and images with alpha. Alpha is dropped: pyimg's models see colour only, and the
colour stored under transparent pixels is kept as it is (composite the image yourself first
if its transparent areas matter). Pillow would silently cut 16-bit colour PNGs to 8 bits,
so those are decoded by PyAV (FFmpeg) instead. A file that cannot be read raises ``OSError``
naming the file and the reason.
"""

import os
from pathlib import Path

import numpy as np
import torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm", ".pnm")
CHANNELS = ("rgb", "gray", "any")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types holding colour or alpha, and the PyAV pixel format that keeps 16 bits.
_PNG16_FORMATS = {2: "rgb48le", 4: "gray16le", 6: "rgba64le"}


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OSError(f"{folder}: not a folder")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern)
                  if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _png16_color_type(path: Path) -> int | None:
    """The PNG colour type when the file is a 16-bit colour or grey+alpha PNG, else None."""
    with open(path, "rb") as f:
        header = f.read(26)
    if len(header) < 26 or header[:8] != _PNG_SIGNATURE:
        return None
    bit_depth, color_type = header[24], header[25]
    return color_type if bit_depth == 16 and color_type in _PNG16_FORMATS else None


def _read_png16(path: Path, color_type: int) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        array = frame.to_ndarray(format=_PNG16_FORMATS[color_type])
    return array[..., :3] if color_type == 6 else array


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        array = page.asarray()
        if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and array.ndim == 3:
            array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] in (2, 4):  # grey + alpha, RGB + alpha
        array = array[..., :-1]
    if array.ndim == 3 and array.shape[-1] > 3:
        raise ValueError(f"{array.shape[-1]} samples per pixel")
    return array


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("LA", "1"):
            image = image.convert("L")
        elif image.mode not in ("RGB", "L", "I;16", "I", "F"):  # P, RGBA, CMYK, YCbCr ...
            image = image.convert("RGB")
        array = np.asarray(image)
    if array.dtype == np.int32:  # Pillow's "I": kept when the values fit 16 bits
        if array.min() < 0 or array.max() > 65535:
            raise ValueError("32-bit integer pixels outside the 16-bit range")
        array = array.astype(np.uint16)
    return array


def read_array(path: str | os.PathLike) -> np.ndarray:
    """The image at ``path`` as stored: (H, W) grey or (H, W, 3) RGB, uint8, uint16 or
    float32, alpha dropped. Raises ``OSError`` naming the file when it cannot be read."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            array = _read_tiff(path)
        elif (color_type := _png16_color_type(path)) is not None:
            array = _read_png16(path, color_type)
        else:
            array = _read_pillow(path)
    except FileNotFoundError:
        raise OSError(f"{path}: no such file") from None
    except Exception as error:  # Pillow, tifffile and PyAV each raise their own kinds
        raise OSError(f"{path}: cannot read image ({type(error).__name__}: {error})") from error
    if array.dtype not in (np.uint8, np.uint16, np.float32, np.float64) or array.ndim not in (2, 3):
        raise OSError(f"{path}: unsupported pixel layout {array.dtype} {array.shape}")
    if min(array.shape[:2]) < 1:
        raise OSError(f"{path}: empty image")
    return array


def to_tensor(array: np.ndarray, channels: str = "rgb") -> torch.Tensor:
    """(C, H, W) float32 in [0, 1] from a :func:`read_array` array: integers divided by their
    type's maximum. ``channels``: "rgb" (grey repeated to 3), "gray" (RGB reduced to BT.601
    luma, full range, as Pillow's "L"), "any" (1 or 3 as stored)."""
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS}, got {channels!r}")
    if array.dtype == np.uint8:
        scale = 255.0
    elif array.dtype == np.uint16:
        scale = 65535.0
    else:
        scale = 1.0
    tensor = torch.from_numpy(np.ascontiguousarray(array).astype(np.float32)) / scale
    tensor = tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)
    if channels == "rgb" and tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    elif channels == "gray" and tensor.shape[0] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        tensor = (tensor * weights).sum(0, keepdim=True)
    return tensor.contiguous()


def read_image(path: str | os.PathLike, channels: str = "rgb") -> torch.Tensor:
    """The image at ``path`` as a (C, H, W) float32 tensor in [0, 1] (see :func:`to_tensor`
    for ``channels``)."""
    return to_tensor(read_array(path), channels)


def read_mask(path: str | os.PathLike) -> torch.Tensor:
    """A label map as an (H, W) int64 tensor: a palette PNG's indices (PASCAL VOC's masks,
    255 = ignore) or a grey image's values, never converted to colour."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("P", "L", "I", "I;16"):
                raise ValueError(f"a label map must be a palette or grey image, not {image.mode}")
            array = np.asarray(image)
    except FileNotFoundError:
        raise OSError(f"{path}: no such file") from None
    except Exception as error:
        raise OSError(f"{path}: cannot read label map ({type(error).__name__}: {error})") \
            from error
    return torch.from_numpy(array.astype(np.int64))
