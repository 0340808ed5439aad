// A CPU allocator that keeps large freed blocks for the next request of about the same size.
//
// glibc hands every block above its mmap threshold (at most 32 MiB) back to the kernel on
// free, so the next video frame's 30-120 MB activations are fresh pages again: one page fault
// and one kernel-zeroed page per 4 KiB, which measured 10-40% of a fused ESPCN frame on a
// 2-core VM (14k faults a frame). onnxruntime's arena avoids the same cost. Blocks from 1 MiB
// up are served from a cache of freed blocks (best fit within 1/8 of the request), the rest
// by the allocator this one replaced; blocks of 2 MiB or more ask for transparent huge pages.
// The cache holds at most `limit` bytes; beyond it freed blocks go back to the system.
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>
#include <torch/library.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace pyimg {
namespace {

constexpr size_t kSmallestCached = size_t(1) << 20;
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kRounding = size_t(64) << 10;

void release_block(void* ptr);

class ReuseAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    if (n < kSmallestCached) return fallback_->allocate(n);
    const size_t bytes = (n + kRounding - 1) / kRounding * kRounding;
    std::lock_guard<std::mutex> lock(mutex_);
    void* ptr = take_cached(bytes);
    if (ptr == nullptr) ptr = fresh_block(bytes);
    return {ptr, ptr, &release_block, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release_block; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  void release(void* ptr) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto it = live_.find(ptr);
    if (it == live_.end()) {
      // A small block that raw_allocate got from the fallback allocator, which is simple
      // (data == context) for raw_allocate to have succeeded: its raw deleter frees it.
      c10::DeleterFnPtr deleter = fallback_->raw_deleter();
      lock.unlock();
      TORCH_INTERNAL_ASSERT(deleter != nullptr, "pyimg reuse allocator: unknown block freed");
      deleter(ptr);
      return;
    }
    const size_t bytes = it->second;
    live_.erase(it);
    if (cached_bytes_ + bytes <= limit_) {
      cached_.emplace(bytes, ptr);
      cached_bytes_ += bytes;
    } else {
      std::free(ptr);
    }
  }

  // Installs this allocator for CPU tensors with a cache of at most `limit` bytes; a limit of
  // 0 restores the allocator it replaced and empties the cache.
  void configure(int64_t limit) {
    TORCH_CHECK_VALUE(limit >= 0, "reuse_cpu_memory: the cache limit must be >= 0 bytes, got ",
                      limit);
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = static_cast<size_t>(limit);
    trim_to_limit();
    c10::Allocator* current = c10::GetCPUAllocator();
    if (limit > 0 && current != this) {
      fallback_ = current;
      c10::SetCPUAllocator(this, kPriority);
    } else if (limit == 0 && current == this) {
      c10::SetCPUAllocator(fallback_, kPriority);
    }
  }

  std::vector<int64_t> info() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {c10::GetCPUAllocator() == this, static_cast<int64_t>(limit_),
            static_cast<int64_t>(cached_bytes_), hits_, misses_};
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t limit = limit_;
    limit_ = 0;
    trim_to_limit();
    limit_ = limit;
  }

 private:
  // Above the priority c10 registers its default CPU allocator with, so that this one
  // replaces it and the default can be put back.
  static constexpr uint8_t kPriority = 1;

  void* take_cached(size_t bytes) {
    auto it = cached_.lower_bound(bytes);
    if (it == cached_.end() || it->first > bytes + bytes / 8) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    void* ptr = it->second;
    cached_bytes_ -= it->first;
    live_.emplace(ptr, it->first);
    cached_.erase(it);
    return ptr;
  }

  void* fresh_block(size_t bytes) {
    void* ptr = nullptr;
    const size_t alignment = bytes >= kHugePage ? kHugePage : 64;
    if (posix_memalign(&ptr, alignment, bytes) != 0) {
      trim_all_unlocked();  // give the cache back and try once more before failing
      TORCH_CHECK(posix_memalign(&ptr, alignment, bytes) == 0,
                  "DefaultCPUAllocator: not enough memory: you tried to allocate ", bytes,
                  " bytes.");
    }
#ifdef MADV_HUGEPAGE
    if (bytes >= kHugePage) madvise(ptr, bytes, MADV_HUGEPAGE);
#endif
    live_.emplace(ptr, bytes);
    return ptr;
  }

  void trim_to_limit() {
    while (cached_bytes_ > limit_ && !cached_.empty()) {
      auto largest = std::prev(cached_.end());
      cached_bytes_ -= largest->first;
      std::free(largest->second);
      cached_.erase(largest);
    }
  }

  void trim_all_unlocked() {
    for (auto& [bytes, ptr] : cached_) std::free(ptr);
    cached_.clear();
    cached_bytes_ = 0;
  }

  std::mutex mutex_;
  c10::Allocator* fallback_ = c10::GetDefaultCPUAllocator();
  std::multimap<size_t, void*> cached_;
  std::unordered_map<void*, size_t> live_;
  size_t cached_bytes_ = 0;
  size_t limit_ = 0;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
};

// Never destroyed: blocks can be freed during interpreter shutdown, after static destructors.
ReuseAllocator& instance() {
  static ReuseAllocator* allocator = new ReuseAllocator();
  return *allocator;
}

void release_block(void* ptr) { instance().release(ptr); }

void reuse_cpu_memory(int64_t limit) { instance().configure(limit); }

std::vector<int64_t> cpu_memory_cache_info() { return instance().info(); }

void empty_cpu_memory_cache() { instance().empty_cache(); }

}  // namespace
}  // namespace pyimg

TORCH_LIBRARY_FRAGMENT(pyimg, m) {
  // limit: bytes the cache of freed blocks may hold; 0 uninstalls. Returns nothing.
  m.def("reuse_cpu_memory(int limit) -> ()", &pyimg::reuse_cpu_memory);
  // [installed, limit, cached bytes, hits, misses]
  m.def("cpu_memory_cache_info() -> int[]", &pyimg::cpu_memory_cache_info);
  m.def("empty_cpu_memory_cache() -> ()", &pyimg::empty_cpu_memory_cache);
}
