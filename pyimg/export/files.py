"""Writing export files so that an interruption never leaves half of one."""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path, write: Callable[[object], None]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, sync it and rename it into
    place: readers see the previous file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
