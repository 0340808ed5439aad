"""The compute stage: a model on a device, with its dtype, backend, memory format, optional
``torch.compile`` and CUDA graphs, tiling when a frame does not fit, and colour conversion
around it.

Out-of-memory errors are retried with tiles half the size (down to a floor) instead of failing
the job; on CUDA the first tile size comes from the free memory and the memory a probe run of
the model needed per pixel.
"""

import contextlib
import math
import time
import warnings

import torch

import pyimg
from pyimg import _backend
from pyimg.video.cuda_graph import CudaGraphForward
from pyimg.video.model_spec import SRModel
from pyimg.video.planes import ColourPath
from pyimg.video.stats import StageTimes
from pyimg.video.tiling import receptive_radius, tiled_forward
from pyimg.video.transfer import CudaTransfer, DeviceBatch, HostTransfer

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FEATHER = 4  # pixels of blending band beyond the receptive radius, each side
MIN_TILE_CORE = 16


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text
                                                or "not enough memory" in text)


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"--device: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is visible")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device}: pyimg upscales on cpu or cuda")
    return device


class Upscaler:
    def __init__(self, model: SRModel, device: str | None = None, dtype: str = "fp32",
                 backend: str | None = None, compile: bool = False, tile: int | None = None,
                 overlap: int | None = None, cuda_graphs: bool = True,
                 optimize: bool = True, times: StageTimes | None = None):
        self.model = model
        self.device = pick_device(device)
        if dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {list(DTYPES)}, got {dtype!r}")
        self.dtype = DTYPES[dtype]
        if backend is not None:
            reason = _backend.unavailable(_backend._validated(backend), self.device)
            if reason is not None:
                raise ValueError(f"--backend {backend}: {reason}")
        self.backend = backend
        if tile is not None and tile < 1:
            raise ValueError(f"--tile must be positive, got {tile}")
        if overlap is not None and overlap < 0:
            raise ValueError(f"--overlap must be 0 or more, got {overlap}")
        self.tile, self._overlap = tile, overlap
        self.times = times or StageTimes()
        self.cuda = self.device.type == "cuda"
        self.transfer = (CudaTransfer(self.device, self.times) if self.cuda
                         else HostTransfer(self.times))
        self.module = model.module.to(self.device, self.dtype).eval()
        self.module = self.module.to(memory_format=torch.channels_last)
        self._radius: int | bool | None = False  # False: not measured yet
        self._forward = self.module
        if optimize and self._cpu_optimizable():
            # oneDNN's fused convolutions with prepacked weights (pyimg.inference); the plain
            # module stays for the receptive-radius probe, which needs gradients.
            from pyimg.inference import optimize_for_inference
            self._forward = optimize_for_inference(self.module, dtype=self.dtype)
        if compile:
            mode = "reduce-overhead" if self.cuda else None  # inductor's own CUDA graphs
            self._forward = torch.compile(self._forward, mode=mode, dynamic=False)
        elif self.cuda and cuda_graphs:
            self._forward = CudaGraphForward(self.module)
        self._paths: dict = {}
        self._auto_tiles: dict = {}

    def _cpu_optimizable(self) -> bool:
        """The CPU path of the default backends, in a dtype oneDNN's fused convolutions take."""
        return (self.device.type == "cpu" and self.backend is None
                and self.dtype in (torch.float32, torch.bfloat16))

    @property
    def scale(self) -> int:
        return self.model.scale

    def radius(self) -> int | None:
        if self._radius is False:
            with self._backend():
                self._radius = receptive_radius(self.module, self.model.in_channels,
                                                self.scale)
        return self._radius

    def overlap(self) -> int:
        if self._overlap is not None:
            return self._overlap
        radius = self.radius()
        return 16 if radius is None else radius + FEATHER

    def colour_path(self, in_layout, out_layout) -> ColourPath:
        key = (in_layout, out_layout)
        if key not in self._paths:
            self._paths[key] = ColourPath(in_layout, out_layout, self.model.channels)
        return self._paths[key]

    def _backend(self):
        return pyimg.use_backend(self.backend) if self.backend else contextlib.nullcontext()

    def network(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        return self._forward(x).float()

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """The model on a (B, C, H, W) float batch, tiled when asked, when it does not fit, or
        when an attempt ran out of memory."""
        tile = self.tile or self._auto_tile(x)
        while True:
            try:
                if tile is None or tile >= max(x.shape[-2:]):
                    return self.network(x)
                return tiled_forward(self.network, x, self.scale, tile, self.overlap(),
                                     self.radius())
            except (torch.OutOfMemoryError, RuntimeError) as error:
                if not is_out_of_memory(error):
                    raise
                smaller = self._smaller_tile(tile, x)
                warnings.warn(f"out of memory on {tuple(x.shape)} with tile {tile}; retrying "
                              f"with tile {smaller}", stacklevel=2)
                if self.cuda:
                    torch.cuda.empty_cache()
                tile = smaller
                self.tile = tile  # later batches start from the size that fitted

    def _smaller_tile(self, tile: int | None, x: torch.Tensor) -> int:
        overlap = self.overlap()
        floor = 2 * overlap + MIN_TILE_CORE
        current = tile if tile is not None else max(x.shape[-2:])
        if current <= floor:
            raise OSError(f"out of memory upscaling a batch of {tuple(x.shape)} even with "
                          f"{current}-pixel tiles: lower --batch, use --dtype fp16, or free "
                          "device memory")
        return max(floor, current // 2)

    def _auto_tile(self, x: torch.Tensor) -> int | None:
        """On CUDA: the largest tile whose activations fit in 80% of the free memory, by the
        bytes per pixel a 128 x 128 probe needed; None when the whole batch fits."""
        if not self.cuda:
            return None
        key = tuple(x.shape)
        if key not in self._auto_tiles:
            free, _ = torch.cuda.mem_get_info(self.device)
            free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(
                self.device)
            per_pixel = self._bytes_per_pixel()
            batch, _, height, width = x.shape
            fits = batch * height * width * per_pixel <= 0.8 * free
            side = int(math.sqrt(0.8 * free / per_pixel / batch))
            self._auto_tiles[key] = None if fits else max(side, 2 * self.overlap()
                                                          + MIN_TILE_CORE)
        return self._auto_tiles[key]

    def _bytes_per_pixel(self) -> float:
        side = 128
        probe = torch.zeros(1, self.model.in_channels, side, side, device=self.device)
        torch.cuda.synchronize(self.device)
        base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        with torch.inference_mode(), self._backend():
            self.module(probe.to(self.dtype).contiguous(memory_format=torch.channels_last))
        peak = torch.cuda.max_memory_allocated(self.device) - base
        return max(peak, 1) / side**2

    def upload(self, planes_per_picture) -> DeviceBatch:
        return self.transfer.upload(planes_per_picture)

    def compute(self, batch: DeviceBatch, path: ColourPath) -> DeviceBatch:
        """Colour conversion + model + requantization of one uploaded batch; returns the
        (possibly still copying) download of its output planes."""
        if self.cuda:
            with torch.cuda.device(self.device):  # events and streams of this device
                return self._compute(batch, path)
        return self._compute(batch, path)

    def _compute(self, batch: DeviceBatch, path: ColourPath) -> DeviceBatch:
        self.transfer.wait(batch)
        frames = batch.planes[0].shape[0]
        if self.cuda:
            start, end = (torch.cuda.Event(enable_timing=True),
                          torch.cuda.Event(enable_timing=True))
            start.record()
        else:
            began = time.perf_counter()
        with torch.inference_mode(), self._backend():
            x, kept = path.to_model([p.to(self.device) for p in batch.planes])
            out = path.from_model(self.infer(x), kept)
        if self.cuda:
            end.record()
            self.times.add_events("model", start, end, frames)
        else:
            self.times.add("model", time.perf_counter() - began, frames)
        return self.transfer.download(out, frames)

    def host_arrays(self, batch: DeviceBatch, frames: int):
        return self.transfer.host_arrays(batch, frames)
