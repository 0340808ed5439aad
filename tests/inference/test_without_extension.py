"""optimize_for_inference without pyimg's compiled extension: stock fallbacks for the
per-channel PReLU and the last layer, no memory cache, same outputs."""

import subprocess
import sys

SCRIPT = """
import sys, warnings
sys.modules["pyimg._C"] = None  # makes `from pyimg import _C` raise ImportError
warnings.simplefilter("ignore")
sys.path.insert(0, "tests")
import torch
from inference.reference_nets import SRVGGStyle
from pyimg import models
from pyimg.inference import cpu_memory_cache_info, optimize_for_inference
for model in (SRVGGStyle(channels=16, convs=2).eval(), models.ESPCN(upscale_factor=2).eval()):
    x = torch.rand(1, 3 if isinstance(model, SRVGGStyle) else 1, 9, 14)
    fast = optimize_for_inference(model, dtype=torch.float32)
    with torch.no_grad():
        expected = model(x)
    error = ((fast(x) - expected).abs().max() / expected.abs().max()).item()
    assert error < 1e-4, error
    assert all(m.few_outputs_weight is None for m in fast.modules() if hasattr(m, "packed"))
assert not cpu_memory_cache_info()["installed"]
print("ok")
"""


def test_optimize_without_extension():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
