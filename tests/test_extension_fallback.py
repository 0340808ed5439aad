"""pyimg without its compiled extension: imports, warns once, and runs the torch backend."""

import subprocess
import sys

SCRIPT = """
import sys, warnings
sys.modules["pyimg._C"] = None  # makes `from pyimg import _C` raise ImportError
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import torch, torch.nn.functional as F, pyimg
    x = torch.randn(1, 8, 3, 3)
    assert torch.equal(pyimg.ops.pixel_shuffle(x, 2), F.pixel_shuffle(x, 2))
    assert torch.equal(pyimg.ops.pixel_unshuffle(x, 3), F.pixel_unshuffle(x, 3))
ours = [w for w in caught if issubclass(w.category, pyimg._extension.ExtensionWarning)]
assert len(ours) == 1, [str(w.message) for w in caught]
print(pyimg.backends()["cpu"])
"""


def test_import_without_extension_falls_back_to_torch():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "compiled extension is not loaded" in result.stdout
