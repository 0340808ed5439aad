"""What this CPU runs fast: oneDNN's fused convolutions, and bf16 in hardware."""

import warnings

import torch

# CPU flags (torch.cpu.get_capabilities) of a native bf16 dot product: AVX512-BF16 (AMD
# Zen 4 and later, Intel Cooper Lake), AMX-BF16 (Intel Sapphire Rapids and later), and the
# Arm BF16 extension. Without one, oneDNN emulates bf16 with fp32 arithmetic plus
# conversions, slower than plain fp32.
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def onednn_missing() -> str | None:
    """Why oneDNN's fused CPU convolutions cannot run here (None when they can)."""
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN (MKLDNN)"
    return None


def native_bf16_missing() -> str | None:
    """Why this CPU has no native bf16 arithmetic for convolutions (None when it has)."""
    missing = onednn_missing()
    if missing is not None:
        return missing
    capabilities = torch.cpu.get_capabilities()
    if not any(capabilities.get(flag, False) for flag in _NATIVE_BF16_FLAGS):
        return "the CPU has no native bf16 instructions (AVX512-BF16, AMX-BF16 or Arm BF16)"
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "oneDNN reports no bf16 support on this CPU"
    return None


def inference_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """The dtype the CPU path computes in: ``dtype`` when given, else bf16 where the CPU has
    it natively and float32 elsewhere. bf16 asked for on a CPU without it runs (oneDNN
    emulates it) with a warning that float32 is faster there."""
    if dtype is None:
        return torch.bfloat16 if native_bf16_missing() is None else torch.float32
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"optimize_for_inference: dtype must be torch.float32, torch.bfloat16 "
                         f"or None (automatic) on the CPU, got {dtype}")
    reason = native_bf16_missing() if dtype == torch.bfloat16 else None
    if reason is not None:
        warnings.warn(f"optimize_for_inference: bf16 asked for, but {reason}; it runs "
                      "emulated, slower than dtype=torch.float32", stacklevel=3)
    return dtype
