"""The main job: the packaged sample clip upscaled by a model and by bicubic, each scored by
PSNR on luma (BT.601, MATLAB's rgb2ycbcr; ``scale`` border pixels left out, as SR papers do)
against the clip's high-resolution truth, with the end-to-end fps of each run.

PSNR is measured on the planes the model stage hands to the encoder, so the output codec's
loss does not count against the model; the input clip's own compression does (for both).
"""

import tempfile
from pathlib import Path

import numpy as np

from pyimg.video import report as report_module
from pyimg.video import sample
from pyimg.video.api import upscale
from pyimg.video.model_spec import load_model


class LumaPSNR:
    """Per-frame PSNR of output luma planes (8-bit, BT.601 limited range) against truth luma,
    frames taken in order."""

    def __init__(self, truth_luma: np.ndarray, border: int):
        self.truth, self.border = truth_luma, border
        self.values: list[float] = []

    def __call__(self, picture) -> None:
        layout = picture.layout
        if layout.family != "yuv" or layout.bits != 8 or layout.full_range \
                or layout.matrix != "bt601":
            raise ValueError(f"PSNR needs 8-bit limited-range BT.601 luma, got {layout}")
        b = self.border
        truth = self.truth[len(self.values)][b:-b, b:-b]
        ours = picture.planes[0][b:-b, b:-b].astype(np.float64)
        mse = float(np.mean((ours - truth) ** 2))
        self.values.append(10 * np.log10(255.0**2 / max(mse, 1e-12)))

    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None


def run_sample(output: str | None, model: str, *, weights: str | None = None,
               scale: int | None = None, channels: str | None = None,
               model_kwargs: dict | None = None, copy_streams: bool = True,
               verbose: bool = True, **options) -> dict:
    """Upscale the sample clip with ``model`` into ``output`` (default
    ``sample_x{scale}_{model}.mp4`` here), then with bicubic into a temporary file; return
    both runs' reports with their PSNR (``table`` formats them). ``verbose``: print each
    run's stage summary."""
    sr = load_model(model, weights=weights, scale=scale, channels=channels,
                    kwargs=model_kwargs)
    clip = sample.clip_path(sr.scale)
    name = Path(sr.name).stem.replace(".", "_")
    output = output or f"sample_x{sr.scale}_{name}.mp4"
    truth, why_not = sample.load_truth()
    truth_luma = None if truth is None else sample.truth_luma(truth)

    def scored(label: str, model_arg, out: str) -> dict:
        meter = LumaPSNR(truth_luma, sr.scale) if truth_luma is not None else None
        result = upscale(clip, out, model_arg, on_frame=meter, copy_streams=copy_streams,
                         **options)
        result["psnr_y"] = meter.mean() if meter is not None else None
        if verbose:
            report_module.print_summary(result)
        return result

    ours = scored(sr.name, sr, output)
    with tempfile.TemporaryDirectory() as folder:
        bicubic = scored("bicubic", load_model("bicubic", scale=sr.scale),
                         str(Path(folder) / "bicubic.mp4"))
    return {"clip": str(clip), "output": output, "model": ours, "bicubic": bicubic,
            "psnr_unavailable": why_not}


def table(result: dict) -> str:
    ours, bicubic = result["model"], result["bicubic"]
    size_in, size_out = ours["input_size"], ours["output_size"]
    lines = [f"sample clip {Path(result['clip']).name}: {ours['frames']} frames "
             f"{size_in[0]}x{size_in[1]} -> {size_out[0]}x{size_out[1]} on "
             f"{ours['device_name']}; upscaled video: {result['output']}",
             "", "| method | fps (end to end) | PSNR Y (dB) |", "|---|---|---|"]
    for label, run in ((ours["model"], ours), ("bicubic", bicubic)):
        psnr = f"{run['psnr_y']:.2f}" if run["psnr_y"] is not None else "-"
        lines.append(f"| {label} | {run['fps']:.1f} | {psnr} |")
    if result["psnr_unavailable"]:
        lines.append(f"\nPSNR not measured: {result['psnr_unavailable']}")
    return "\n".join(lines)
