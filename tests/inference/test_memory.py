"""The reuse allocator: large CPU blocks come back from its cache, values are intact,
the cache respects its limit, and uninstalling restores the previous allocator."""

import pytest
import torch

from pyimg import _extension
from pyimg.inference import cpu_memory_cache_info, empty_cpu_memory_cache, reuse_cpu_memory

pytestmark = pytest.mark.skipif(not _extension.loaded(), reason="pyimg's extension not built")

MIB = 1 << 20


@pytest.fixture
def cache():
    before = cpu_memory_cache_info()
    yield
    reuse_cpu_memory(before["limit"] if before["installed"] else 0)


def test_freed_blocks_are_reused(cache):
    reuse_cpu_memory(64 * MIB)
    first = torch.empty(3 * MIB // 4, dtype=torch.float32)  # 3 MiB
    first.fill_(1.0)
    address = first.data_ptr()
    del first
    info = cpu_memory_cache_info()
    assert info["installed"] and info["cached_bytes"] >= 3 * MIB
    again = torch.full((3 * MIB // 4,), 2.0)
    assert again.data_ptr() == address
    assert cpu_memory_cache_info()["hits"] > info["hits"]
    assert bool((again == 2.0).all())


def test_small_blocks_bypass_the_cache(cache):
    reuse_cpu_memory(64 * MIB)
    misses = cpu_memory_cache_info()["misses"]
    for _ in range(10):
        torch.ones(1000).sum()
    assert cpu_memory_cache_info()["misses"] == misses


def test_limit_and_release(cache):
    reuse_cpu_memory(4 * MIB)
    blocks = [torch.empty(3 * MIB, dtype=torch.uint8) for _ in range(3)]
    del blocks
    assert cpu_memory_cache_info()["cached_bytes"] <= 4 * MIB
    empty_cpu_memory_cache()
    assert cpu_memory_cache_info()["cached_bytes"] == 0
    assert cpu_memory_cache_info()["installed"]


def test_uninstall_keeps_live_tensors_valid(cache):
    reuse_cpu_memory(64 * MIB)
    live = torch.arange(MIB, dtype=torch.float32)
    assert not reuse_cpu_memory(0)
    assert not cpu_memory_cache_info()["installed"]
    assert float(live[-1]) == MIB - 1
    del live  # freed through the uninstalled cache, which now holds nothing
    assert cpu_memory_cache_info()["cached_bytes"] == 0


def test_negative_limit_is_an_error():
    with pytest.raises(ValueError, match=">= 0"):
        reuse_cpu_memory(-1)
