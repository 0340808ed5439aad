"""Files that appear whole or not at all: written under a temporary name next to the final
one (same folder, so the rename is atomic; same extension, so FFmpeg and Pillow pick the
format from it), fsynced, then renamed; removed on any failure or Ctrl-C. Checkpoints,
videos, images, reports and exported programs are all written this way."""

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

_TEMPORARY = ".partial-"


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.stem}{_TEMPORARY}{os.getpid()}{path.suffix}")


def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """The temporary files a killed writer left in ``folder``."""
    return sorted(Path(folder).glob(f".*{_TEMPORARY}*"))


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(temporary: Path, path: Path) -> None:
    """fsync ``temporary``, rename it to ``path``, fsync the folder so the rename persists."""
    _fsync_path(temporary)
    os.replace(temporary, path)
    with contextlib.suppress(OSError):  # some file systems cannot fsync a folder
        _fsync_path(path.parent)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, make_folder: bool = False) -> Iterator[Path]:
    """Yield the temporary path to write; on success it becomes ``path``. The folder must
    exist unless ``make_folder``."""
    path = Path(path)
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the output folder {path.parent} does not exist")
    temporary = temporary_name(path)
    try:
        yield temporary
        _commit(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomically(path: str | os.PathLike, write: Callable[[object], None]) -> Path:
    """Call ``write(file)`` on a binary file that becomes ``path`` when it returns (its
    folder made if missing): readers see the previous file or the whole new one."""
    path = Path(path)
    with atomic_output(path, make_folder=True) as temporary, open(temporary, "wb") as file:
        write(file)
    return path
