"""The rule engine behind ``convert``: trace each module's forward with torch.fx, fuse the
patterns graph rules find, swap modules and functions one-for-one, and run the rewritten
graph as the module's forward.

The model's module tree is kept as it is: a converted module is the same object, an instance
of its class, holding the same submodules at the same paths (so the same state_dict keys,
loading both ways, and the same parameters for an optimizer). What changes is

- its class: a subclass made for it whose ``forward`` runs the rewritten graph's code on the
  module (pickling and copying rebuild it; converting again starts from the original);
- leaves that module rules swap one-for-one (``nn.Conv2d`` -> ``pyimg.nn.Conv2d`` sharing
  its parameters), in place in the tree;
- the fused modules, held unregistered in ``module._pyimg_fused`` and holding no state of
  their own (see pyimg/conversion/fused.py).

A module fx cannot trace, or whose trace differs between training and eval mode (a branch on
``self.training``, which tracing would freeze), is converted child by child instead.
"""

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

from torch import fx, nn
from torch.nn.modules import module as module_hooks

from pyimg.conversion.graph import GraphView
from pyimg.conversion.report import ConversionReport, Fusion, LeftAlone, Swap

log = logging.getLogger("pyimg.conversion")

Matcher = Callable[[nn.Module], bool]


@dataclass(frozen=True)
class ModuleRule:
    name: str
    matches: Matcher
    build: Callable[[nn.Module], nn.Module]


@dataclass(frozen=True)
class GraphRule:
    name: str
    # apply(node, rewrite) fuses a pattern starting at node through the Rewrite's methods and
    # returns whether it did.
    apply: Callable[..., bool]


@dataclass(frozen=True)
class FunctionRule:
    name: str
    targets: frozenset
    replacement: Callable
    renames: dict  # keyword argument names that differ: stock -> pyimg


MODULE_RULES: list[ModuleRule] = []
GRAPH_RULES: list[GraphRule] = []
FUNCTION_RULES: list[FunctionRule] = []


def register_module_rule(name: str, matches: Matcher, build) -> None:
    """Replace every module for which ``matches(module)`` holds by ``build(module)``, which
    must keep the module's state_dict keys and compute the same function."""
    MODULE_RULES.append(ModuleRule(name, matches, build))


def register_graph_rule(name: str, apply) -> None:
    """Run ``apply(node, rewrite)`` on every node of every traced forward, in order (rules in
    the order registered; the first that fuses wins)."""
    GRAPH_RULES.append(GraphRule(name, apply))


def register_function_rule(name: str, targets, replacement, renames=None) -> None:
    """Call ``replacement`` wherever a traced forward calls one of ``targets`` (same
    positional arguments; keyword arguments renamed by ``renames``)."""
    FUNCTION_RULES.append(FunctionRule(name, frozenset(targets), replacement,
                                       dict(renames or {})))


def kind(module: nn.Module) -> str:
    """Class name, prefixed with ``pyimg.`` for pyimg's own (which share stock names)."""
    name = type(module).__name__
    return f"pyimg.{name}" if is_pyimg(module) else name


def is_pyimg(module: nn.Module) -> bool:
    return type(module).__module__.startswith(("pyimg.nn", "pyimg.conversion"))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class _Tracer(fx.Tracer):
    """Stock torch.nn layers and pyimg's modules are leaves; everything else is traced.
    Buffers read in a forward stay reads of the buffer (fx would otherwise compute with their
    value at trace time and freeze the result)."""

    def __init__(self):
        super().__init__()
        self.proxy_buffer_attributes = True

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return is_pyimg(module) or super().is_leaf_module(module, qualified_name)


def _is_leaf(module: nn.Module) -> bool:
    return _Tracer().is_leaf_module(module, "")


def _converted_class(original: type, forward) -> type:
    """A subclass of ``original`` whose forward is the rewritten graph's code (a function of
    its own per converted module, so torch.compile caches each separately)."""
    return type(original.__name__, (original,), {
        "forward": forward, "__reduce_ex__": _reduce_converted, "_pyimg_original": original,
        "__module__": original.__module__, "__qualname__": original.__qualname__,
        "__doc__": original.__doc__})


def _reduce_converted(module: nn.Module, protocol):
    # The subclass is made at run time: pickles and copies rebuild it from the original
    # class and the code (a GraphModule, which pickles as its source).
    return (_restore_converted, (type(module)._pyimg_original, module._pyimg_code),
            module.__dict__.copy())


def _restore_converted(original: type, code: fx.GraphModule) -> nn.Module:
    module = original.__new__(original)
    module.__class__ = _converted_class(original, type(code).forward)
    return module


def _install(owner: nn.Module, graph: fx.Graph) -> None:
    """Make the rewritten graph owner's forward. The GraphModule only carries the code: it
    runs on owner itself, reading owner's current submodules and parameters."""
    code = fx.GraphModule(owner, graph, class_name=type(owner).__name__)
    owner.__dict__["_pyimg_code"] = code  # unregistered: not a child, no state
    owner.__class__ = _converted_class(type(owner), type(code).forward)


def _unconvert(module: nn.Module) -> None:
    """Give a module convert rewrote its original forward back (to convert it again)."""
    original = getattr(type(module), "_pyimg_original", None)
    if original is not None:
        module.__class__ = original
        for name in ("_pyimg_code", "_pyimg_fused"):
            module.__dict__.pop(name, None)


class Rewrite:
    """One traced forward being rewritten: what graph rules see and call."""

    def __init__(self, owner: nn.Module, graph: fx.Graph, prefix: str,
                 report: ConversionReport):
        self.view = GraphView(graph, owner)
        self.prefix = prefix
        self.report = report
        self.fused = nn.ModuleDict()
        owner.__dict__["_pyimg_fused"] = self.fused  # unregistered: no state, not a child
        self.erased: set[fx.Node] = set()
        self.in_fusion: set[fx.Node] = set()  # nodes a fusion kept (retargeted)
        self.near_misses: dict[fx.Node, str] = {}

    @property
    def graph(self) -> fx.Graph:
        return self.view.graph

    def path(self, node: fx.Node) -> str:
        return _join(self.prefix, node.target)

    def describe(self, node: fx.Node) -> str:
        """"path (Kind)" for a module call, "name() in path" for a function or method."""
        module = self.view.module(node)
        if module is not None:
            return f"{self.path(node)} ({kind(module)})"
        name = node.target if node.op == "call_method" else getattr(
            node.target, "__name__", str(node.target))
        where = list(node.meta.get("nn_module_stack", {}))
        place = _join(self.prefix, where[-1]) if where else self.prefix
        return f"{'.' if node.op == 'call_method' else ''}{name}() in {place or '<root>'}"

    def near_miss(self, node: fx.Node, reason: str) -> None:
        """Note why ``node`` was not fused, for the report (the first reason stays)."""
        self.near_misses.setdefault(node, reason)

    def register(self, module: nn.Module) -> str:
        """Hold ``module`` (stateless) for the rewritten graph; returns its call target."""
        name = f"f{len(self.fused)}"
        self.fused[name] = module
        return f"_pyimg_fused.{name}"

    def record(self, nodes, result: str, rule: str) -> None:
        self.report.fused.append(Fusion(tuple(self.describe(n) for n in nodes), result, rule))
        self.in_fusion.update(nodes)

    def fuse(self, nodes: list[fx.Node], module: nn.Module, args: tuple, rule: str) -> fx.Node:
        """Replace the chain ``nodes`` (each the only user of the one before) by a call of
        ``module`` on ``args``, placed where the last node was."""
        self.record(nodes, module.describe(), rule)
        with self.graph.inserting_before(nodes[-1]):
            new = self.graph.call_module(self.register(module), args)
        nodes[-1].replace_all_uses_with(new)
        for node in reversed(nodes):
            self.graph.erase_node(node)
            self.erased.add(node)
        return new


def _apply_module_rules(module: nn.Module):
    for rule in MODULE_RULES:
        if rule.matches(module):
            return rule, rule.build(module)
    return None, None


def _swap_leaves(owner: nn.Module, graph: fx.Graph, prefix: str) -> dict[str, Swap]:
    """Swap every called leaf a module rule matches, in the module tree; path -> Swap."""
    swaps = {}
    for node in graph.nodes:
        if node.op != "call_module" or node.target in swaps:
            continue
        module = owner.get_submodule(node.target)
        rule, new = _apply_module_rules(module)
        if rule is None:
            continue
        parent, _, name = node.target.rpartition(".")
        owner.get_submodule(parent)._modules[name] = new
        swaps[node.target] = Swap(_join(prefix, node.target), kind(module), kind(new), rule.name)
    return swaps


def _swap_functions(rewrite: Rewrite) -> None:
    for node in rewrite.graph.nodes:
        if node.op != "call_function" or node in rewrite.in_fusion:
            continue
        rule = next((r for r in FUNCTION_RULES if node.target in r.targets), None)
        if rule is None:
            continue
        before = getattr(node.target, "__name__", str(node.target))
        where = rewrite.describe(node)
        node.target = rule.replacement
        node.kwargs = {rule.renames.get(k, k): v for k, v in node.kwargs.items()}
        rewrite.report.swapped.append(Swap(where, before, f"pyimg.ops.{rule.replacement.__name__}",
                                           rule.name))


def _report_survivors(rewrite: Rewrite, swaps: dict[str, Swap]) -> None:
    """Swaps whose calls survive the fusions, what was left alone, and the near misses."""
    report, seen = rewrite.report, set()
    for node in rewrite.graph.nodes:
        if node.op not in ("call_module", "call_function", "call_method") or \
                node in rewrite.in_fusion:
            continue
        reason = rewrite.near_misses.get(node)
        if reason is not None:
            report.near_misses.append((rewrite.describe(node), reason))
        if node.op != "call_module" or node.target.startswith("_pyimg_fused.") or \
                node.target in seen:
            continue
        seen.add(node.target)
        module = rewrite.view.module(node)
        if node.target in swaps:
            report.swapped.append(swaps[node.target])
        else:
            default = "already pyimg's" if is_pyimg(module) else "no pyimg kernel for it"
            report.left_alone.append(LeftAlone(rewrite.path(node), kind(module),
                                               reason or default))


def _reads_no_mode(module: nn.Module) -> bool:
    """Whether tracing module runs no code but nn.Sequential's forward (leaves are not traced
    into; hooks of the modules traced through would run), so its graph cannot depend on the
    training mode: one trace stands for both."""
    if module_hooks._global_forward_hooks or module_hooks._global_forward_pre_hooks:
        return False
    return all(_is_leaf(m) or (
        type(m).forward in (nn.Sequential.forward, nn.Module.forward)
        and not m._forward_hooks and not m._forward_pre_hooks) for m in module.modules())


def _trace(module: nn.Module) -> tuple[fx.Graph | None, str | None]:
    """The forward's graph, or None and why it cannot stand for the forward. A forward that
    may read ``self.training`` is traced in both modes, and must give the same graph."""
    modes = {m: m.training for m in module.modules()}
    attributes = set(module.__dict__)
    graphs = []
    try:
        for training in (False,) if _reads_no_mode(module) else (True, False):
            module.train(training)
            graphs.append(_Tracer().trace(module))
    except Exception as error:  # fx raises many kinds on what it cannot trace
        message = str(error).strip().splitlines()
        return None, (f"fx cannot trace its forward ({type(error).__name__}: "
                      f"{message[0] if message else ''})")
    finally:
        for m, training in modes.items():
            m.training = training
        for name in set(module.__dict__) - attributes:  # tensor constants fx stored on it
            del module.__dict__[name]
    if any(node.op == "get_attr" and not _is_state(module, node.target)
           for node in graphs[-1].nodes):
        return None, ("its forward makes tensors of its own, which the traced graph would "
                      "freeze (device and value) as constants")
    if graphs[0].python_code("self").src != graphs[-1].python_code("self").src:
        return None, "its forward differs between training and eval mode"
    return graphs[-1], None


def _is_state(module: nn.Module, target: str) -> bool:
    """Whether target names a parameter or buffer of module (not a constant fx made)."""
    path, _, name = target.rpartition(".")
    owner = module.get_submodule(path)
    return name in owner._parameters or name in owner._buffers


def _rewrite(owner: nn.Module, graph: fx.Graph, prefix: str, report: ConversionReport) -> None:
    swaps = _swap_leaves(owner, graph, prefix)
    rewrite = Rewrite(owner, graph, prefix, report)
    for node in list(graph.nodes):
        if node in rewrite.erased:
            continue
        for rule in GRAPH_RULES:
            if rule.apply(node, rewrite):
                break
    _swap_functions(rewrite)
    _report_survivors(rewrite, swaps)
    graph.lint()
    _install(owner, graph)


def _convert(module: nn.Module, path: str, report: ConversionReport) -> nn.Module:
    rule, new = _apply_module_rules(module)
    if rule is not None:
        report.swapped.append(Swap(path or "<root>", kind(module), kind(new), rule.name))
        return new
    container = type(module).forward is nn.Module.forward  # ModuleList, ModuleDict: no forward
    if not container and _is_leaf(module):
        reason = "already pyimg's" if is_pyimg(module) else "no pyimg kernel for it"
        report.left_alone.append(LeftAlone(path or "<root>", kind(module), reason))
        return module
    if not container:
        _unconvert(module)
        graph, reason = _trace(module)
        if graph is not None:
            _rewrite(module, graph, path, report)
            return module
        report.untraced.append((path, reason))
    for name, child in list(module._modules.items()):
        if child is not None:
            module._modules[name] = _convert(child, _join(path, name), report)
    return module


def convert_with_report(model: nn.Module, *, inplace: bool = False):
    """``convert``, also returning the ConversionReport."""
    if not inplace:
        model = copy.deepcopy(model)
    report = ConversionReport()
    return _convert(model, "", report), report


def convert(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Return ``model`` (a converted copy unless ``inplace``) computing the same function on
    pyimg's kernels: the patterns pyimg's fused ops cover are fused wherever its traced
    forward has them, and stock modules and functions are swapped one-for-one for pyimg's.
    Outputs agree with the original within dtype tolerance in training and eval (gradients
    and running statistics too), and state_dicts load both ways. The report of what was
    fused, swapped and left alone is logged at INFO level (``convert_with_report`` returns
    it)."""
    model, report = convert_with_report(model, inplace=inplace)
    log.info("pyimg.convert:\n%s", report)
    return model
