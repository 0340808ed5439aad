"""Run a training in this process for the crash-safety tests, optionally stopping in the
middle of writing checkpoint number N: half of its bytes written, a marker file created,
then a long sleep in which the test kills the process.

usage: crash_driver.py RUN_DIR MARKER PAUSE_AT_SAVE RECIPE [key=value ...]
(PAUSE_AT_SAVE 0: never pause)
"""

import io
import sys
import time
from pathlib import Path

import torch

import pyimg.train.checkpoint as checkpoint
from pyimg.train import train

run_dir, marker, pause_at, recipe, *overrides = sys.argv[1:]
pause_at = int(pause_at)
saves = 0
original_save = torch.save


def slow_save(obj, f, *args, **kwargs):
    global saves
    saves += 1
    if saves != pause_at or not hasattr(f, "write"):
        return original_save(obj, f, *args, **kwargs)
    buffer = io.BytesIO()
    original_save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    f.write(data[:len(data) // 2])
    f.flush()
    Path(marker).write_text(f"{f.name}\n")
    time.sleep(600)
    f.write(data[len(data) // 2:])


checkpoint.torch.save = slow_save
train(recipe, overrides, run_dir=run_dir, progress=False)
