"""Outputs that appear whole or not at all: written under a temporary name next to the final
one (same folder, so the rename is atomic; same extension, so FFmpeg and Pillow pick the
format from it), fsynced, then renamed; removed on any failure or Ctrl-C."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(temporary: Path, path: Path) -> None:
    """fsync ``temporary``, rename it to ``path``, fsync the folder so the rename persists."""
    fsync_path(temporary)
    os.replace(temporary, path)
    with contextlib.suppress(OSError):  # some file systems cannot fsync a folder
        fsync_path(path.parent)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the temporary path to write; on success it becomes ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the output folder {path.parent} does not exist")
    temporary = temporary_name(path)
    try:
        yield temporary
        commit(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
