"""Per-stage latencies of the pipeline: wall-clock samples, or CUDA event pairs resolved once
their work has finished; summarised per frame as p50/p90 (a batch stage's time is shared
equally among its frames)."""

import threading
import time
from contextlib import contextmanager

import numpy as np

STAGES = ("decode", "upload", "model", "download", "encode")
STAGE_NOTES = {
    "decode": "demux + decode one frame, to planes",
    "upload": "stack a batch of planes, copy it to the device",
    "model": "colour conversion, the network (tiles and blending included), requantization",
    "download": "copy a batch of output planes back to the host",
    "encode": "one frame to the encoder and muxer (or image file)",
}


class StageTimes:
    def __init__(self):
        self._samples: dict[str, list[float]] = {s: [] for s in STAGES}  # ms per frame
        self._pending: list[tuple[str, object, object, int]] = []
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float, frames: int = 1) -> None:
        if frames <= 0:
            return
        with self._lock:
            self._samples[stage].extend([seconds * 1e3 / frames] * frames)

    @contextmanager
    def timed(self, stage: str, frames: int = 1):
        start = time.perf_counter()
        yield
        self.add(stage, time.perf_counter() - start, frames)

    def add_events(self, stage: str, start, end, frames: int) -> None:
        """A CUDA event pair around a batch's work; resolved by ``resolve`` after ``end``
        has completed."""
        with self._lock:
            self._pending.append((stage, start, end, frames))

    def resolve(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for stage, start, end, frames in pending:
            end.synchronize()
            self.add(stage, start.elapsed_time(end) / 1e3, frames)

    def add_samples(self, samples: dict[str, list[float]]) -> None:
        """Per-frame milliseconds from another run's ``samples()`` (another process)."""
        with self._lock:
            for stage, values in samples.items():
                self._samples[stage].extend(values)

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {"p50_ms", "p90_ms", "mean_ms", "frames"}} for the stages that ran."""
        self.resolve()
        out = {}
        for stage, samples in self._samples.items():
            if samples:
                values = np.asarray(samples)
                out[stage] = {"p50_ms": float(np.percentile(values, 50)),
                              "p90_ms": float(np.percentile(values, 90)),
                              "mean_ms": float(values.mean()), "frames": len(samples)}
        return out

    def samples(self) -> dict[str, list[float]]:
        self.resolve()
        return {s: list(v) for s, v in self._samples.items()}
