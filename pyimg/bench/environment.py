"""What a measurement was taken on: device, versions, date and the host's load."""

import datetime
import importlib.metadata
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

import pyimg
from pyimg.machine import cpu_model


def cpu_name() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str | None:
    """The checkout's commit (with +dirty when files differ), when pyimg runs from one."""
    root = Path(pyimg.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


@dataclass(frozen=True)
class Environment:
    device: str
    cpu: str
    cpu_capability: str  # the widest vector ISA ATen's CPU kernels dispatch to here
    threads: int
    torch: str
    triton: str
    cuda: str
    python: str
    pyimg: str
    pyimg_build: str
    commit: str | None
    date: str
    # The host's 1/5/15-minute load averages at the start: other work skews times on a
    # small machine.
    load_average: tuple[float, float, float]

    @property
    def slug(self) -> str:
        """The device as a file-name part: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
        return re.sub(r"[^a-z0-9]+", "-", self.device.lower()).strip("-")

    def line(self) -> str:
        load = "/".join(f"{v:.2f}" for v in self.load_average)
        return (f"device: {self.device} (CPU: {self.cpu}, ATen {self.cpu_capability}, "
                f"{self.threads} threads); torch {self.torch}; triton {self.triton}; "
                f"CUDA {self.cuda}; Python {self.python}; pyimg {self.pyimg}"
                f"{f' at {self.commit}' if self.commit else ''}; {self.date}; "
                f"load average {load} (1/5/15 min)")


def environment(device: torch.device) -> Environment:
    cpu = cpu_name()
    return Environment(
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        cpu=cpu,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        triton=_version("triton"),
        cuda=torch.version.cuda or "none",
        python=platform.python_version(),
        pyimg=pyimg.__version__,
        pyimg_build=str(pyimg.build_info),
        commit=_git_commit(),
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        load_average=tuple(round(v, 2) for v in os.getloadavg()),
    )
