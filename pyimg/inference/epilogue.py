"""What a convolution's epilogue can absorb: activation modules and functions as oneDNN
post-ops (``torch.ops.mkldnn._convolution_pointwise``'s ``attr, scalars, algorithm``), or
a per-channel PReLU for pyimg's own in-place pass."""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Activation:
    """A post-op: oneDNN's unary ``attr`` with its ``scalars`` and ``algorithm``, or, for a
    PReLU with one weight per channel, ``attr == "none"`` and the ``prelu_weight``."""

    attr: str = "none"
    scalars: list = field(default_factory=list)
    algorithm: str = ""
    prelu_weight: torch.Tensor | None = None

    @property
    def is_identity(self) -> bool:
        return self.attr == "none" and self.prelu_weight is None

    def repeated(self, times: int) -> "Activation":
        """The same activation for a tensor whose channel c became channels c * times ...
        (c + 1) * times - 1 (a pixel shuffle's input)."""
        if self.prelu_weight is None:
            return self
        weight = self.prelu_weight.repeat_interleave(times)
        return Activation(self.attr, self.scalars, self.algorithm, weight)


IDENTITY = Activation()


def _prelu(weight: torch.Tensor) -> Activation:
    weight = weight.detach().float().reshape(-1)
    if weight.numel() == 1:  # one slope: PReLU is a LeakyReLU, which oneDNN fuses
        return Activation("leaky_relu", [float(weight)])
    return Activation(prelu_weight=weight.clone())


def from_module(module: nn.Module) -> Activation | None:
    """The post-op computing ``module`` (an exact stock type), or None."""
    kind = type(module)
    if kind is nn.ReLU:
        return Activation("relu")
    if kind is nn.Tanh:
        return Activation("tanh")
    if kind is nn.Sigmoid:
        return Activation("sigmoid")
    if kind is nn.SiLU:
        return Activation("swish")
    if kind is nn.Hardswish:
        return Activation("hardswish")
    if kind is nn.LeakyReLU:
        return Activation("leaky_relu", [float(module.negative_slope)])
    if kind is nn.ReLU6:
        return Activation("hardtanh", [0.0, 6.0])
    if kind is nn.Hardtanh:
        return Activation("hardtanh", [float(module.min_val), float(module.max_val)])
    if kind is nn.GELU:
        return Activation("gelu", [], module.approximate)
    if kind is nn.PReLU:
        return _prelu(module.weight)
    return None


_FUNCTIONS = {
    F.relu: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu_: "relu",
    torch.tanh: "tanh", F.tanh: "tanh", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    F.silu: "swish", F.hardswish: "hardswish", F.relu6: "relu6", F.leaky_relu: "leaky_relu",
    F.gelu: "gelu",
}
_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh",
            "sigmoid": "sigmoid", "sigmoid_": "sigmoid"}
def from_call(target, args: tuple, kwargs: dict, method: bool) -> Activation | None:
    """The post-op computing a traced call ``target(x, *args[1:], **kwargs)`` (a function,
    or with ``method`` a Tensor method name), or None; constant arguments only."""
    name = _METHODS.get(target) if method else _FUNCTIONS.get(target)
    if name is None:
        return None
    extra = dict(zip(("negative_slope", "inplace") if name == "leaky_relu" else ("inplace",),
                     args[1:], strict=False))
    extra.update(kwargs)
    if name == "leaky_relu":
        slope = extra.pop("negative_slope", 0.01)
        extra.pop("inplace", None)
        return Activation("leaky_relu", [float(slope)]) if _constant(slope) and not extra \
            else None
    if name == "gelu":
        approximate = extra.pop("approximate", "none")
        return Activation("gelu", [], approximate) if isinstance(approximate, str) and \
            not extra else None
    extra.pop("inplace", None)
    if extra:
        return None
    if name == "relu6":
        return Activation("hardtanh", [0.0, 6.0])
    return Activation(name)


def _constant(value) -> bool:
    return isinstance(value, (int, float))
