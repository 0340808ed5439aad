"""pyimg's imports point one way: _backend -> triton -> ops -> nn -> models / losses / metrics
/ conversion -> the application layer; ``import pyimg`` loads the op layer and nn only (the
rest on first use)."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1] / "pyimg"
# Rank of each top-level part of pyimg; a module may import only its own rank or a lower one.
# Private top-level modules (pyimg._backend, pyimg._format, ...) are the bottom layer.
RANKS = {"triton": 1, "ops": 2, "nn": 3, "models": 4, "losses": 4, "metrics": 4,
         "conversion": 4}
APPLICATION = ("atomic", "bench", "cli", "data", "export", "inference", "machine", "train", "video")
APPLICATION_RANK = 5
PACKAGE_RANK = 4  # pyimg/__init__.py itself: everything but the application layer


def _rank(part: str) -> int:
    if part.startswith("_"):
        return 0
    if part in RANKS:
        return RANKS[part]
    assert part in APPLICATION, f"pyimg.{part} has no layer in {__file__}: add it"
    return APPLICATION_RANK


def _module_name(path: pathlib.Path) -> str:
    parts = ("pyimg", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: pathlib.Path):
    """(imported module, line) for each pyimg module path imports, relative imports resolved
    and ``from pyimg import x`` read as pyimg.x."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            targets = ([f"{base}.{alias.name}" for alias in node.names] if base == "pyimg"
                       else [base])
        else:
            continue
        yield from ((t, node.lineno) for t in targets if t.split(".")[0] == "pyimg")


def _layer_of(module: str) -> int:
    parts = module.split(".")
    return PACKAGE_RANK if len(parts) == 1 else _rank(parts[1])


def test_imports_point_down_the_layers():
    violations = []
    for path in sorted(ROOT.rglob("*.py")):
        name = _module_name(path)
        if name == "pyimg.__main__":
            continue  # the command-line entry point, above every layer
        own = _layer_of(name)
        for target, line in _imported(path):
            layer = _layer_of(target)
            if layer > own:
                violations.append(f"{path}:{line}: {name} (layer {own}) imports {target} "
                                  f"(layer {layer})")
    assert not violations, "\n".join(violations)


def test_import_pyimg_loads_only_the_op_layer():
    loaded = subprocess.run(
        [sys.executable, "-c",
         "import sys, pyimg; print(' '.join(m for m in sys.modules if m.startswith('pyimg.')))"],
        capture_output=True, text=True, check=True, cwd=ROOT.parent,
    ).stdout.split()
    leaked = sorted(m for m in loaded if _layer_of(m) > RANKS["nn"])
    assert not leaked, f"import pyimg loaded {leaked}"
    import pyimg

    assert pyimg.models.ESPCN is not None and callable(pyimg.convert)
