"""``optimize_for_inference``: a zoo model or a user model, prepared for fast CPU inference."""

import copy
import warnings

import torch
from torch import nn

from pyimg.inference import capability, memory
from pyimg.inference.fuse_graph import fuse_graph
from pyimg.inference.fuse_modules import fuse_modules
from pyimg.inference.model import InferenceModel


def optimize_for_inference(model: nn.Module, device="cpu", dtype: torch.dtype | None = None,
                           *, reuse_memory: bool = True) -> InferenceModel:
    """A frozen inference copy of ``model`` for the CPU (``model`` itself is not changed).

    * Every convolution runs on oneDNN's fused primitive with its weight prepacked once: an
      eval BatchNorm after it folds into its weight and bias, the activation after it (ReLU,
      LeakyReLU, PReLU, Tanh, Sigmoid, SiLU, GELU, Hardtanh / ReLU6, Hardswish) and a
      residual sum (``x + conv(y)``, optionally then ReLU) run in its epilogue; a PReLU with
      a weight per channel runs as one in-place pass after it. Activations and sums written
      in ``forward`` are found by tracing it (``torch.fx``) where it traces.
    * Activations stay channels_last; the returned model takes and returns any layout and
      floating dtype (outputs in the input's).
    * ``dtype``: ``torch.float32``, ``torch.bfloat16``, or None to pick bf16 on CPUs with
      native bf16 (AVX512-BF16, AMX-BF16, Arm BF16) and float32 elsewhere
      (``.bf16_missing`` on the result says why not).
    * ``reuse_memory``: serve large CPU allocations from a cache of freed blocks
      (``pyimg.inference.reuse_cpu_memory``; process-wide) so that successive frames do not
      page-fault their activations in again.

    The copy holds no gradients and ignores later changes to ``model``'s weights.
    """
    device = torch.device(device)
    if device.type != "cpu":
        raise ValueError(f"optimize_for_inference: only device='cpu' is supported, got "
                         f"{device}; on CUDA, pyimg's modules fuse their epilogues already")
    if not isinstance(model, nn.Module):
        raise TypeError(f"optimize_for_inference: expected an nn.Module, got "
                        f"{type(model).__name__}")
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("optimize_for_inference: move the model to the CPU first")
    bf16_missing = capability.native_bf16_missing() if dtype is None else None
    dtype = capability.inference_dtype(dtype)
    body = copy.deepcopy(model).eval()
    missing = capability.onednn_missing()
    if missing is not None:
        warnings.warn(f"optimize_for_inference: {missing}; the model runs unfused",
                      stacklevel=2)
    else:
        body = fuse_graph(fuse_modules(body, dtype))
    body = body.to(dtype=dtype, memory_format=torch.channels_last)
    if reuse_memory:
        memory.reuse_cpu_memory()
    return InferenceModel(body, dtype, bf16_missing).eval()
