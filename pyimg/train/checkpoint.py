"""Crash-safe checkpoints and weights files.

A checkpoint is written to a temporary file in the same folder, flushed and fsync'ed, then
renamed over the old one (an atomic step on POSIX file systems) and the folder fsync'ed: a
crash at any moment leaves either the previous checkpoint or the new one, never a torn
file; leftover temporary files are removed on the next start. Checkpoints load with
``torch.load(weights_only=True)``, weights files are safetensors: loading never runs
pickled code.
"""

import os
import random
from pathlib import Path

import numpy as np
import torch

from pyimg.atomic import stale_temporaries, write_atomically

FORMAT = "pyimg-checkpoint-1"


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer left in ``folder``; returns them."""
    stale = stale_temporaries(folder)
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    write_atomically(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """A checkpoint written by :func:`save_checkpoint`, loaded without unpickling code."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise OSError(f"{path}: no such checkpoint") from None
    except Exception as error:
        raise OSError(f"{path}: not a readable pyimg checkpoint ({error})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise OSError(f"{path}: not a pyimg checkpoint (format {FORMAT} expected)")
    return state


def rng_state() -> dict:
    """Every global random generator's state, in types ``weights_only`` loading accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_weights(tensors: dict[str, torch.Tensor], path: str | os.PathLike,
                 metadata: dict[str, str]) -> None:
    """A safetensors file of ``tensors`` (made contiguous, on the CPU) with string
    ``metadata``, written atomically."""
    from safetensors.torch import save

    bad = [k for k, v in metadata.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f"safetensors metadata must be strings; not: {bad}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    data = save(tensors, metadata=metadata)
    write_atomically(path, lambda f: f.write(data))


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(path), metadata
    except FileNotFoundError:
        raise OSError(f"{path}: no such weights file") from None
    except (SafetensorError, OSError) as error:
        raise OSError(f"{path}: not a readable safetensors file ({error})") from error
