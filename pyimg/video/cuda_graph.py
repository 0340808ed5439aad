"""A module replayed as a CUDA graph per input shape: one launch per batch instead of one per
kernel, which is what keeps a small network like ESPCN from being bound by launch latency.

Shapes are captured as they come, up to ``MAX_SHAPES`` (a video has one; a folder of images
may have many, and those beyond run eagerly). A capture that fails (an op that syncs with the
host, say) warns once and leaves the module eager.
"""

import warnings

import torch

MAX_SHAPES = 4


class CudaGraphForward:
    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.graphs: dict[tuple, tuple] = {}
        self.failed = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.stride())
        if self.failed or (key not in self.graphs and len(self.graphs) >= MAX_SHAPES):
            return self.module(x)
        if key not in self.graphs:
            try:
                self.graphs[key] = self._capture(x)
            except RuntimeError as error:
                self.failed = True
                warnings.warn(f"CUDA graph capture failed, running eagerly: {error}",
                              stacklevel=2)
                return self.module(x)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        # The next replay overwrites static_out; the caller's copy is its own.
        return static_out.clone()

    def _capture(self, x: torch.Tensor):
        static_in = x.clone()
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: lazy initialisation must not happen in the capture
                self.module(static_in)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.module(static_in)
        return graph, static_in, static_out
