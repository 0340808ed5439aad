"""One-call conversion of any model to pyimg's modules: ``convert(model)``.

Walks the module tree and applies registered rules:

- module rules replace one stock module with its pyimg drop-in (same state_dict keys);
- sequence rules fuse a run of consecutive children of an ``nn.Sequential`` into one
  module. The fused module takes the run's last slot and the others become ``nn.Identity``,
  so that state_dict keys stay where the stock layers had them (``PixelShuffle`` at ``i``
  and ``PReLU`` at ``i+1`` keep ``i+1.weight``) and checkpoints load both ways.

Rules see the modules they match, so a rule valid only in eval mode (e.g. folding batch
norm into a conv) checks ``module.training`` itself. Issues that add pyimg kernels register
their rules with ``register_module_rule`` / ``register_sequence_rule``.
"""

import copy
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from pyimg.nn.pixel_shuffle import (
    FUSABLE_ACTIVATIONS,
    PixelShuffle,
    PixelShuffleAct,
    PixelUnshuffle,
)

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


MODULE_RULES: list[ModuleRule] = []
SEQUENCE_RULES: list[SequenceRule] = []


def register_module_rule(name: str, matches: Matcher, build) -> None:
    """Replace every module for which ``matches(module)`` holds by ``build(module)``."""
    MODULE_RULES.append(ModuleRule(name, matches, build))


def register_sequence_rule(name: str, pattern, build) -> None:
    """Fuse consecutive ``nn.Sequential`` children matching ``pattern`` (one predicate per
    child) into ``build(*children)``; sequence rules run before module rules."""
    SEQUENCE_RULES.append(SequenceRule(name, tuple(pattern), build))


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
                    match(m) for match, m in zip(rule.pattern, modules, strict=True)):
                fused = rule.build(*modules)
                for name in span[:-1]:
                    seq._modules[name] = nn.Identity()
                seq._modules[span[-1]] = fused
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
