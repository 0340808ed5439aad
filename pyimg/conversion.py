"""One-call conversion of any model to pyimg's modules: ``convert(model)``.

Walks the module tree and applies registered rules:

- module rules replace one stock module with its pyimg drop-in (same state_dict keys);
- sequence rules fuse a run of consecutive children of an ``nn.Sequential`` into one
  module. The fused module takes the run's last slot and the others become ``nn.Identity``.
  State_dict keys stay where the stock layers had them, so checkpoints load both ways: a
  rule whose fused module holds the stock modules' state as submodules names them
  (``state_paths``) and the parent Sequential saves and loads them under the stock keys
  (``Conv2d`` at ``i``, ``PixelShuffle`` at ``i+1``, ``PReLU`` at ``i+2`` fused into an
  UpsampleBlock keep ``i.weight``, ``i.bias`` and ``i+2.weight``, not ``i+2.conv.weight``).

Rules see the modules they match, so a rule valid only in eval mode (e.g. folding batch
norm into a conv) checks ``module.training`` itself. Issues that add pyimg kernels register
their rules with ``register_module_rule`` / ``register_sequence_rule``.
"""

import copy
import logging
import operator
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from pyimg.nn.conv import Conv2d, Conv2dBNAct
from pyimg.nn.pixel_shuffle import (
    FUSABLE_ACTIVATIONS,
    PixelShuffle,
    PixelShuffleAct,
    PixelUnshuffle,
)
from pyimg.nn.pooling import MaxPool2d, MaxUnpool2d
from pyimg.nn.residual import ResidualBlock, check_residual_modules
from pyimg.nn.upsample import UpsampleBlock, check_upsample_modules

log = logging.getLogger(__name__)

Matcher = Callable[[nn.Module], bool]


@dataclass(frozen=True)
class ModuleRule:
    name: str
    matches: Matcher
    build: Callable[[nn.Module], nn.Module]


@dataclass(frozen=True)
class SequenceRule:
    name: str
    pattern: tuple[Matcher, ...]
    build: Callable[..., nn.Module]  # called with the matched modules, in order
    # Per matched module: the submodule of the fused module holding its state (None when it
    # has none). None: the fused module's keys are already the last slot's (it holds only
    # that slot's state, under the same names).
    state_paths: tuple[str | None, ...] | None = None
    fits: Callable[..., bool] | None = None  # whether the matched modules fit one another


MODULE_RULES: list[ModuleRule] = []
SEQUENCE_RULES: list[SequenceRule] = []


def register_module_rule(name: str, matches: Matcher, build) -> None:
    """Replace every module for which ``matches(module)`` holds by ``build(module)``."""
    MODULE_RULES.append(ModuleRule(name, matches, build))


def register_sequence_rule(name: str, pattern, build, state_paths=None, fits=None) -> None:
    """Fuse consecutive ``nn.Sequential`` children matching ``pattern`` (one predicate per
    child) and ``fits(*children)`` into ``build(*children)``; sequence rules run before module
    rules. ``state_paths`` (see SequenceRule) keeps the stock state_dict keys."""
    SEQUENCE_RULES.append(SequenceRule(name, tuple(pattern), build,
                                       None if state_paths is None else tuple(state_paths),
                                       fits))


def _renamed(key: str, prefix: str, renames: dict[str, str]) -> str:
    """key with its module path under prefix renamed by the longest matching entry."""
    local = key[len(prefix):]
    if key.startswith(prefix):
        for old in sorted(renames, key=len, reverse=True):
            if local.startswith(old + "."):
                return prefix + renames[old] + local[len(old):]
    return key


@dataclass
class _RenameKeys:
    """A state_dict hook renaming the module paths under the hooked module's prefix. A class,
    not a closure, so that converted models still pickle and deep-copy."""

    renames: dict[str, str]
    saving: bool  # on load, _metadata is the caller's object and is left as it is

    def __call__(self, module, state_dict, prefix, *_):
        items = list(state_dict.items())  # rebuilt in order: keys keep their places
        state_dict.clear()
        state_dict.update((_renamed(k, prefix, self.renames), v) for k, v in items)
        metadata = getattr(state_dict, "_metadata", None)
        if self.saving and metadata is not None:  # module versions (BatchNorm's) follow along
            for key in list(metadata):
                new = _renamed(key + ".", prefix, self.renames)[:-1]
                if new != key:
                    metadata[new] = metadata.pop(key)


def keep_stock_keys(module: nn.Module, renames: dict[str, str]) -> None:
    """Make ``module`` save and load its state_dict under a stock model's keys. ``renames``
    maps a submodule path of ``module`` to the path that held the same state in the stock
    model, both relative to ``module`` (the longest matching path wins)."""
    module.register_state_dict_post_hook(_RenameKeys(renames, saving=True))
    module.register_load_state_dict_pre_hook(
        _RenameKeys({stock: ours for ours, stock in renames.items()}, saving=False))


@dataclass(frozen=True)
class Replacement:
    path: str  # the replaced module, or "first..last" for a fused run
    before: str
    after: str
    rule: str


@dataclass
class ConversionReport:
    """What ``convert`` replaced, and the leaf modules no rule applied to (by path)."""

    replaced: list[Replacement] = field(default_factory=list)
    left_alone: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"replaced {len(self.replaced)}:"]
        lines += [f"  {r.path}: {r.before} -> {r.after} ({r.rule})" for r in self.replaced]
        kept = Counter(kind for _, kind in self.left_alone)
        lines.append(f"left alone {len(self.left_alone)}: "
                     + ", ".join(f"{kind} x{n}" for kind, n in sorted(kept.items())))
        return "\n".join(lines)


def _kind(module: nn.Module) -> str:
    """Class name, prefixed with ``pyimg.`` for pyimg's own (which share stock names)."""
    name = type(module).__name__
    return f"pyimg.{name}" if type(module).__module__.startswith("pyimg.") else name


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _fuse_sequence(seq: nn.Sequential, prefix: str, report: ConversionReport) -> set[str]:
    """Apply sequence rules to seq's children; returns the names of the slots they wrote."""
    names = list(seq._modules)
    written: set[str] = set()
    i = 0
    while i < len(names):
        for rule in SEQUENCE_RULES:
            span = names[i:i + len(rule.pattern)]
            modules = [seq._modules[n] for n in span]
            if len(span) == len(rule.pattern) and all(
                    match(m) for match, m in zip(rule.pattern, modules, strict=True)) and (
                    rule.fits is None or rule.fits(*modules)):
                fused = rule.build(*modules)
                for name in span[:-1]:
                    seq._modules[name] = nn.Identity()
                seq._modules[span[-1]] = fused
                if rule.state_paths is not None:
                    keep_stock_keys(seq, {
                        f"{span[-1]}.{inner}": slot
                        for slot, inner in zip(span, rule.state_paths, strict=True)
                        if inner is not None})
                written.update(span)
                report.replaced.append(Replacement(
                    f"{_join(prefix, span[0])}..{span[-1]}",
                    "+".join(_kind(m) for m in modules), _kind(fused),
                    rule.name))
                i += len(span)
                break
        else:
            i += 1
    return written


def _apply_module_rules(module: nn.Module, path: str, report: ConversionReport):
    for rule in MODULE_RULES:
        if rule.matches(module):
            new = rule.build(module)
            report.replaced.append(Replacement(path or "<root>", _kind(module), _kind(new),
                                               rule.name))
            return new
    return None


def _convert_children(parent: nn.Module, prefix: str, report: ConversionReport) -> None:
    written = _fuse_sequence(parent, prefix, report) if isinstance(parent, nn.Sequential) \
        else set()
    for name, child in list(parent._modules.items()):
        if name in written or child is None:
            continue
        path = _join(prefix, name)
        new = _apply_module_rules(child, path, report)
        if new is not None:
            parent._modules[name] = new
        elif child._modules:
            _convert_children(child, path, report)
        else:
            report.left_alone.append((path, _kind(child)))


def convert_with_report(model: nn.Module, *, inplace: bool = False):
    """``convert``, also returning the ConversionReport."""
    if not inplace:
        model = copy.deepcopy(model)
    report = ConversionReport()
    root = _apply_module_rules(model, "", report)
    if root is not None:
        model = root
    else:
        _convert_children(model, "", report)
    return model, report


def convert(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Return ``model`` (a converted copy unless ``inplace``) with stock modules and patterns
    replaced by pyimg's; the report of what was replaced and left alone is logged at INFO
    level (``convert_with_report`` returns it). Outputs agree with the original within dtype
    tolerance, and state_dicts load both ways."""
    model, report = convert_with_report(model, inplace=inplace)
    log.info("pyimg.convert: %s", report)
    return model


def _is_exactly(cls: type) -> Matcher:
    # Exact type: subclasses (pyimg's own drop-ins among them) may behave differently.
    return lambda module: type(module) is cls


register_sequence_rule(
    "pixel_shuffle+activation",
    (lambda m: isinstance(m, nn.PixelShuffle), lambda m: type(m) in FUSABLE_ACTIVATIONS),
    PixelShuffleAct.from_modules,
)
register_module_rule("pixel_shuffle", _is_exactly(nn.PixelShuffle),
                     lambda m: PixelShuffle(m.upscale_factor))
register_module_rule("pixel_unshuffle", _is_exactly(nn.PixelUnshuffle),
                     lambda m: PixelUnshuffle(m.downscale_factor))


def _passes(check) -> Callable[..., bool]:
    """A ``fits`` predicate from a module's check function (which raises on a misfit)."""
    def fits(*modules) -> bool:
        try:
            check(*modules)
        except (TypeError, ValueError):
            return False
        return True

    return fits


def _is_conv(module: nn.Module) -> bool:
    # pyimg's drop-in computes what stock does: fusions take it too.
    return type(module) in (nn.Conv2d, Conv2d)


def _bn_fits(conv, bn, act=None) -> bool:
    return bn.num_features == conv.out_channels and (
        type(act) is not nn.PReLU or act.num_parameters in (1, conv.out_channels))


register_sequence_rule(
    "conv+pixel_shuffle+prelu",
    (_is_conv, lambda m: isinstance(m, nn.PixelShuffle), _is_exactly(nn.PReLU)),
    UpsampleBlock.from_modules, state_paths=("conv", None, "prelu"),
    fits=_passes(check_upsample_modules),
)
register_sequence_rule(
    "conv+batch_norm+activation",
    (_is_conv, _is_exactly(nn.BatchNorm2d),
     lambda m: type(m) in (nn.ReLU, nn.LeakyReLU, nn.PReLU)),
    Conv2dBNAct.from_modules, state_paths=("conv", "bn", "act"), fits=_bn_fits,
)
register_sequence_rule(
    "conv+batch_norm", (_is_conv, _is_exactly(nn.BatchNorm2d)), Conv2dBNAct.from_modules,
    state_paths=("conv", "bn"), fits=_bn_fits,
)


def _pyimg_conv(conv: nn.Conv2d) -> Conv2d:
    """pyimg's Conv2d holding ``conv``'s own parameters (an optimizer over them still works
    after an in-place conversion); built on the meta device so nothing is allocated twice."""
    new = Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                 conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                 conv.padding_mode, device="meta")
    new.weight, new.bias = conv.weight, conv.bias
    return new.train(conv.training)


register_module_rule("conv", _is_exactly(nn.Conv2d), _pyimg_conv)
register_module_rule("max_pool", _is_exactly(nn.MaxPool2d), lambda m: MaxPool2d(
    m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode))
register_module_rule("max_unpool", _is_exactly(nn.MaxUnpool2d),
                     lambda m: MaxUnpool2d(m.kernel_size, m.stride, m.padding))


# -- a model's own SRResNet blocks -----------------------------------------------------------

_RESIDUAL_PARTS = Counter({nn.Conv2d: 2, nn.BatchNorm2d: 2, nn.PReLU: 1})


def _residual_block_paths(module: nn.Module) -> list[str] | None:
    """The paths of conv1, bn1, prelu, conv2 and bn2 inside ``module`` when its forward is
    exactly ``x + bn2(conv2(prelu(bn1(conv1(x)))))``, else None.

    A structural match alone cannot tell ``x + f(x)`` from ``f(x)`` or ``0.1 * f(x) + x``, so
    the forward is traced (torch.fx) and its graph must be that chain and that sum, nothing
    else. Only user modules whose leaves are exactly those five stock modules are traced.
    """
    if type(module).__module__.startswith(("torch.", "pyimg.")):
        return None
    leaves = [m for m in module.modules() if not m._modules]
    if Counter(type(m) for m in leaves) != _RESIDUAL_PARTS:
        return None
    try:
        graph = torch.fx.Tracer().trace(module)
    except Exception:  # a forward fx cannot trace is not this block
        return None
    nodes = list(graph.nodes)
    if len(nodes) != 8:
        return None
    x, *calls, total, output = nodes
    previous = x
    for call in calls:
        if call.op != "call_module" or call.args != (previous,) or call.kwargs:
            return None
        previous = call
    paths = [call.target for call in calls]
    if x.op != "placeholder" or total.op != "call_function" or \
            total.target not in (operator.add, torch.add) or total.kwargs or \
            len(total.args) != 2 or set(total.args) != {x, previous} or \
            output.args != (total,) or not _passes(check_residual_modules)(
                *(module.get_submodule(path) for path in paths)):
        return None
    return paths


def _residual_block(module: nn.Module) -> ResidualBlock:
    paths = _residual_block_paths(module)
    block = ResidualBlock.from_modules(*(module.get_submodule(path) for path in paths))
    keep_stock_keys(block, dict(zip(("conv1", "bn1", "prelu", "conv2", "bn2"), paths,
                                    strict=True)))
    return block


register_module_rule("residual_block", lambda m: _residual_block_paths(m) is not None,
                     _residual_block)
