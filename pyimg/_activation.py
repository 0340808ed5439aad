"""The activations pyimg fuses into kernel epilogues: the one table every layer reads.

``ACTIVATIONS`` holds the names in the order of their kernel codes (``enum class Activation``
in csrc/ops/activation.h, the constants of pyimg/triton/activation.py); ``CONV_ACTIVATIONS``
the ones conv2d's epilogue computes; ``MODULE_ACTIVATIONS`` the stock module of each.
"""

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("none", "relu", "leaky_relu", "prelu", "tanh", "sigmoid")
CONV_ACTIVATIONS = ACTIVATIONS[:4]
MODULE_ACTIVATIONS = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.PReLU: "prelu",
                      nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}


def check_activation(activation: str, weight: torch.Tensor | None, channels: int) -> None:
    """Raise like stock on a bad activation name or PReLU weight (1 or ``channels`` values)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    if (weight is not None) != (activation == "prelu"):
        raise ValueError("a weight is given exactly when activation='prelu'")
    if weight is not None and (weight.dim() > 1 or weight.numel() not in (1, channels)):
        raise RuntimeError(
            f"PReLU weight must be 1-D with 1 or {channels} element(s), "
            f"but got shape {tuple(weight.shape)}"
        )


def apply_activation(
    y: torch.Tensor, activation: str, weight: torch.Tensor | None, negative_slope: float
) -> torch.Tensor:
    """Stock-op reference of a fused activation over an NCHW tensor (PReLU on dim 1)."""
    if activation == "relu":
        return F.relu(y)
    if activation == "leaky_relu":
        return F.leaky_relu(y, negative_slope)
    if activation == "prelu":
        return F.prelu(y, weight)
    if activation == "tanh":
        return torch.tanh(y)
    if activation == "sigmoid":
        return torch.sigmoid(y)
    return y
