"""What the bench tests share: timing settings short enough for tests, a tiny op suite, and
running the ``pyimg`` command line in-process."""

import textwrap

import pytest

from pyimg.cli import main

TINY_SUITE = '''
from dataclasses import dataclass

import torch

from pyimg.bench import OpSuite, Variant
from pyimg.bench.suite import clone_variant


@dataclass(frozen=True)
class Case:
    n: int
    broken: bool = False

    @property
    def name(self):
        return f"n{self.n}" + (" broken" if self.broken else "")


def variants(case, context):
    x = torch.randn(case.n)

    def ours():
        if case.broken:
            raise RuntimeError("kernel exploded")
        return x + x

    return [clone_variant(x),
            Variant("eager", lambda: x * 2, "forward", "stock", bytes=8 * case.n),
            Variant("pyimg fake", ours, "forward", "pyimg", bytes=8 * case.n)]


SUITE = OpSuite(
    name="tiny",
    description="doubling a vector",
    cases={"cpu": {"default": [Case(1000), Case(3000)], "quick": [Case(1000)],
                   "broken": [Case(1000, broken=True)]}},
    variants=variants,
    case_from_spec=lambda spec: Case(spec.shape[0]),
)
'''


@pytest.fixture
def suite_dir(tmp_path):
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "bench_tiny.py").write_text(textwrap.dedent(TINY_SUITE))
    return folder


@pytest.fixture
def cli(capsys):
    """cli(*args) -> (exit status, stdout + stderr) of ``pyimg args``."""
    def run(*args):
        status = main([str(a) for a in args])
        captured = capsys.readouterr()
        return status, captured.out + captured.err

    return run


@pytest.fixture
def fast():
    """Timing flags for a few calls per variant: the tests check what the harness does, not
    how fast anything is."""
    return ["--warmup-s", "0", "--seconds-per-variant", "0.002", "--min-samples", "3",
            "--rounds", "2"]
