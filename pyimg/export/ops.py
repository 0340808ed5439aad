"""pyimg's forward ops as exported programs hold them: each op name exists twice, the compiled
extension's (``torch.ops.pyimg.<name>``, registered by loading pyimg's C++ extension) and
Triton's (``torch.ops.pyimg.<name>_triton``, registered in Python by ``import pyimg``);
``conv2d_triton`` only in Triton's."""

import torch

FORWARD_OPS = ("pixel_shuffle", "pixel_unshuffle", "bn_prelu", "batch_norm_stats",
               "depthwise_conv2d", "max_pool2d_with_indices", "max_unpool2d")


def overloads(name: str) -> list[torch._ops.OpOverload]:
    """The registered ops called ``name`` (either family; the extension's only when it is
    loaded)."""
    found = []
    for suffix in ("", "_triton"):
        packet = getattr(torch.ops.pyimg, name + suffix, None)
        if packet is not None and hasattr(packet, "default"):
            found.append(packet.default)
    return found


def by_op(functions: dict) -> dict:
    """{op name: function} -> {OpOverload: function} over both families; ``conv2d`` stands for
    ``conv2d_triton``, the one op without an extension twin."""
    table = {op: functions[name] for name in FORWARD_OPS for op in overloads(name)}
    table[torch.ops.pyimg.conv2d_triton.default] = functions["conv2d"]
    return table


def pyimg_ops(program: torch.export.ExportedProgram) -> dict[str, str]:
    """The pyimg ops in a program, each with what loading the program needs for it."""
    needs = {}
    for node in program.graph.nodes:
        target = node.target
        if node.op == "call_function" and isinstance(target, torch._ops.OpOverload) and \
                target.namespace == "pyimg":
            name = target._opname
            needs[name] = ("import pyimg (Python registration; Triton to run)"
                           if name.endswith("_triton")
                           else "import pyimg with its compiled extension loaded")
    return needs
