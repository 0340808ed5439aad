"""Moving batches of planes between host and device.

On the CPU the "device" is the host: a batch is one numpy stack viewed as a tensor. On CUDA a
batch is stacked into pinned (page-locked) host memory and copied on a separate copy stream, so
uploads and downloads overlap the model's kernels on the compute stream; events order the
streams, and the host waits only where it reads the downloaded planes. Pinned buffers come
from PyTorch's caching host allocator, which reuses one only after the copies that read it
have finished.
"""

from dataclasses import dataclass

import numpy as np
import torch

from pyimg.video.stats import StageTimes

TORCH_DTYPE = {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.uint16}


@dataclass
class DeviceBatch:
    planes: list[torch.Tensor]  # (B, H, W) or packed (B, H, W, 3) integer samples
    ready: object = None  # CUDA: event the consumer's stream must wait for
    keep: object = None  # CUDA: host buffers to keep alive until the copy is done


class HostTransfer:
    def __init__(self, times: StageTimes):
        self.times = times

    def upload(self, planes_per_picture: list[list[np.ndarray]]) -> DeviceBatch:
        with self.times.timed("upload", len(planes_per_picture)):
            planes = [torch.from_numpy(np.stack(p)) for p in zip(*planes_per_picture, strict=True)]
        return DeviceBatch(planes)

    def wait(self, batch: DeviceBatch) -> None:
        pass

    def download(self, planes: list[torch.Tensor], frames: int) -> DeviceBatch:
        return DeviceBatch(planes)

    def host_arrays(self, batch: DeviceBatch, frames: int) -> list[np.ndarray]:
        with self.times.timed("download", frames):
            return [p.numpy() for p in batch.planes]


class CudaTransfer:
    def __init__(self, device: torch.device, times: StageTimes):
        self.device, self.times = device, times
        self.copy_stream = torch.cuda.Stream(device)

    def _events(self):
        return (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))

    def upload(self, planes_per_picture: list[list[np.ndarray]]) -> DeviceBatch:
        frames = len(planes_per_picture)
        host = []
        for arrays in zip(*planes_per_picture, strict=True):
            first = arrays[0]
            buffer = torch.empty((frames, *first.shape), dtype=TORCH_DTYPE[first.dtype],
                                 pin_memory=True)
            np.stack(arrays, out=buffer.numpy())
            host.append(buffer)
        start, end = self._events()
        with torch.cuda.device(self.device), torch.cuda.stream(self.copy_stream):
            start.record()
            planes = [h.to(self.device, non_blocking=True) for h in host]
            end.record()
        self.times.add_events("upload", start, end, frames)
        return DeviceBatch(planes, ready=end, keep=host)

    def wait(self, batch: DeviceBatch) -> None:
        """Make the current (compute) stream wait for ``batch``'s upload."""
        stream = torch.cuda.current_stream(self.device)
        stream.wait_event(batch.ready)
        for plane in batch.planes:
            plane.record_stream(stream)

    def download(self, planes: list[torch.Tensor], frames: int) -> DeviceBatch:
        """Queue the copy of ``planes`` to pinned host memory behind the compute stream."""
        computed = torch.cuda.Event()
        computed.record(torch.cuda.current_stream(self.device))
        start, end = self._events()
        with torch.cuda.device(self.device), torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(computed)
            start.record()
            host = []
            for plane in planes:
                plane.record_stream(self.copy_stream)
                buffer = torch.empty(plane.shape, dtype=plane.dtype, pin_memory=True)
                buffer.copy_(plane, non_blocking=True)
                host.append(buffer)
            end.record()
        self.times.add_events("download", start, end, frames)
        return DeviceBatch(host, ready=end)

    def host_arrays(self, batch: DeviceBatch, frames: int) -> list[np.ndarray]:
        batch.ready.synchronize()
        return [p.numpy() for p in batch.planes]
