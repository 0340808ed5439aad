"""Reading a traced forward (a torch.fx graph): which nodes are the layers and functions pyimg's
fused ops cover, in whichever form the model calls them (``nn.ReLU()``, ``F.relu``,
``torch.relu``, ``x.relu()``; ``nn.PixelShuffle`` or ``F.pixel_shuffle``; ``a + b``,
``torch.add``, ``a.add_``; ``y * 0.1``, ``y.mul(s)``)."""

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from pyimg import nn as pnn
from pyimg._activation import MODULE_ACTIVATIONS

_RELU = {F.relu, F.relu_, torch.relu, torch.relu_}
_LEAKY_RELU = {F.leaky_relu, F.leaky_relu_, torch._C._nn.leaky_relu, torch._C._nn.leaky_relu_}
_PRELU = {F.prelu, torch.prelu}
_TANH = {torch.tanh, torch.tanh_, F.tanh}
_SIGMOID = {torch.sigmoid, torch.sigmoid_, F.sigmoid}
_FUNCTION_KINDS = [(_RELU, "relu"), (_LEAKY_RELU, "leaky_relu"), (_PRELU, "prelu"),
                   (_TANH, "tanh"), (_SIGMOID, "sigmoid")]
_METHOD_KINDS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh",
                 "sigmoid": "sigmoid", "sigmoid_": "sigmoid"}
# Activations no pyimg epilogue computes, named for the report's near misses.
_OTHER_ACTIVATIONS = (nn.GELU, nn.SiLU, nn.ELU, nn.ReLU6, nn.Hardswish, nn.Hardtanh, nn.Mish,
                      nn.Softplus, nn.SELU, nn.CELU, nn.Hardsigmoid, nn.LogSigmoid)
_OTHER_ACTIVATION_FUNCTIONS = {F.gelu, F.silu, F.elu, F.relu6, F.hardswish, F.hardtanh, F.mish,
                               F.softplus, F.selu, F.celu, F.hardsigmoid}

_ADD = {operator.add, torch.add}
_IN_PLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv,
                       operator.ifloordiv, operator.ipow, operator.iand, operator.ior,
                       operator.ixor, operator.setitem}
_MUL = {operator.mul, torch.mul}
_SHUFFLE = {F.pixel_shuffle, torch.pixel_shuffle}
# Ops whose output may share memory with their first input.
_VIEW_METHODS = {"view", "view_as", "reshape", "reshape_as", "transpose", "permute", "flatten",
                 "unflatten", "narrow", "squeeze", "unsqueeze", "expand", "expand_as",
                 "contiguous", "select", "as_strided", "chunk", "split", "unbind", "t", "detach"}
_VIEW_FUNCTIONS = {operator.getitem, torch.reshape, torch.transpose, torch.permute,
                   torch.flatten, torch.narrow, torch.squeeze, torch.unsqueeze, torch.chunk,
                   torch.split, torch.unbind, torch.select, torch.t, torch.detach}


@dataclass(frozen=True)
class Activation:
    """An activation as pyimg's epilogues take it; a PReLU's weight is read from ``owner``'s
    attribute ``name`` at every call (so it trains and loads like the stock one)."""

    kind: str  # relu, leaky_relu, prelu, tanh, sigmoid
    negative_slope: float = 0.01
    owner: nn.Module | None = None
    name: str = "weight"

    def weight(self) -> torch.Tensor | None:
        return None if self.owner is None else getattr(self.owner, self.name)

    def size(self) -> int:
        """PReLU weight count (1 for the others)."""
        weight = self.weight()
        return 1 if weight is None else weight.numel()


class GraphView:
    """A traced forward and the module it was traced from, answering questions about nodes."""

    def __init__(self, graph: fx.Graph, owner: nn.Module):
        self.graph = graph
        self.owner = owner
        self._from_inputs: dict[fx.Node, bool] = {}

    def from_inputs(self, node: fx.Node) -> bool:
        """Whether node's value is computed from the forward's inputs (not from parameters,
        buffers and constants alone, which a residual sum would broadcast)."""
        stack = [node]
        while stack:
            current = stack[-1]
            if current in self._from_inputs:
                stack.pop()
                continue
            if current.op == "placeholder":
                self._from_inputs[current] = True
                stack.pop()
                continue
            pending = [n for n in current.all_input_nodes if n not in self._from_inputs]
            if pending:
                stack.extend(pending)
                continue
            self._from_inputs[current] = any(self._from_inputs[n]
                                             for n in current.all_input_nodes)
            stack.pop()
        return self._from_inputs[node]

    def module(self, node: fx.Node) -> nn.Module | None:
        return self.owner.get_submodule(node.target) if node.op == "call_module" else None

    def attribute(self, node) -> tuple[nn.Module, str] | None:
        """(module, name) of a get_attr node's parameter or buffer."""
        if not isinstance(node, fx.Node) or node.op != "get_attr":
            return None
        path, _, name = node.target.rpartition(".")
        return self.owner.get_submodule(path), name

    def activation(self, node: fx.Node, source: fx.Node) -> Activation | None:
        """The activation ``node`` applies to ``source``, if it is one pyimg fuses."""
        if first_input(node) is not source:
            return None
        module = self.module(node)
        if module is not None:
            kind = MODULE_ACTIVATIONS.get(type(module))
            if kind == "leaky_relu":
                return Activation(kind, module.negative_slope)
            if kind == "prelu":
                return Activation(kind, owner=module)
            return None if kind is None else Activation(kind)
        if node.op == "call_method":
            kind = _METHOD_KINDS.get(node.target)
            return None if kind is None else Activation(kind)
        if node.op != "call_function":
            return None
        kind = next((k for targets, k in _FUNCTION_KINDS if node.target in targets), None)
        if kind == "leaky_relu":
            slope = node.args[1] if len(node.args) > 1 else node.kwargs.get("negative_slope",
                                                                              0.01)
            return Activation(kind, float(slope)) if isinstance(slope, (int, float)) else None
        if kind == "prelu":
            weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
            attribute = self.attribute(weight)
            return None if attribute is None else Activation(kind, owner=attribute[0],
                                                             name=attribute[1])
        return None if kind is None else Activation(kind)

    def unfusable_activation(self, node: fx.Node) -> str | None:
        """The name of an activation no pyimg epilogue computes (for near misses)."""
        module = self.module(node)
        if module is not None:
            return type(module).__name__ if isinstance(module, _OTHER_ACTIVATIONS) else None
        if node.op == "call_function" and node.target in _OTHER_ACTIVATION_FUNCTIONS:
            return node.target.__name__
        return None

    def pixel_shuffle(self, node: fx.Node, source: fx.Node) -> int | None:
        """The upscale factor when ``node`` pixel-shuffles ``source``."""
        if first_input(node) is not source:
            return None
        module = self.module(node)
        if module is not None:
            return module.upscale_factor if type(module) in (nn.PixelShuffle,
                                                             pnn.PixelShuffle) else None
        if node.op == "call_function" and node.target in _SHUFFLE:
            factor = node.args[1] if len(node.args) > 1 else node.kwargs.get("upscale_factor")
            return factor if isinstance(factor, int) else None
        return None

    def is_conv(self, node: fx.Node) -> bool:
        # pyimg's drop-in computes what stock does: fusions take it too.
        return type(self.module(node)) in (nn.Conv2d, pnn.Conv2d)

    def is_batch_norm(self, node: fx.Node, source: fx.Node | None = None) -> bool:
        return type(self.module(node)) is nn.BatchNorm2d and (
            source is None or first_input(node) is source)

    def mutates(self, node: fx.Node) -> bool:
        """Whether node writes into one of its inputs."""
        if node.op == "call_module":
            return bool(getattr(self.module(node), "inplace", False))
        if node.op == "call_function" and node.target in _IN_PLACE_OPERATORS:
            return True
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        return node.op in ("call_method", "call_function") and (
            (name.endswith("_") and not name.endswith("__")) or node.kwargs.get("inplace") is True)


def first_input(node: fx.Node):
    if node.args:
        return node.args[0]
    return next(iter(node.kwargs.values()), None)


def sole_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def scaled_by(node: fx.Node, source: fx.Node) -> float | None:
    """The number ``node`` multiplies ``source`` by (``y * s``, ``s * y``, ``y.mul(s)``)."""
    is_mul = (node.op == "call_function" and node.target in _MUL) or (
        node.op == "call_method" and node.target in ("mul", "mul_"))
    if not is_mul or len(node.args) != 2 or node.kwargs:
        return None
    a, b = node.args
    other = b if a is source else a if b is source else None
    if isinstance(other, bool) or not isinstance(other, (int, float)):
        return None
    return float(other)


def added_to(node: fx.Node, source: fx.Node):
    """The other operand when ``node`` is ``source + other`` (either order, alpha 1), a Node;
    else None."""
    is_add = (node.op == "call_function" and node.target in _ADD) or (
        node.op == "call_method" and node.target in ("add", "add_"))
    if not is_add or len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
        return None
    if set(node.kwargs) - {"alpha"}:
        return None
    a, b = node.args
    if node.op == "call_method" and a is not source:  # other.add_(y) writes into other
        return None
    other = b if a is source else a if b is source else None
    return other if isinstance(other, fx.Node) and other is not source else None


def base_of(node):
    """The node whose memory ``node`` may be a view of."""
    while isinstance(node, fx.Node) and (
            (node.op == "call_method" and node.target in _VIEW_METHODS)
            or (node.op == "call_function" and node.target in _VIEW_FUNCTIONS)):
        node = first_input(node)
    return node


def written_between(view: GraphView, first: fx.Node, last: fx.Node, value) -> bool:
    """Whether a node after ``first`` and before ``last`` writes into ``value`` (or a view of
    it): then a fused op placed at ``last`` would read it changed."""
    node = first.next
    while node is not last:
        if view.mutates(node) and any(base_of(a) is base_of(value)
                                      for a in (*node.args, *node.kwargs.values())):
            return True
        node = node.next
    return False
