"""Peak memory of one call: the CUDA caching allocator's peak on a GPU; on the CPU the
resident set's high-water mark (Linux resets it through /proc/self/clear_refs), both counted
above what was in use just before the call."""

import contextlib
import ctypes
import re
from collections.abc import Callable

import torch


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_resident_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5: reset the peak resident set size (proc(5))
    except OSError:
        return False
    return True


def _return_freed_memory() -> None:
    """Hand memory that glibc holds freed back to the system first, so that the call's own
    allocations show in the resident set instead of landing in already-resident pages."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def cpu_peak_bytes(fn: Callable[[], object]) -> int | None:
    """Call gc.collect() first where Python garbage may hold memory (once for many calls)."""
    _return_freed_memory()
    before = _status_kib("VmRSS")
    if before is None or not _reset_resident_peak():
        return None
    fn()
    peak = _status_kib("VmHWM")
    return None if peak is None else max(0, peak - before) * 1024


def cuda_peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    return cuda_peak_bytes(fn, device) if device.type == "cuda" else cpu_peak_bytes(fn)


def reuse_freed_memory() -> None:
    """glibc: serve large allocations from the heap and never trim it (mallopt's
    M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1), so a fresh output reuses freed pages
    instead of faulting in new ones from mmap on every call."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError as error:
        raise OSError(f"--reuse-memory needs glibc ({error})") from None
    libc.mallopt(-3, 1 << 30)
    libc.mallopt(-1, 1 << 31)
