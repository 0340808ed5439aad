"""pyimg's conversion rules: the patterns its fused ops cover, and its one-for-one drop-ins.

Graph rules (wherever a traced forward has them, as modules or functions):

- conv -> [batch norm] -> [* number] -> [pixel shuffle] -> [relu | leaky_relu | prelu] with
  a residual sum before or after the activation: one ``pyimg.ops.conv2d`` (FusedConv2d);
- batch norm -> relu | leaky_relu | prelu, and batch norm + residual (FusedBatchNorm);
- pixel shuffle -> relu | leaky_relu | prelu | tanh | sigmoid (PixelShuffleActivation);
- max-pool with indices whose indices only feed max-unpools of the same geometry: pyimg's
  pool with compact (uint8) indices and pyimg's unpool.

Module rules swap ``nn.Conv2d``, ``nn.PixelShuffle``, ``nn.PixelUnshuffle``, ``nn.MaxPool2d``
and ``nn.MaxUnpool2d`` for pyimg's; function rules ``F.conv2d``, ``F.pixel_shuffle``,
``F.pixel_unshuffle`` and ``F.max_unpool2d``.
"""

import inspect
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from pyimg import nn as pnn
from pyimg import ops
from pyimg._activation import CONV_ACTIVATIONS
from pyimg.conversion.engine import (
    Rewrite,
    register_function_rule,
    register_graph_rule,
    register_module_rule,
)
from pyimg.conversion.fused import (
    FusedBatchNorm,
    FusedConv2d,
    PixelShuffleActivation,
)
from pyimg.conversion.graph import added_to, first_input, scaled_by, sole_user, written_between

# -- one-for-one ---------------------------------------------------------------------------


def _is_exactly(cls: type):
    # Exact type: subclasses (pyimg's own drop-ins among them) may behave differently.
    return lambda module: type(module) is cls


def _pyimg_conv(conv: nn.Conv2d) -> pnn.Conv2d:
    """pyimg's Conv2d holding ``conv``'s own parameters (an optimizer over them still works
    after an in-place conversion); built on the meta device so nothing is allocated twice."""
    new = pnn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                     conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                     conv.padding_mode, device="meta")
    new.weight, new.bias = conv.weight, conv.bias
    return new.train(conv.training)


register_module_rule("conv", _is_exactly(nn.Conv2d), _pyimg_conv)
register_module_rule("pixel_shuffle", _is_exactly(nn.PixelShuffle),
                     lambda m: pnn.PixelShuffle(m.upscale_factor))
register_module_rule("pixel_unshuffle", _is_exactly(nn.PixelUnshuffle),
                     lambda m: pnn.PixelUnshuffle(m.downscale_factor))
register_module_rule("max_pool", _is_exactly(nn.MaxPool2d), lambda m: pnn.MaxPool2d(
    m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode))
register_module_rule("max_unpool", _is_exactly(nn.MaxUnpool2d),
                     lambda m: pnn.MaxUnpool2d(m.kernel_size, m.stride, m.padding))

register_function_rule("conv", (F.conv2d, torch.conv2d), ops.conv2d, {"input": "x"})
register_function_rule("pixel_shuffle", (F.pixel_shuffle, torch.pixel_shuffle),
                       ops.pixel_shuffle, {"input": "x"})
register_function_rule("pixel_unshuffle", (F.pixel_unshuffle, torch.pixel_unshuffle),
                       ops.pixel_unshuffle, {"input": "x"})
register_function_rule("max_unpool", (F.max_unpool2d,), ops.max_unpool2d, {"input": "x"})


# -- conv -> [bn] -> [* s] -> [shuffle] -> [act] with a residual ----------------------------


def _feeds_several(node: fx.Node, rewrite: Rewrite) -> None:
    """Note a near miss when node's output feeds several nodes one of which a fusion would
    take (a fused op has one output)."""
    view = rewrite.view
    if len(node.users) > 1 and any(
            view.activation(u, node) or view.is_batch_norm(u, node) or added_to(u, node)
            for u in node.users):
        rewrite.near_miss(node, f"its output also feeds {len(node.users) - 1} other node(s), "
                                "so what follows it is not fused into it")


def _fuse_conv(node: fx.Node, rewrite: Rewrite) -> bool:
    view = rewrite.view
    if not view.is_conv(node):
        return False
    conv = view.module(node)
    if conv.padding_mode != "zeros":
        rewrite.near_miss(node, f"padding_mode {conv.padding_mode!r}: pyimg.ops.conv2d pads "
                                "with zeros")
        return False
    chain, current = [node], node
    bn, res_scale, r, activation, residual, order = None, 1.0, 1, None, None, None
    following = sole_user(current)
    if following is not None and view.is_batch_norm(following, current) and \
            view.module(following).num_features == conv.out_channels:
        bn = view.module(following)
        chain.append(following)
        current, following = following, sole_user(following)
    if following is not None and (s := scaled_by(following, current)) is not None:
        res_scale = s
        chain.append(following)
        current, following = following, sole_user(following)
    shuffle_at = None
    if following is not None and (factor := view.pixel_shuffle(following, current)) and \
            conv.out_channels % (factor * factor) == 0:
        r, shuffle_at = factor, len(chain)
        chain.append(following)
        current, following = following, sole_user(following)
    channels = conv.out_channels // (r * r)

    def conv_activation(candidate, source):
        act = view.activation(candidate, source)
        if act is None or act.kind not in CONV_ACTIVATIONS:
            return None
        if act.size() not in (1, channels):
            rewrite.near_miss(candidate, f"a PReLU of {act.size()} weights after {channels} "
                                         "channels")
            return None
        return act

    if following is not None:
        activation = conv_activation(following, current)
        other = added_to(following, current)
        if activation is not None:
            chain.append(following)
            current, following = following, sole_user(following)
            if following is not None and (other := added_to(following, current)) is not None:
                residual, order = other, "after"
                chain.append(following)
        elif other is not None:
            residual, order = other, "before"
            chain.append(following)
            current, following = following, sole_user(following)
            if following is not None:
                activation = conv_activation(following, current)
                if activation is not None:
                    chain.append(following)
        else:
            act = view.activation(following, current)
            unfusable = act.kind if act is not None else view.unfusable_activation(following)
            if unfusable is not None and unfusable not in CONV_ACTIVATIONS:
                rewrite.near_miss(following, f"pyimg.ops.conv2d's epilogue has no {unfusable}")
            if shuffle_at is not None and act is not None and act.kind in ("tanh", "sigmoid"):
                # The shuffle goes to the pixel-shuffle rule, which fuses this activation.
                chain, r = chain[:shuffle_at], 1
    else:
        _feeds_several(current, rewrite)
    if residual is not None and not view.from_inputs(residual):
        # Most likely a broadcast sum (a bias-like buffer): fused, it would run unfused.
        add = next(n for i, n in enumerate(chain) if i and added_to(n, chain[i - 1]) is residual)
        rewrite.near_miss(add, "the sum's other operand comes from parameters or buffers "
                               "alone, not the input (a broadcast?)")
        if order == "before":
            activation = None
        chain, residual, order = chain[:chain.index(add)], None, None
    if len(chain) == 1:
        return False
    x = first_input(node)
    if written_between(view, chain[0], chain[-1], x):
        rewrite.near_miss(node, "its input is written in place before the fused op would run")
        return False
    fused = FusedConv2d(conv, bn, res_scale, r, activation, order)
    rewrite.fuse(chain, fused, (x,) if residual is None else (x, residual), "conv epilogue")
    return True


# -- batch norm -> act / + residual ---------------------------------------------------------


def _fuse_batch_norm(node: fx.Node, rewrite: Rewrite) -> bool:
    view = rewrite.view
    if not view.is_batch_norm(node):
        return False
    bn = view.module(node)
    following = sole_user(node)
    if following is None:
        _feeds_several(node, rewrite)
        return False
    activation = view.activation(following, node)
    residual = added_to(following, node)
    x = first_input(node)
    if activation is not None and activation.kind in CONV_ACTIVATIONS and \
            activation.size() in (1, bn.num_features):
        fused, args = FusedBatchNorm(bn, activation), (x,)
    elif residual is not None:
        fused, args = FusedBatchNorm(bn, residual=True), (x, residual)
    else:
        return False
    if written_between(view, node, following, x):
        return False
    rewrite.fuse([node, following], fused, args, "batch norm epilogue")
    return True


# -- pixel shuffle -> act --------------------------------------------------------------------


def _fuse_pixel_shuffle(node: fx.Node, rewrite: Rewrite) -> bool:
    view = rewrite.view
    r = view.pixel_shuffle(node, first_input(node))
    following = sole_user(node)
    if r is None or following is None:
        return False
    activation = view.activation(following, node)
    if activation is None:
        return False
    rewrite.fuse([node, following], PixelShuffleActivation(r, activation),
                 (first_input(node),), "pixel shuffle activation")
    return True


# -- max-pool indices -> max-unpool ------------------------------------------------------------

_POOL_SIGNATURE = inspect.signature(F.max_pool2d_with_indices)
_UNPOOL_SIGNATURE = inspect.signature(F.max_unpool2d)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _pool_geometry(node: fx.Node, rewrite: Rewrite):
    """(x, kernel, stride, padding, dilation, ceil_mode) of a max-pool returning indices."""
    module = rewrite.view.module(node)
    if module is not None:
        if type(module) not in (nn.MaxPool2d, pnn.MaxPool2d) or not module.return_indices or \
                getattr(module, "compact_indices", False):
            return None
        x, k, s, p, d, ceil = (first_input(node), module.kernel_size, module.stride,
                               module.padding, module.dilation, module.ceil_mode)
    elif node.op == "call_function" and node.target in (F.max_pool2d, F.max_pool2d_with_indices):
        bound = _POOL_SIGNATURE.bind(*node.args, **node.kwargs)
        bound.apply_defaults()
        a = bound.arguments
        if not a["return_indices"] and node.target is F.max_pool2d:
            return None
        x, k, s, p, d, ceil = (a["input"], a["kernel_size"], a["stride"], a["padding"],
                               a["dilation"], a["ceil_mode"])
    else:
        return None
    k = _pair(k)
    s = k if s is None or s == [] else _pair(s)
    return x, k, s, _pair(p), _pair(d), ceil


def _unpool_geometry(node: fx.Node, indices: fx.Node, rewrite: Rewrite):
    """(kernel, stride, padding) of a max-unpool reading ``indices`` as its indices."""
    module = rewrite.view.module(node)
    if module is not None:
        if type(module) not in (nn.MaxUnpool2d, pnn.MaxUnpool2d):
            return None
        args = inspect.signature(type(module).forward).bind(module, *node.args, **node.kwargs)
        if args.arguments.get("indices") is not indices:
            return None
        k, s, p = module.kernel_size, module.stride, module.padding
    elif node.op == "call_function" and node.target is F.max_unpool2d:
        bound = _UNPOOL_SIGNATURE.bind(*node.args, **node.kwargs)
        bound.apply_defaults()
        a = bound.arguments
        if a["indices"] is not indices:
            return None
        k, s, p = a["kernel_size"], a["stride"], a["padding"]
    else:
        return None
    k = _pair(k)
    return k, k if s is None else _pair(s), _pair(p)


def _fuse_pool_pair(node: fx.Node, rewrite: Rewrite) -> bool:
    geometry = _pool_geometry(node, rewrite)
    if geometry is None:
        return False
    x, kernel, stride, padding, dilation, ceil_mode = geometry
    outputs = list(node.users)
    if not all(u.op == "call_function" and u.target is operator.getitem and u.args[1] in (0, 1)
               for u in outputs):
        return False
    indices = [u for u in outputs if u.args[1] == 1]
    unpools = [user for i in indices for user in i.users]
    if not unpools:
        return False
    if dilation != (1, 1) or kernel[0] * kernel[1] > 256:
        rewrite.near_miss(node, "compact indices need dilation 1 and at most 256 taps")
        return False
    for unpool in unpools:
        index = next(i for i in indices if unpool in i.users)
        if _unpool_geometry(unpool, index, rewrite) != (kernel, stride, padding):
            rewrite.near_miss(node, f"its indices also feed {rewrite.describe(unpool)}, which "
                                    "is not a max-unpool of its geometry")
            return False
    pool = pnn.MaxPool2d(kernel, stride, padding, 1, return_indices=True, ceil_mode=ceil_mode,
                         compact_indices=True)
    rewrite.record([node, *unpools], "pyimg MaxPool2d (compact uint8 indices) + MaxUnpool2d",
                   "max-pool indices to max-unpool")
    node.op, node.target, node.args, node.kwargs = "call_module", rewrite.register(pool), (x,), {}
    for unpool in unpools:
        if unpool.op == "call_function":
            unpool.target = ops.max_unpool2d
            unpool.kwargs = {"x" if k == "input" else k: v for k, v in unpool.kwargs.items()}
    return True


register_graph_rule("max-pool indices to max-unpool", _fuse_pool_pair)
register_graph_rule("conv epilogue", _fuse_conv)
register_graph_rule("batch norm epilogue", _fuse_batch_norm)
register_graph_rule("pixel shuffle activation", _fuse_pixel_shuffle)
