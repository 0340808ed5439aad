"""Real photographs that ship inside scikit-image (its ``data`` folder), split once into a
training list and an evaluation list so that pyimg trains and scores with no download.

Evaluation (never trained on): astronaut.png, coffee.png and chelsea.png, three colour
photographs of people, objects and an animal (the usual SR test content; the video example
renders its clip from astronaut or coffee), and camera.png, the classic grey "cameraman".
Training: every other real photograph that is not a near copy of an evaluation image:
motorcycle_left.png (an indoor scene), rocket.jpg (a launch pad at dusk), coins.png,
text.png (handwriting on paper), brick.png, grass.png and gravel.png (textures), moon.png,
ihc.png (a stained tissue micrograph), hubble_deep_field.jpg and retina.jpg.
Left out: motorcycle_right.png (the other half of the stereo pair, a near duplicate of a
training image), clock_motion.png (synthetically motion-blurred), cell.png (a defocused
micrograph), page.png (a scanned page), color.png, chessboard_*.png, logo.png, horse.png
and phantom.png (drawings, not photographs), microaneurysms.png (102 x 102 pixels) and the
tiny multi-page TIFFs.
"""

from dataclasses import dataclass
from pathlib import Path

EVAL = ("astronaut.png", "coffee.png", "chelsea.png", "camera.png")
TRAIN = ("motorcycle_left.png", "rocket.jpg", "coins.png", "text.png", "brick.png",
         "grass.png", "gravel.png", "moon.png", "ihc.png", "hubble_deep_field.jpg",
         "retina.jpg")


@dataclass(frozen=True)
class SampleImages:
    """Paths of the packaged training and evaluation photographs."""

    train: tuple[Path, ...]
    eval: tuple[Path, ...]


def data_folder() -> Path:
    """scikit-image's folder of sample images."""
    try:
        import skimage
    except ImportError:
        raise OSError("pyimg's sample images come with scikit-image: pip install "
                      "scikit-image (or pyimg[train])") from None
    return Path(skimage.__file__).parent / "data"


def sample_images() -> SampleImages:
    """The fixed training and evaluation lists (see the module docstring for the choice)."""
    folder = data_folder()
    missing = [name for name in TRAIN + EVAL if not (folder / name).is_file()]
    if missing:
        raise OSError(f"scikit-image's data folder {folder} lacks {missing}; reinstall "
                      "scikit-image")
    return SampleImages(train=tuple(folder / n for n in TRAIN),
                        eval=tuple(folder / n for n in EVAL))
