"""Graph-level fusion for what module-level fusion cannot see: activations and residual sums
written in ``forward`` (``F.leaky_relu(conv(x), 0.2)``, ``x + self.body(x)``).

The model is traced with ``torch.fx.symbolic_trace`` (fused convolutions, stock ``torch.nn``
modules and pyimg's modules as leaves); a ``FusedConv2d`` whose output feeds only an
activation (directly or through a pixel shuffle), or only a two-tensor sum (then optionally a
ReLU), takes them into its epilogue. Shuffles and sums are recognised by the readers
``pyimg.convert`` uses (pyimg/conversion/graph.py), in every form it takes them.
A module whose forward cannot be traced (data-dependent control flow), or updates a tensor
by an augmented assignment (which fx would record as out-of-place), keeps its forward, and
its children are tried instead.
"""

import operator

import torch.fx as fx
from torch import nn

from pyimg.conversion.graph import GraphView, added_to
from pyimg.inference import epilogue
from pyimg.inference.epilogue import Activation
from pyimg.inference.fused_conv import FusedConv2d

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _is_leaf(module: nn.Module) -> bool:
    origin = type(module).__module__
    if isinstance(module, _CONTAINERS) or origin.startswith("pyimg.models."):
        return False  # zoo models are traced like user models
    return origin.startswith(("torch.nn", "torch.ao.nn", "pyimg."))


class _Tracer(fx.Tracer):
    """Stops the trace at pyimg's and torch's modules, and notes augmented assignments to
    tensors (``y += z``): fx records them as out-of-place ops, so a graph that has one no
    longer updates y's other aliases and must not replace the module."""

    def __init__(self):
        super().__init__()
        self.saw_in_place = False

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return _is_leaf(m)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _NotingProxy(node, self)


class _NotingProxy(fx.Proxy):
    def _in_place(self, op, other):
        self.tracer.saw_in_place = True
        return op(self, other)


for _name, _op in (("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                   ("truediv", operator.truediv), ("floordiv", operator.floordiv),
                   ("mod", operator.mod), ("pow", operator.pow), ("and", operator.and_),
                   ("or", operator.or_), ("xor", operator.xor), ("lshift", operator.lshift),
                   ("rshift", operator.rshift), ("matmul", operator.matmul)):
    setattr(_NotingProxy, f"__i{_name}__",
            lambda self, other, op=_op: self._in_place(op, other))


def _activation(gm: fx.GraphModule, node: fx.Node, source: fx.Node) -> Activation | None:
    """The post-op ``node`` computes on ``source`` (its first argument), or None."""
    if not node.args or node.args[0] is not source:
        return None
    if node.op == "call_module":
        return epilogue.from_module(gm.get_submodule(node.target)) if len(node.args) == 1 \
            and not node.kwargs else None
    if node.op in ("call_function", "call_method"):
        return epilogue.from_call(node.target, node.args, node.kwargs,
                                  node.op == "call_method")
    return None


class _Rewriter:
    def __init__(self, gm: fx.GraphModule):
        self.gm, self.view, self.count = gm, GraphView(gm.graph, gm), 0

    def _install(self, module: FusedConv2d, at: fx.Node, args: tuple) -> fx.Node:
        name = f"fused_conv_{self.count}"
        self.count += 1
        self.gm.add_submodule(name, module)
        with self.gm.graph.inserting_before(at):
            return self.gm.graph.call_module(name, args)

    def _fuse_one(self, node: fx.Node) -> bool:
        conv = self.gm.get_submodule(node.target)
        if len(node.users) != 1:
            return False
        user = next(iter(node.users))
        if not conv.add and conv.act.is_identity:
            act = _activation(self.gm, user, node)
            if act is not None:
                self._replace(node, user, conv.with_epilogue(act, False), node.args)
                return True
            if self._fuse_through_shuffle(node, conv, user):
                return True
            other = added_to(user, node)
            if other is not None:
                self._replace(node, user, conv.with_epilogue(epilogue.IDENTITY, True),
                              (node.args[0], other))
                return True
        elif conv.add and conv.act.is_identity:
            act = _activation(self.gm, user, node)
            if act is not None and act.attr == "relu" and act.prelu_weight is None:
                self._replace(node, user, conv.with_epilogue(act, True), node.args)
                return True
        return False

    def _fuse_through_shuffle(self, node: fx.Node, conv: FusedConv2d, shuffle: fx.Node) -> bool:
        """conv -> pixel shuffle -> activation: the activation moves before the shuffle (a
        per-channel weight repeated over each channel's r * r sub-pixel planes)."""
        r = self.view.pixel_shuffle(shuffle, node)
        if r is None or len(shuffle.users) != 1:
            return False
        act_node = next(iter(shuffle.users))
        act = _activation(self.gm, act_node, shuffle)
        if act is None:
            return False
        fused = self._install(conv.with_epilogue(act.repeated(r * r), False), node, node.args)
        node.replace_all_uses_with(fused)
        act_node.replace_all_uses_with(shuffle)
        self.gm.graph.erase_node(act_node)
        self.gm.graph.erase_node(node)
        return True

    def _replace(self, node: fx.Node, user: fx.Node, module: FusedConv2d, args: tuple) -> None:
        fused = self._install(module, user, args)
        user.replace_all_uses_with(fused)
        self.gm.graph.erase_node(user)
        self.gm.graph.erase_node(node)

    def run(self) -> bool:
        changed = _drop_identities(self.gm)
        progress = True
        while progress:
            progress = False
            for node in list(self.gm.graph.nodes):
                if node.op == "call_module" and \
                        isinstance(self.gm.get_submodule(node.target), FusedConv2d) and \
                        self._fuse_one(node):
                    progress = changed = True
                    break
        return changed


def _drop_identities(gm: fx.GraphModule) -> bool:
    changed = False
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and type(gm.get_submodule(node.target)) is nn.Identity:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
            changed = True
    return changed


def fuse_graph(module: nn.Module) -> nn.Module:
    """``module`` with the graph-level fusions applied: a new GraphModule when its forward
    traces and something fused, else the module itself (its children tried in place)."""
    if _is_leaf(module):
        return module
    tracer = _Tracer()
    try:
        gm = fx.GraphModule(module, tracer.trace(module), type(module).__name__)
    except Exception:  # untraceable Python in forward (any error): try the children
        gm = None
    if gm is None or tracer.saw_in_place:
        for name, child in module.named_children():
            module._modules[name] = fuse_graph(child)
        return module
    if not _Rewriter(gm).run():
        return module
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm
