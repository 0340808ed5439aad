"""Meta (shape-only) kernels for the oneDNN ops the fused modules call that torch leaves
without one, so that ``torch.compile`` can trace an optimized model: torch registers
``mkldnn::_convolution_pointwise`` (which inductor emits itself) but not the fused-sum and
transposed variants, which inductor only creates after tracing. Registered only where
torch has none."""

import torch

_OPS = ("mkldnn::_convolution_pointwise.binary", "mkldnn::_convolution_transpose_pointwise")
_library = None


def _conv_sum(x, other, weight, bias, padding, stride, dilation, groups, binary_attr, alpha,
              unary_attr, unary_scalars, unary_algorithm):
    return torch.empty_like(other, memory_format=torch.channels_last)


def _conv_transpose(x, weight, bias, padding, output_padding, stride, dilation, groups, attr,
                    scalars, algorithm):
    size = [x.shape[0], weight.shape[0]]
    for i in range(2):
        size.append((x.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                    + dilation[i] * (weight.shape[2 + i] - 1) + output_padding[i] + 1)
    return x.new_empty(size).contiguous(memory_format=torch.channels_last)


def register_missing() -> None:
    global _library
    if _library is not None or not torch.backends.mkldnn.is_available():
        return
    _library = torch.library.Library("mkldnn", "IMPL", "Meta")
    for name, kernel in zip(_OPS, (_conv_sum, _conv_transpose), strict=True):
        if not torch._C._dispatch_has_kernel_for_dispatch_key(name, "Meta"):
            _library.impl(name.split("::")[1], kernel)
