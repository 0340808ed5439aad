"""Inference convolutions with their epilogues fused, weights prepacked once.

``FusedConv2d`` computes ``act(conv(x) + other)`` (BatchNorm folded into the weight and
bias beforehand, ``other`` optional) in one kernel call, the activation applied while each
output tile is still in registers: pyimg's Winograd kernel for fp32 3x3 layers
(winograd.py), pyimg's direct kernel for last layers of at most 4 channels (few_outputs.py),
and otherwise ``torch.ops.mkldnn._convolution_pointwise``, the op inductor emits under
``freezing`` (onednn.py). A per-channel PReLU, which oneDNN's op cannot fuse, follows it as
one in-place pass (``torch.ops.pyimg.prelu_channels_``). ``FusedConvTranspose2d`` is the
transposed convolution on oneDNN. These modules hold a frozen copy: editing the source model
afterwards does not reach them.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from pyimg import _extension
from pyimg.inference import few_outputs, onednn, winograd
from pyimg.inference.epilogue import IDENTITY, Activation

# The unary post-ops oneDNN applies after a fused sum (torch's binary op accepts no others).
_AFTER_ADD = ("none", "relu")


def _pair(value) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (tuple, list)) else [int(value)] * 2


def prelu_channels_(y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """PReLU with one weight per channel of y, in place (pyimg's kernel; stock without it)."""
    if not _extension.loaded():
        return y.copy_(F.prelu(y, weight.to(y.dtype)))
    torch.ops.pyimg.prelu_channels_(y, weight)
    return y


if _extension.loaded():
    @torch.library.register_fake("pyimg::prelu_channels_")
    def _(x, weight):
        return None


class _Prepacked(nn.Module):
    """A module holding ``weight`` and its oneDNN-packed copy ``packed``, which has no
    storage to copy: a deep copy packs its copy of the weight again."""

    def _pack(self) -> torch.Tensor:
        raise NotImplementedError

    def __deepcopy__(self, memo):
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key != "packed":
                new.__dict__[key] = copy.deepcopy(value, memo)
        new.packed = new._pack()
        return new


class FusedConv2d(_Prepacked):
    """``act(conv2d(x, weight, bias, stride, padding, dilation, groups) [+ other])`` in ``dtype``
    with channels_last output. ``add=True`` takes ``other`` (the output's shape) in forward;
    ``act`` after a sum may only be none or relu (oneDNN's fused sum), and a ``other`` that
    does not match the output's shape is added after the fact (stock broadcasting)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride=1, padding=0,
                 dilation=1, groups: int = 1, act: Activation = IDENTITY, add: bool = False,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        if add and (act.attr not in _AFTER_ADD or act.prelu_weight is not None):
            raise ValueError(f"a fused sum takes no {act.attr!r} activation after it; "
                             f"expected one of {_AFTER_ADD}")
        self.stride, self.padding = _pair(stride), _pair(padding)
        self.dilation, self.groups = _pair(dilation), int(groups)
        self.kernel_size = list(weight.shape[2:])
        self.in_channels, self.out_channels = weight.shape[1] * groups, weight.shape[0]
        self.act, self.add, self.dtype = act, add, dtype
        with torch.no_grad():
            self.weight = weight.detach().to(dtype).contiguous()
            self.packed = self._pack()
            # fp32 bias: oneDNN adds it to the fp32 accumulator before rounding to bf16; the
            # fused sum takes only a bias of the input's dtype.
            self.bias = None if bias is None else bias.detach().float().clone()
            self.sum_bias = None if bias is None else bias.detach().to(dtype).clone()
            self.prelu_weight = act.prelu_weight
            # pyimg's own kernels where they beat oneDNN: a last layer of at most 4 channels
            # (few_outputs.py), fp32 3x3 convolutions by Winograd's algorithm (winograd.py).
            self.few_outputs_weight = few_outputs.pack(weight, dtype) if self._few_outputs_fit(
                act, add) else None
            self.winograd_weight = winograd.pack(weight) if self._winograd_fits(act, add) \
                else None

    def _pack(self) -> torch.Tensor:
        return onednn.pack(self.weight, self.padding, self.stride, self.dilation, self.groups)

    def with_epilogue(self, act: Activation, add: bool) -> "FusedConv2d":
        """The same convolution (sharing the packed weight) with the epilogue act, add."""
        if add and (act.attr not in _AFTER_ADD or act.prelu_weight is not None):
            raise ValueError(f"a fused sum takes no {act.attr!r} activation after it")
        fused = FusedConv2d.__new__(FusedConv2d)
        nn.Module.__init__(fused)
        fused.__dict__.update({k: v for k, v in self.__dict__.items() if not k.startswith("_")})
        fused.act, fused.add, fused.prelu_weight = act, add, act.prelu_weight
        if not fused._few_outputs_fit(act, add):
            fused.few_outputs_weight = None
        if not fused._winograd_fits(act, add):
            fused.winograd_weight = None
        return fused

    def _few_outputs_fit(self, act: Activation, add: bool) -> bool:
        return few_outputs.fits(self.out_channels, self.in_channels, self.stride, self.dilation,
                                self.groups, act, add)

    def _winograd_fits(self, act: Activation, add: bool) -> bool:
        return winograd.fits(self.out_channels, self.in_channels, self.kernel_size, self.stride,
                             self.dilation, self.groups, act, add, self.dtype)

    def _output_size(self, x: torch.Tensor) -> list[int]:
        size = [x.shape[0], self.out_channels]
        for i in range(2):
            extent = self.dilation[i] * (self.kernel_size[i] - 1) + 1
            size.append((x.shape[2 + i] + 2 * self.padding[i] - extent) // self.stride[i] + 1)
        return size

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        act = self.act
        if self.few_outputs_weight is not None:
            return few_outputs.conv(x, self.few_outputs_weight, self.bias, self.out_channels,
                                    self.padding, act)
        geometry = (self.padding, self.stride, self.dilation, self.groups)
        fused_sum = self.add and list(other.shape) == self._output_size(x) and \
            other.dtype == x.dtype
        if self.winograd_weight is not None and (fused_sum or not self.add):
            return winograd.conv(x, self.winograd_weight, self.bias, self.padding, act,
                                 other if fused_sum else None)
        if fused_sum:
            other = other.contiguous(memory_format=torch.channels_last)
            return onednn.conv2d(x, self.packed, self.weight, self.sum_bias, other, *geometry,
                                 act.attr, [], "")
        y = onednn.conv2d(x, self.packed, self.weight, self.bias, None, *geometry,
                          "none" if self.add else act.attr, act.scalars, act.algorithm)
        if self.add:
            y = y + other
            return y if act.attr == "none" else torch.relu_(y)
        if self.prelu_weight is not None:
            y = prelu_channels_(y, self.prelu_weight)
        return y

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={tuple(self.kernel_size)}"
                f", stride={tuple(self.stride)}, padding={tuple(self.padding)}")
        if self.dilation != [1, 1]:
            text += f", dilation={tuple(self.dilation)}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.add:
            text += ", add"
        if not self.act.is_identity:
            text += ", act=" + ("prelu" if self.prelu_weight is not None else self.act.attr)
        return text + f", dtype={self.dtype}, kernel={self.kernel}"

    @property
    def kernel(self) -> str:
        """Which implementation runs: few_outputs, winograd (pyimg's) or onednn."""
        if self.few_outputs_weight is not None:
            return "few_outputs"
        return "winograd" if self.winograd_weight is not None else "onednn"


class FusedConvTranspose2d(_Prepacked):
    """``conv_transpose2d(x, ...)`` with the weight prepacked, channels_last output."""

    def __init__(self, conv: nn.ConvTranspose2d, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.stride, self.padding = _pair(conv.stride), _pair(conv.padding)
        self.output_padding, self.dilation = _pair(conv.output_padding), _pair(conv.dilation)
        self.groups, self.dtype = conv.groups, dtype
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        with torch.no_grad():
            self.weight = conv.weight.detach().to(dtype).contiguous()
            self.packed = self._pack()
            self.bias = None if conv.bias is None else conv.bias.detach().float().clone()

    def _pack(self) -> torch.Tensor:
        return onednn.pack(self.weight, self.padding, self.stride, self.dilation, self.groups,
                           True, self.output_padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return onednn.conv_transpose2d(x, self.packed, self.weight, self.bias, self.padding,
                                       self.output_padding, self.stride, self.dilation,
                                       self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, stride={tuple(self.stride)}, "
                f"padding={tuple(self.padding)}, dtype={self.dtype}")
