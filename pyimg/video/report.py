"""The run's report: what was upscaled, how fast end to end, each stage's latency; printed as
a summary and written as JSON (atomically) for ``--report``."""

import json
import sys
from pathlib import Path

import torch

from pyimg.atomic import atomic_output
from pyimg.machine import cpu_model
from pyimg.video.stats import STAGE_NOTES, STAGES, StageTimes


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def build(fields: dict, times: StageTimes, frames: int, seconds: float) -> dict:
    stages = times.summary()
    report = dict(fields)
    report.update(frames=frames, seconds=round(seconds, 4),
                  fps=round(frames / seconds, 3) if seconds > 0 else None, stages=stages)
    if stages:
        report["slowest_stage"] = max(stages, key=lambda s: stages[s]["mean_ms"])
    return report


def add_stream_verdict(report: dict, source_fps: float | None) -> None:
    """For a pipe: the rate the stages sustain without waiting for input (the slowest of
    upload, model, download and encode) and whether it keeps up with ``source_fps``."""
    busy = [v["mean_ms"] for s, v in report["stages"].items() if s != "decode"]
    capacity = 1e3 / max(busy) if busy and max(busy) > 0 else None
    report["capacity_fps"] = round(capacity, 3) if capacity else None
    report["source_fps"] = source_fps
    report["keeps_up"] = None if not (capacity and source_fps) else capacity >= source_fps


def summary(report: dict) -> str:
    """A few lines for a person: sizes, frames, fps, per-stage p50/p90."""
    lines = []
    size_in, size_out = report.get("input_size"), report.get("output_size")
    sizes = f" {size_in[0]}x{size_in[1]} -> {size_out[0]}x{size_out[1]}" if size_in else ""
    lines.append(f"{report['model']} x{report['scale']} on {report['device_name']}: "
                 f"{report['frames']} frames{sizes} in {report['seconds']:.2f} s, "
                 f"{report['fps'] or 0:.2f} fps end to end")
    for stage in STAGES:
        if stage in report["stages"]:
            s = report["stages"][stage]
            lines.append(f"  {stage:<8} p50 {s['p50_ms']:8.2f} ms  p90 {s['p90_ms']:8.2f} ms "
                         f"per frame  ({STAGE_NOTES[stage]})")
    if "slowest_stage" in report:
        lines.append(f"  slowest stage: {report['slowest_stage']}")
    if report.get("capacity_fps") is not None:
        verdict = {True: "keeps up with", False: "falls behind",
                   None: "no source rate (--fps) to compare with"}[report["keeps_up"]]
        rate = f" {report['source_fps']} fps" if report["source_fps"] else ""
        lines.append(f"  stream: sustains {report['capacity_fps']:.2f} fps, {verdict}{rate}")
    return "\n".join(lines)


def write(report: dict, path: str | Path) -> None:
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(report, indent=2) + "\n")


def print_summary(report: dict) -> None:
    print(summary(report), file=sys.stderr)
