"""Builds pyimg._C: the C++ CPU kernels always, the CUDA kernels when torch and nvcc allow.

Switches (environment):
  PYIMG_CUDA=auto|1|0     auto (default) builds CUDA when torch has CUDA and nvcc is found,
                          1 requires it (fails otherwise), 0 skips it.
  TORCH_CUDA_ARCH_LIST    default "8.0;9.0+PTX".
  MAX_JOBS                parallel compile jobs; default capped by memory (about 3 GiB a job).
  PYIMG_DEBUG=1           -O0 -g, and -lineinfo for device code.
"""

import glob
import os
import shutil
import sysconfig

import torch
from setuptools import setup
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _want_cuda() -> bool:
    mode = os.environ.get("PYIMG_CUDA", "auto").lower()
    if mode in ("0", "off", "no", "false"):
        return False
    found = torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
    if mode in ("1", "on", "yes", "true") and not found:
        raise RuntimeError(
            f"PYIMG_CUDA=1 but torch.version.cuda={torch.version.cuda!r} and "
            f"CUDA_HOME={cpp_extension.CUDA_HOME!r}: install a CUDA build of torch and set "
            "CUDA_HOME to the toolkit folder that holds bin/nvcc and lib64/libcudart.so"
        )
    return found


def _cap_jobs_by_memory() -> None:
    if "MAX_JOBS" in os.environ:
        return
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = 8
    os.environ["MAX_JOBS"] = str(max(1, min(os.cpu_count() or 1, int(mem_gib // 3))))


def _wheel_cuda_includes() -> list[str]:
    # The CUDA torch wheel ships headers torch includes (cusparse.h, ...) that a minimal
    # toolkit lacks.
    site = sysconfig.get_paths()["purelib"]
    return sorted(glob.glob(os.path.join(site, "nvidia", "cu*", "include")))


def _extension():
    with_cuda = _want_cuda()
    debug = os.environ.get("PYIMG_DEBUG") == "1"
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/ops/*.cpp"))
    sources += sorted(glob.glob("csrc/ops/cpu/*.cpp"))
    sources += sorted(glob.glob("csrc/ops/autograd/*.cpp") + glob.glob("csrc/python/*.cpp"))
    cxx = ["-O0", "-g"] if debug else ["-O3"]
    # ATen's parallel_for is an inline OpenMP region: without -fopenmp it runs one thread.
    cxx += ["-fopenmp"]
    cxx += [f'-DPYIMG_TORCH_VERSION="{torch.__version__}"']
    kwargs = {"include_dirs": [os.path.join(ROOT, "csrc")], "extra_link_args": ["-fopenmp"]}
    if not with_cuda:
        return cpp_extension.CppExtension(
            "pyimg._C", sources, extra_compile_args={"cxx": cxx}, **kwargs
        )
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    arch_list = os.environ["TORCH_CUDA_ARCH_LIST"]
    sources += sorted(glob.glob("csrc/ops/cuda/*.cu"))
    defines = ["-DPYIMG_WITH_CUDA", f'-DPYIMG_CUDA_ARCH_LIST="{arch_list}"']
    nvcc = ["-O3", "-lineinfo"] if not debug else ["-O0", "-g", "-lineinfo"]
    nvcc += ["--expt-relaxed-constexpr", *defines]
    kwargs["include_dirs"] += _wheel_cuda_includes()
    return cpp_extension.CUDAExtension(
        "pyimg._C", sources, extra_compile_args={"cxx": cxx + defines, "nvcc": nvcc}, **kwargs
    )


if shutil.which("ninja") is None:
    os.environ.setdefault("USE_NINJA", "0")
_cap_jobs_by_memory()
setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)
