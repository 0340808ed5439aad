"""pyimg's Winograd F(2x2, 3x3) convolution (``torch.ops.pyimg.conv2d_winograd``; Lavin &
Gray, CVPR 2016): which layers it takes, its weight transform and its fake kernel for
``torch.compile``.

Measured on one core of an AMD EPYC (Zen 5) with AVX-512, fp32, against oneDNN's fused
direct convolution: 64 -> 32 channels on 360x640 (ESPCN's middle layer, with tanh) 23.4 ms vs
36.4; 64 -> 64 on 135x240 6.0 vs 9.3; on 256x256 11.4 vs 18.7. It takes fp32 only: in bf16
oneDNN's direct convolution on the CPU's bf16 dot products is about as fast (18.0 ms for
the first; a bf16 version of this kernel on vdpbf16ps took 19.1, with twice stock bf16's
error from rounding the transformed inputs). The fp32 error is within 4e-6 of the output's
scale.
"""

import torch

from pyimg import _extension
from pyimg.inference.epilogue import Activation

_ACTIVATIONS = ("none", "relu", "leaky_relu", "tanh")
_AFTER_SUM = ("none", "relu")
_AVX512 = ("avx512_f", "avx512_bw", "avx512_vl", "avx512_dq")
# F(2x2, 3x3)'s filter transform (Lavin & Gray 2016, eq. 7).
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def _cpu_fits() -> bool:
    capabilities = torch.cpu.get_capabilities()
    return _extension.loaded() and all(capabilities.get(flag, False) for flag in _AVX512)


def fits(c_out: int, c_in: int, kernel_size, stride, dilation, groups: int, act: Activation,
         add: bool, dtype: torch.dtype) -> bool:
    """Whether the kernel computes this convolution (and wins on this CPU)."""
    if act.prelu_weight is not None:
        act_fits = not add
    else:
        act_fits = act.attr in (_AFTER_SUM if add else _ACTIVATIONS)
    return (dtype == torch.float32 and list(kernel_size) == [3, 3] and c_in % 16 == 0
            and c_out % 16 == 0 and groups == 1 and list(stride) == [1, 1]
            and list(dilation) == [1, 1] and act_fits and _cpu_fits())


def pack(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 3, 3) -> U = G g G^T as (16, C_in, C_out) float32, computed in float64."""
    g = torch.tensor(_G, dtype=torch.float64)
    u = torch.einsum("ai,ocij,bj->abco", g, weight.detach().double(), g)
    return u.reshape(16, weight.shape[1], weight.shape[0]).float().contiguous()


def conv(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, padding: list[int],
         act: Activation, residual: torch.Tensor | None) -> torch.Tensor:
    if act.prelu_weight is not None:
        name, slope = "prelu", 0.0
    else:
        name, slope = act.attr, act.scalars[0] if act.scalars else 0.0
    return torch.ops.pyimg.conv2d_winograd(x, packed, bias, padding, name, slope,
                                           act.prelu_weight, residual)


if _extension.loaded():
    @torch.library.register_fake("pyimg::conv2d_winograd")
    def _fake(x, packed_weight, bias, padding, activation, negative_slope, prelu_weight,
              residual):
        size = (x.shape[0], packed_weight.shape[2], x.shape[2] + 2 * padding[0] - 2,
                x.shape[3] + 2 * padding[1] - 2)
        return x.new_empty(size).contiguous(memory_format=torch.channels_last)
