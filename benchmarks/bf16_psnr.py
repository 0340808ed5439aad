"""What bf16 costs in image quality: optimize_for_inference(dtype=bfloat16) against fp32.

    python benchmarks/bf16_psnr.py [--steps 3000] [--out DIR]

ESPCN x2 (the zoo's) is fitted here for a few hundred steps on scikit-image's photographs
(luminance, bicubic x2 downscaling; no shipped weights are assumed), then scored on three
held-out photographs (astronaut, chelsea, coffee): PSNR on Y with a 2-pixel border
cropped, for bicubic upscaling, the fp32 model and the bf16 model, and the difference
(the goal: under 0.05 dB). For the x4 networks of the speed benchmark (zoo SRResNet, the
modified-SRResNet-style and SRVGG-style nets) with random weights, where PSNR against the
ground truth means nothing, it reports how closely bf16 follows fp32: the PSNR of the bf16
output against the fp32 output over the fp32 output's range. Writes
bf16_psnr_<device>.md to --out.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from inference.reference_nets import MSRResNetStyle, SRVGGStyle, randomize_batch_norm
from skimage.color import rgb2gray

from pyimg import models
from pyimg.atomic import write_atomically
from pyimg.bench.environment import environment
from pyimg.bench.tables import markdown_table
from pyimg.inference import native_bf16_missing, optimize_for_inference
from pyimg.metrics import psnr

TRAIN = ("camera", "coins", "moon", "brick", "gravel", "grass", "immunohistochemistry",
         "rocket", "page")
TEST = ("astronaut", "chelsea", "coffee")
SCALE = 2


def _luminance(name: str) -> torch.Tensor:
    image = getattr(skimage.data, name)()
    image = image.astype(np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)
    if image.ndim == 3:
        image = rgb2gray(image[..., :3])
    return torch.from_numpy(image).float()[None, None]


def _downscaled(hr: torch.Tensor) -> torch.Tensor:
    return F.interpolate(hr, scale_factor=1 / SCALE, mode="bicubic", antialias=True,
                         align_corners=False).clamp(0, 1)


def _crop_to_scale(image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[-2:]
    return image[..., : h - h % SCALE, : w - w % SCALE]


def fit_espcn(steps: int, seed: int = 0) -> torch.nn.Module:
    """ESPCN x2 fitted on random 64x64 crops of the training photographs."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    images = [_luminance(name) for name in TRAIN]
    model = models.ESPCN(upscale_factor=SCALE, in_channels=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for step in range(steps):
        crops = []
        for _ in range(16):
            image = images[int(torch.randint(len(images), (1,), generator=generator))]
            top = int(torch.randint(image.shape[-2] - 64, (1,), generator=generator))
            left = int(torch.randint(image.shape[-1] - 64, (1,), generator=generator))
            crops.append(image[..., top:top + 64, left:left + 64])
        hr = torch.cat(crops)
        loss = F.mse_loss(model(_downscaled(hr)), hr)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  step {step}: mse {loss.item():.5f}", flush=True)
    return model.eval()


def espcn_rows(model: torch.nn.Module) -> list[list[str]]:
    fp32 = optimize_for_inference(model, dtype=torch.float32)
    bf16 = optimize_for_inference(model, dtype=torch.bfloat16)
    rows = []
    for name in TEST:
        hr = _crop_to_scale(_luminance(name))
        lr = _downscaled(hr)
        bicubic = F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False)
        scores = [psnr(out.clamp(0, 1), hr, crop_border=SCALE).item()
                  for out in (bicubic, fp32(lr), bf16(lr))]
        rows.append([name, "x".join(map(str, hr.shape[-2:])),
                     *(f"{s:.3f}" for s in scores), f"{scores[1] - scores[2]:.4f}"])
    return rows


def agreement_rows() -> list[list[str]]:
    rows = []
    nets = {"SRResNet (zoo, BatchNorm)": models.SRResNet(upscale_factor=4),
            "modified-SRResNet style": MSRResNetStyle(), "SRVGG style": SRVGGStyle()}
    for name, net in nets.items():
        torch.manual_seed(0)
        net = randomize_batch_norm(net.eval())
        x = torch.rand(1, 3, 135, 240)
        reference = optimize_for_inference(net, dtype=torch.float32)(x)
        low = optimize_for_inference(net, dtype=torch.bfloat16)(x)
        value_range = (reference.max() - reference.min()).item()
        score = psnr(low, reference, data_range=value_range).item()
        rows.append([name, f"{score:.1f}"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    env = environment(torch.device("cpu"))
    print(env.line(), flush=True)
    start = time.perf_counter()
    print(f"fitting ESPCN x{SCALE} for {args.steps} steps", flush=True)
    model = fit_espcn(args.steps)
    fitted = time.perf_counter() - start
    espcn = espcn_rows(model)
    agreement = agreement_rows()
    sections = [
        "# bf16 against fp32: image quality", env.line(),
        f"native bf16: {native_bf16_missing() or 'yes'}",
        f"## ESPCN x{SCALE}, fitted here ({args.steps} steps of Adam on 16 64x64 luminance "
        f"crops of scikit-image photographs, {fitted:.0f} s), held-out photographs",
        "PSNR in dB on the luminance, 2-pixel border cropped; cost = fp32 - bf16.",
        markdown_table(["image", "HR size", "bicubic", "pyimg fp32", "pyimg bf16",
                        "bf16 cost dB"], espcn),
        "## x4 networks with random weights: bf16 output against fp32 output",
        "PSNR in dB of the bf16 output against the fp32 output, over the fp32 output's range "
        "(input 1x3x135x240).",
        markdown_table(["network", "PSNR bf16 vs fp32"], agreement),
    ]
    path = Path(args.out) / f"bf16_psnr_{env.slug}.md"
    markdown = "\n\n".join(sections) + "\n"
    write_atomically(path, lambda f: f.write(markdown.encode()))
    print("\n\n".join(sections[3:]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
