"""``pyimg.convert(model)``: any model on pyimg's fused kernels, state_dict and outputs kept.

``convert`` traces each module's forward with torch.fx and fuses the patterns pyimg's ops
cover wherever they appear, as modules or as functions (pyimg/conversion/rules.py lists
them), swaps the remaining stock modules and functions one-for-one, and reports what it did
(``convert_with_report``). The engine (pyimg/conversion/engine.py) takes more rules through
``register_module_rule``, ``register_graph_rule`` and ``register_function_rule``.
"""

from pyimg.conversion import rules as _rules  # noqa: F401  (registers pyimg's rules)
from pyimg.conversion.engine import (
    convert,
    convert_with_report,
    register_function_rule,
    register_graph_rule,
    register_module_rule,
)
from pyimg.conversion.report import ConversionReport, Fusion, LeftAlone, Swap

__all__ = [
    "ConversionReport",
    "Fusion",
    "LeftAlone",
    "Swap",
    "convert",
    "convert_with_report",
    "register_function_rule",
    "register_graph_rule",
    "register_module_rule",
]
