"""Fast CPU inference: ``optimize_for_inference(model)`` fuses a model's convolutions with
what follows them on oneDNN's post-ops, prepacks their weights, keeps activations
channels_last, computes in bf16 where the CPU has it natively, and reuses large blocks of
memory between calls (see ``optimize.py`` for the details)."""

from pyimg.inference.capability import native_bf16_missing
from pyimg.inference.fused_conv import FusedConv2d, FusedConvTranspose2d
from pyimg.inference.memory import cpu_memory_cache_info, empty_cpu_memory_cache, reuse_cpu_memory
from pyimg.inference.model import InferenceModel
from pyimg.inference.optimize import optimize_for_inference

__all__ = [
    "FusedConv2d",
    "FusedConvTranspose2d",
    "InferenceModel",
    "cpu_memory_cache_info",
    "empty_cpu_memory_cache",
    "native_bf16_missing",
    "optimize_for_inference",
    "reuse_cpu_memory",
]
