"""Which dtype the CPU path picks, and what it says when bf16 is not native."""

import pytest
import torch

from pyimg.inference import capability, native_bf16_missing, optimize_for_inference
from pyimg.models import ESPCN


def test_automatic_dtype_follows_the_cpu():
    expected = torch.bfloat16 if native_bf16_missing() is None else torch.float32
    assert capability.inference_dtype(None) == expected
    fast = optimize_for_inference(ESPCN(upscale_factor=2))
    assert fast.dtype == expected
    assert (fast.bf16_missing is None) == (expected == torch.bfloat16)


def test_cpu_without_native_bf16(monkeypatch):
    flags = {k: v for k, v in torch.cpu.get_capabilities().items()
             if k not in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: flags)
    assert "no native bf16" in capability.native_bf16_missing()
    fast = optimize_for_inference(ESPCN(upscale_factor=2))
    assert fast.dtype == torch.float32 and "no native bf16" in fast.bf16_missing
    with pytest.warns(UserWarning, match="emulated"):
        assert capability.inference_dtype(torch.bfloat16) == torch.bfloat16
