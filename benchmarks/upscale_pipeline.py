"""pyimg upscale end to end: the whole pipeline's fps beside the network alone on the same
frames and batch (goal: >= 0.9 of it, the pipeline's overhead hidden behind the model), and
each other stage alone (decode, the model stage with colour conversion, encode), so the slowest
stage is known, and end to end into a raw pipe (no encoder).

    python benchmarks/upscale_pipeline.py [--device cpu|cuda] [--quick] [--out DIR]

CPU cases: ESPCN x2 360p -> 720p and ESPCN x4 270p -> 1080p; CUDA cases: ESPCN x2 1080p -> 4K
and SRResNet x4 270p -> 1080p (goal: real time, >= 60 fps end to end). Weights are random
(speed does not depend on them). The input is the sample clip's camera path over coffee.png
rendered at the case's size, H.264 CRF 18; the output H.264 CRF 18 (pyimg's default), preset
medium unless a row says otherwise. Each measurement is the best of ``REPEATS`` runs, the
host's load average is written beside it. Writes upscale_<device>.md and .csv to --out.

Not a ``bench_<op>.py``: those are op suites that ``pyimg bench ops`` collects; this one times
a whole application, so it stands alone (its own few lines of reporting).
"""

import argparse
import csv
import datetime
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.nn.functional as F

from pyimg.models import ESPCN, SRResNet
from pyimg.video import sample, upscale
from pyimg.video.engine import Upscaler
from pyimg.video.model_spec import SRModel
from pyimg.video.picture import Picture
from pyimg.video.report import device_name
from pyimg.video.video_reader import VideoReader
from pyimg.video.video_writer import EncodeOptions, VideoWriter, choose_codec

REPEATS = 2


@dataclass(frozen=True)
class Case:
    name: str
    architecture: str
    scale: int
    size: tuple[int, int]  # input width, height
    frames: int
    batch: int
    preset: str | None = None


CPU_CASES = [Case("ESPCN x2 360p->720p", "espcn", 2, (640, 360), 32, 1),
             Case("ESPCN x2 360p->720p", "espcn", 2, (640, 360), 32, 1, "veryfast"),
             Case("ESPCN x4 270p->1080p", "espcn", 4, (480, 270), 32, 1),
             Case("ESPCN x4 270p->1080p", "espcn", 4, (480, 270), 32, 1, "veryfast")]
GPU_CASES = [Case("ESPCN x2 1080p->4K", "espcn", 2, (1920, 1080), 120, 4),
             Case("SRResNet x4 270p->1080p", "srresnet", 4, (480, 270), 120, 8)]


def model_for(case: Case) -> SRModel:
    torch.manual_seed(0)
    if case.architecture == "espcn":
        return SRModel(ESPCN(case.scale).eval(), case.scale, "y", f"ESPCN x{case.scale}")
    return SRModel(SRResNet(case.scale).eval(), case.scale, "rgb", f"SRResNet x{case.scale}")


def make_input(path: Path, case: Case) -> None:
    """The sample's camera path over coffee.png at the case's size (bilinear, upsampled where
    the photo is smaller: content for the codecs, not a truth), H.264 CRF 18."""
    photo = torch.from_numpy(sample.load_photo(sample.photo_path())).permute(2, 0, 1)[None]
    height, width = photo.shape[-2:]
    frames = []
    for i in range(case.frames):
        left, top, crop = sample.camera(i, case.frames, (width, height))
        tall = crop * case.size[1] / case.size[0]
        window = photo[..., int(top):int(top + tall), int(left):int(left + crop)].float()
        frame = F.interpolate(window, size=case.size[::-1], mode="bilinear", antialias=True)
        frames.append(frame[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy())
    sample.write_clip(path, np.stack(frames), crf=18, preset="veryfast")


def _best(runs: list[float]) -> float:
    return max(runs)


def decode_fps(path: Path) -> float:
    start = time.perf_counter()
    reader = VideoReader(path, copy_streams=False)
    count = sum(1 for _ in reader)
    reader.close()
    return count / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def network_fps(sr: SRModel, pictures: list[Picture], batch: int,
                device: str) -> tuple[float, float]:
    """The network alone: model inputs prepared on the device beforehand, as the pipeline
    would hand them over (channels_last, the model's dtype). (fps, process CPU ms a frame)"""
    up = Upscaler(sr, device=device)
    path = up.colour_path(pictures[0].layout, pictures[0].layout)
    inputs = []
    with torch.inference_mode():
        for i in range(0, len(pictures), batch):
            planes = [torch.from_numpy(np.stack(p)).to(up.device) for p in
                      zip(*(q.planes for q in pictures[i:i + batch]), strict=True)]
            x, _ = path.to_model(planes)
            inputs.append(x.contiguous(memory_format=torch.channels_last))
        up.network(inputs[0])
        _synchronize(up.device)
        start, cpu = time.perf_counter(), time.process_time()
        for x in inputs:
            up.network(x)
        _synchronize(up.device)
    frames = len(pictures)
    return (frames / (time.perf_counter() - start),
            (time.process_time() - cpu) * 1e3 / frames)


def model_stage(sr: SRModel, pictures: list[Picture], batch: int, device: str):
    """Upload + colour conversion + network + requantization + download of every batch, one
    after the other (no overlap): its fps and the output pictures."""
    up = Upscaler(sr, device=device)
    layout = pictures[0].layout
    path = up.colour_path(layout, layout)
    groups = [pictures[i:i + batch] for i in range(0, len(pictures), batch)]
    up.host_arrays(up.compute(up.upload([p.planes for p in groups[0]]), path), len(groups[0]))
    outputs = []
    start = time.perf_counter()
    for group in groups:
        arrays = up.host_arrays(up.compute(up.upload([p.planes for p in group]), path),
                                len(group))
        outputs += [Picture([a[i] for a in arrays], layout, p.pts) for i, p in
                    enumerate(group)]
    return len(pictures) / (time.perf_counter() - start), outputs


def encode_fps(path: Path, reader_info, outputs: list[Picture], case: Case, out: Path) -> float:
    height, width = outputs[0].size
    options = EncodeOptions(preset=case.preset)
    codec = choose_codec(str(out), reader_info, None)
    start = time.perf_counter()
    writer = VideoWriter(out, reader_info, outputs[0].layout, width, height, options, codec)
    for picture in outputs:
        writer.write(picture)
    writer.close()
    return len(outputs) / (time.perf_counter() - start)


def run_case(case: Case, device: str, folder: Path) -> dict:
    source = folder / f"in_{case.size[0]}x{case.size[1]}_{case.frames}.mp4"
    if not source.exists():
        make_input(source, case)
    sr = model_for(case)
    reader = VideoReader(source, copy_streams=False)
    info = reader.info
    pictures = [Picture([p.copy() for p in item.planes], item.layout, item.pts)
                for item in reader]
    reader.close()
    row = {"case": case.name, "batch": case.batch, "frames": len(pictures),
           "encoder": f"libx264 crf 18 preset {case.preset or 'medium'}",
           "load_before": round(os.getloadavg()[0], 2)}
    row["decode_fps"] = _best([decode_fps(source) for _ in range(REPEATS)])
    stage_runs = [model_stage(sr, pictures, case.batch, device) for _ in range(REPEATS)]
    row["model_stage_fps"] = _best([fps for fps, _ in stage_runs])
    outputs = stage_runs[0][1]
    row["encode_fps"] = _best([encode_fps(source, info, outputs, case, folder / "enc.mp4")
                               for _ in range(REPEATS)])
    # The network alone and the whole pipeline in turns, so load drifts hit both alike.
    network, end_to_end, raw = [], [], []
    for _ in range(REPEATS):
        network.append(network_fps(sr, pictures, case.batch, device))
        cpu = time.process_time()
        report = upscale(source, folder / "out.mp4", sr, device=device, batch=case.batch,
                         preset=case.preset, progress=False, copy_streams=False)
        end_to_end.append((report, (time.process_time() - cpu) * 1e3 / report["frames"]))
        with open(os.devnull, "wb") as sink:  # the pipeline without an encoder's CPU time
            raw.append(upscale(source, "-", sr, device=device, batch=case.batch,
                               progress=False, stdout=sink)["fps"])
    row["raw_out_fps"] = max(raw)
    row["raw_of_network"] = round(row["raw_out_fps"] / max(network)[0], 3)
    row["network_fps"], row["network_cpu_ms"] = max(network)
    best, row["end_to_end_cpu_ms"] = max(end_to_end, key=lambda run: run[0]["fps"])
    row["end_to_end_fps"] = best["fps"]
    row["of_network"] = round(best["fps"] / row["network_fps"], 3)
    row["cpu_of_network"] = round(row["network_cpu_ms"] / row["end_to_end_cpu_ms"], 3)
    row["slowest_stage_in_pipeline"] = best.get("slowest_stage")
    row["load_after"] = round(os.getloadavg()[0], 2)
    for key in ("decode_fps", "network_fps", "model_stage_fps", "encode_fps", "end_to_end_fps",
                "network_cpu_ms", "end_to_end_cpu_ms", "raw_out_fps"):
        row[key] = round(row[key], 2)
    return row


def _markdown(headers: list[str], rows: list[dict]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(row[h]) for h in headers) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="one short case")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (results file "
                        "upscale_<device>_threads<N>)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cases = GPU_CASES if device.type == "cuda" else CPU_CASES
    if args.quick:
        cases = [Case(c.name, c.architecture, c.scale, c.size, 8, c.batch, c.preset)
                 for c in cases[:1]]
    name = device_name(device) if device.type == "cuda" else (
        f"{device_name(device).split(',')[0]}, {os.cpu_count()} cores")
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            rows.append(run_case(case, str(device), Path(folder)))
            print(rows[-1], flush=True)
    headers = ["case", "encoder", "batch", "frames", "decode_fps", "network_fps",
               "model_stage_fps", "encode_fps", "end_to_end_fps", "of_network",
               "network_cpu_ms", "end_to_end_cpu_ms", "cpu_of_network", "raw_out_fps",
               "raw_of_network", "slowest_stage_in_pipeline", "load_before", "load_after"]
    notes = ("fps: frames per second, best of 2 runs. network: the model's forward alone on "
             "inputs already on the device; model stage: upload + colour conversion + network "
             "+ requantization + download, one batch after another; decode / encode: that "
             "stage alone; end to end: `pyimg.video.upscale` (decode thread -> model -> "
             "encode thread). of_network: end to end / network (goal >= 0.9). cpu_ms: this "
             "process's CPU time (all its threads) a frame, network alone and end to end; "
             "cpu_of_network: their ratio, what of_network would be on an idle host where the "
             "cores are the limit (CPU time includes OpenMP's spin-waits, which other "
             "processes inflate). raw_out: end to end with raw frames to /dev/null instead of "
             "an encoder, the pipeline's own overhead without the encoder's CPU time. load: "
             "the host's 1-minute load average before and after "
             f"the case (other processes share the {os.cpu_count()} cores).")
    text = "\n\n".join([
        f"# upscale{' (quick)' * args.quick}",
        f"device: {name}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{date}", notes, _markdown(headers, rows)]) + "\n"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    slug += f"_threads{args.threads}" if args.threads else ""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"upscale_{slug}.md").write_text(text)
    with open(args.out / f"upscale_{slug}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], "device", "torch", "date"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "device": name, "torch": torch.__version__, "date": date})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
