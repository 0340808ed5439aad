"""pyimg's direct convolution for a network's last layer (``torch.ops.pyimg.conv2d_few_outputs``):
which layers it takes, its weight packing and its fake kernel for ``torch.compile``.

Measured on one core of an AMD EPYC (Zen 5) with AVX-512, against oneDNN's fused
convolution (same epilogue, weights prepacked): 32 -> 4 channels 3x3 on 360x640 5.2 ms vs
9.7 (fp32) and 3.5 vs 5.8 (bf16); 64 -> 3 9x9 on 512x512 62 vs 178 and 26 vs 91; but 32 -> 16
9.3 vs 5.7 and 64 -> 11 a tie, so it takes up to 4 output channels.
"""

import torch

from pyimg import _extension
from pyimg.inference.epilogue import Activation

MAX_OUT_CHANNELS = 4
_ACTIVATIONS = ("none", "relu", "leaky_relu", "tanh")
_AVX512 = ("avx512_f", "avx512_bw", "avx512_vl", "avx512_dq")


def _cpu_fits() -> bool:
    capabilities = torch.cpu.get_capabilities()
    return _extension.loaded() and all(capabilities.get(flag, False) for flag in _AVX512)


def fits(c_out: int, c_in: int, stride, dilation, groups: int, act: Activation,
         add: bool) -> bool:
    """Whether the kernel computes this convolution (and wins on this CPU)."""
    return (c_out <= MAX_OUT_CHANNELS and c_in % 16 == 0 and groups == 1 and not add
            and list(stride) == [1, 1] and list(dilation) == [1, 1]
            and (act.attr in _ACTIVATIONS or act.prelu_weight is not None) and _cpu_fits())


def pack(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(C_out, C_in, KH, KW) -> (KH, KW, C_out rounded up to 4, C_in) in dtype, zero-filled."""
    c_out, c_in, kh, kw = weight.shape
    padded = weight.new_zeros(-(-c_out // 4) * 4, c_in, kh, kw)
    padded[:c_out] = weight
    return padded.permute(2, 3, 0, 1).to(dtype).contiguous()


def conv(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, out_channels: int,
         padding: list[int], act: Activation) -> torch.Tensor:
    if act.prelu_weight is not None:
        name, slope = "prelu", 0.0
    else:
        name, slope = act.attr, act.scalars[0] if act.scalars else 0.0
    return torch.ops.pyimg.conv2d_few_outputs(x, packed, bias, out_channels, padding, name,
                                              slope, act.prelu_weight)


if _extension.loaded():
    @torch.library.register_fake("pyimg::conv2d_few_outputs")
    def _fake(x, packed_weight, bias, out_channels, padding, activation, negative_slope,
              prelu_weight):
        kh, kw = packed_weight.shape[:2]
        size = (x.shape[0], out_channels, x.shape[2] + 2 * padding[0] - kh + 1,
                x.shape[3] + 2 * padding[1] - kw + 1)
        return x.new_empty(size).contiguous(memory_format=torch.channels_last)
