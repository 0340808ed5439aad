"""pyimg's one timing harness: ops and whole models against stock PyTorch and torch.compile.

``run_ops`` times every op's suite (``benchmarks/bench_<op>.py``, each an ``OpSuite``: a case
list and the variants of one case), ``run_models`` the zoo's models or a user's, and
``compare_files`` says what got faster or slower between two runs' JSON files. The command
line is ``pyimg bench ops | models | compare``.
"""

from pyimg.bench.compare import compare
from pyimg.bench.models import run_models
from pyimg.bench.ops import find_suites, run_ops
from pyimg.bench.report import Report, load_rows
from pyimg.bench.results import Row, Variant
from pyimg.bench.runner import RunOptions
from pyimg.bench.script import script_main
from pyimg.bench.suite import CaseSpec, Context, OpSuite
from pyimg.bench.timer import DEFAULT, QUICK, Settings

__all__ = [
    "DEFAULT",
    "QUICK",
    "CaseSpec",
    "Context",
    "OpSuite",
    "Report",
    "Row",
    "RunOptions",
    "Settings",
    "Variant",
    "compare",
    "find_suites",
    "load_rows",
    "run_models",
    "run_ops",
    "script_main",
]
