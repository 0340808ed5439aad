"""Where a run lives and what it records about itself: its default folder, the machine it
ran on, and the check that a resumed run has the settings it started with."""

import os
import re
from pathlib import Path

import torch

from pyimg.machine import cpu_model

# Settings that may differ when a run is resumed: they change how it is run, not what it
# computes (``steps`` extends or shortens a run).
RESUMABLE_CHANGES = ("steps", "val_every", "log_every", "checkpoint_every", "data.workers",
                     "device", "compile", "threads")


def default_run_dir(name: str, overrides) -> Path:
    """runs/<recipe>[-<overrides>], e.g. runs/espcn-scale=2."""
    tail = "-".join(re.sub(r"[^\w.=+-]", "_", o) for o in overrides)
    return Path("runs") / (f"{name}-{tail}" if tail else name)


def machine() -> str:
    """The processor (and GPU) this run uses, for the record."""
    cpu = cpu_model()
    text = f"{cpu} ({os.cpu_count()} cores), {torch.get_num_threads()} torch threads"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()}"
    return text


def _flatten(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def check_same_run(saved: dict, config: dict, where: Path) -> None:
    """Raise naming the first setting of ``config`` that differs from the ``saved`` run's
    (other than the RESUMABLE_CHANGES)."""
    old, new = _flatten(saved), _flatten(config)
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_CHANGES or old.get(key) == new.get(key):
            continue
        raise ValueError(f"{where} holds a run with {key}={old.get(key)!r}, not "
                         f"{new.get(key)!r}; resume it with the same settings or choose "
                         "another --run-dir")
