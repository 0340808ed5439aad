"""Large CPU allocations served from a cache of freed blocks (pyimg's reuse allocator).

Without it, every block above glibc's mmap threshold (at most 32 MiB) goes back to the
kernel when freed, and the next video frame touches its activations as fresh, page-faulting,
kernel-zeroed pages: 14k page faults and 10-40% of the time of an fp32 ESPCN x2 frame at
360x640 on a 2-core VM. With the cache a frame reuses the previous frame's blocks.
Installing it replaces the CPU allocator for the whole process (blocks under 1 MiB still go
to the one it replaced); ``reuse_cpu_memory(0)`` puts the old one back.
"""

import os

import torch

from pyimg import _extension


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30


def default_limit() -> int:
    """The default cache size: a quarter of the physical memory."""
    return _physical_memory() // 4


def reuse_cpu_memory(limit: int | None = None) -> bool:
    """Serve CPU tensors of 1 MiB or more from a cache of freed blocks holding at most
    ``limit`` bytes (default: a quarter of the physical memory); ``limit=0`` uninstalls it
    and frees the cache. Returns whether the cache is installed (False without pyimg's
    compiled extension)."""
    limit = default_limit() if limit is None else int(limit)
    if limit < 0:
        raise ValueError(f"reuse_cpu_memory: limit must be >= 0 bytes, got {limit}")
    if not _extension.loaded():
        return False
    torch.ops.pyimg.reuse_cpu_memory(limit)
    return limit > 0


def empty_cpu_memory_cache() -> None:
    """Give the cached free blocks back to the system (the cache stays installed)."""
    if _extension.loaded():
        torch.ops.pyimg.empty_cpu_memory_cache()


def cpu_memory_cache_info() -> dict[str, int | bool]:
    """installed, limit, cached_bytes, hits and misses (allocations of 1 MiB or more)."""
    if not _extension.loaded():
        return {"installed": False, "limit": 0, "cached_bytes": 0, "hits": 0, "misses": 0}
    installed, limit, cached, hits, misses = torch.ops.pyimg.cpu_memory_cache_info()
    return {"installed": bool(installed), "limit": limit, "cached_bytes": cached, "hits": hits,
            "misses": misses}
