"""The sample clip pyimg ships: a camera zooming and panning over scikit-image's ``coffee.png``
(a photograph kept for evaluation, never trained on), with a tone as its audio track.

Each high-resolution frame is the photo resampled (antialiased cubic, float64) at the camera's
crop, always shrinking, so it holds only detail the photo has; the low-resolution clip is that
frame shrunk by the scale with MATLAB's bicubic ``imresize``, the degradation SR papers use,
then encoded (H.264, BT.601 4:2:0, CRF 16). Clips ship for scales 2, 3 and 4, about 270 KB
together. The truth is not shipped: it is rendered again at run time from the photo (a few
seconds), exactly (``truth_sha256`` in ``sample.json`` checks each frame), which needs
scikit-image installed for the photo.

``python -m pyimg.video.sample`` regenerates the clips and ``sample.json``.
"""

import hashlib
import importlib.util
import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from pyimg.video import resample

DATA = Path(__file__).with_name("data")
METADATA = DATA / "sample.json"
PHOTO = "coffee.png"
HR_SIZE = (480, 264)  # width, height: divisible by 2 x every scale, for 4:2:0 at each
FPS = 24
SECONDS = 4
SCALES = (2, 3, 4)
CRF = 16
TONE_HZ = (220.0, 330.0)
AUDIO_RATE = 48000


def photo_path() -> Path | None:
    """scikit-image's coffee.png, or None when scikit-image is not installed."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data" / PHOTO
    return path if path.is_file() else None


def _smoothstep(t: float) -> float:
    return t * t * (3.0 - 2.0 * t)


def camera(index: int, frames: int, photo_size: tuple[int, int]) -> tuple[float, float, float]:
    """(left, top, crop width) in photo pixels for frame ``index``: the crop shrinks from the
    photo's full width to the frame's width (1 photo pixel per output pixel) while panning
    right and up. Polynomial in the frame number: the same floats on every machine."""
    photo_w, photo_h = photo_size
    s = _smoothstep(index / (frames - 1))
    width = photo_w - (photo_w - HR_SIZE[0]) * s
    height = width * HR_SIZE[1] / HR_SIZE[0]
    left = (photo_w - width) * s
    top = (photo_h - height) * (0.8 - 0.6 * s)
    return left, top, width


def load_photo(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def render_frame(photo: np.ndarray, index: int, frames: int = FPS * SECONDS) -> np.ndarray:
    """(H, W, 3) uint8 high-resolution frame ``index`` of the camera path over ``photo``."""
    height, width = photo.shape[:2]
    left, top, crop = camera(index, frames, (width, height))
    frame = resample.crop_resize(photo, left, top, crop / HR_SIZE[0], HR_SIZE)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def render_truth(photo: np.ndarray, frames: int = FPS * SECONDS) -> np.ndarray:
    """(frames, H, W, 3) uint8: every frame of the camera path."""
    return np.stack([render_frame(photo, i, frames) for i in range(frames)])


def degrade(truth: np.ndarray, scale: int) -> np.ndarray:
    """(frames, H, W, 3) uint8 -> MATLAB-bicubic shrunk by ``scale``, uint8."""
    return np.stack([np.clip(np.rint(resample.downscale(f.astype(np.float64), scale)), 0, 255)
                     .astype(np.uint8) for f in truth])


def truth_luma(truth: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma of RGB uint8 frames, as MATLAB's rgb2ycbcr (float64, 16..235),
    the Y that SR papers measure PSNR on."""
    rgb = truth.astype(np.float64) / 255.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def metadata() -> dict:
    if not METADATA.is_file():
        raise FileNotFoundError(f"{METADATA}: the sample clip's metadata is missing from this "
                                "install")
    return json.loads(METADATA.read_text())


def clip_path(scale: int) -> Path:
    clips = metadata()["clips"]
    if str(scale) not in clips:
        raise ValueError(f"the sample clip comes for scales {', '.join(clips)}, not {scale}")
    path = DATA / clips[str(scale)]["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the sample clip is missing from this install")
    return path


def load_truth() -> tuple[np.ndarray | None, str | None]:
    """The sample's high-resolution truth, or None and why it cannot be had."""
    path = photo_path()
    if path is None:
        return None, f"scikit-image (which holds {PHOTO}, the clip's source) is not installed"
    meta = metadata()
    truth = render_truth(load_photo(path), meta["frames"])
    differ = [i for i, (frame, digest) in enumerate(zip(truth, meta["truth_sha256"],
                                                        strict=True)) if sha256(frame) != digest]
    if differ:
        return None, (f"{len(differ)} frames of the truth rendered from {path} differ from the "
                      "ones the clip was made from (another photo or renderer)")
    return truth, None


def _audio(container, seconds: float):
    import av

    stream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
    stream.bit_rate = 32_000
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.25)
    wave = sum(np.sin(2 * np.pi * hz * t) for hz in TONE_HZ) * 0.15 * fade
    samples = wave.astype(np.float32)[None]
    packets = []
    for offset in range(0, samples.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(samples[:, offset:offset + 1024], format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, offset
        frame.time_base = Fraction(1, AUDIO_RATE)
        packets += stream.encode(frame)
    return stream, packets + list(stream.encode(None))


def write_clip(path: Path, frames_rgb: np.ndarray, crf: int = CRF,
               preset: str = "veryslow") -> None:
    """H.264 (BT.601, limited range, 4:2:0) + AAC tone, from (frames, h, w, 3) uint8 RGB."""
    import av
    import torch

    from pyimg.video.layout import Layout
    from pyimg.video.planes import ColourPath

    height, width = frames_rgb.shape[1:3]
    yuv = Layout("yuv", 8, (1, 1), full_range=False, matrix="bt601")
    to_yuv = ColourPath(Layout("rgb"), yuv, "rgb")
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        cc = video.codec_context
        cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = 1, 6, 6, 6
        video.options = {"crf": str(crf), "preset": preset, "threads": "1"}
        audio, audio_packets = _audio(container, len(frames_rgb) / FPS)
        for i, rgb in enumerate(frames_rgb):
            planes = to_yuv.from_model(torch.from_numpy(rgb).permute(2, 0, 1)[None] / 255.0,
                                       None)
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane, values in zip(frame.planes, planes, strict=True):
                line = plane.line_size
                view = np.frombuffer(plane, np.uint8).reshape(plane.height, line)
                view[:, :plane.width] = values[0].numpy()
            frame.pts = i
            while audio_packets and audio_packets[0].pts / AUDIO_RATE <= i / FPS:
                _mux_audio(container, audio, audio_packets.pop(0))
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        for packet in audio_packets:
            _mux_audio(container, audio, packet)


def _mux_audio(container, stream, packet) -> None:
    packet.stream = stream
    container.mux(packet)


def generate() -> dict:
    path = photo_path()
    if path is None:
        raise OSError("generating the sample clip needs scikit-image (for coffee.png)")
    frames = FPS * SECONDS
    truth = render_truth(load_photo(path), frames)
    DATA.mkdir(exist_ok=True)
    clips = {}
    for scale in SCALES:
        low = degrade(truth, scale)
        name = f"sample_x{scale}.mp4"
        write_clip(DATA / name, low)
        clips[str(scale)] = {"file": name, "size": [low.shape[2], low.shape[1]],
                             "bytes": (DATA / name).stat().st_size}
    meta = {"photo": PHOTO, "truth_size": list(HR_SIZE), "frames": frames, "fps": FPS,
            "truth_sha256": [sha256(frame) for frame in truth], "clips": clips,
            "made_by": "python -m pyimg.video.sample"}
    METADATA.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


if __name__ == "__main__":
    print(json.dumps(generate(), indent=2))
