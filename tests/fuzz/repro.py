"""Runs one fuzz case again, as a failure's "reproduce:" line gives it:

    python tests/fuzz/repro.py NAME BACKEND DEVICE 'CASE'
"""

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402

if not torch.cuda.is_available():
    # As tests/conftest.py: before the first import of triton.
    os.environ.setdefault("TRITON_INTERPRET", "1")

from fuzz import (  # noqa: E402
    harness,
    test_batch_norm,
    test_compile,
    test_conv,
    test_max_pool,
    test_modules,
    test_pixel_shuffle,
)


def main() -> None:
    name, backend, device, source = sys.argv[1:5]
    namespace = {"torch": torch, "Layout": harness.Layout}
    for module in (test_batch_norm, test_compile, test_conv, test_max_pool, test_modules,
                   test_pixel_shuffle):
        namespace.update({k: v for k, v in vars(module).items() if k.endswith("Case")})
    case = eval(source, namespace)  # the case's repr, as the failure printed it
    harness.PROPERTIES[name](backend, device, case)
    print(f"{name} on {backend}-{device}: passed")


if __name__ == "__main__":
    main()
