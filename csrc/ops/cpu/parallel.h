// How pyimg's CPU kernels split work across threads, and which instruction set runs it.
//
// Every task body given to parallel_for is compiled for baseline x86-64 (SSE2), for AVX2 with
// FMA, and for AVX-512 (F, BW, VL, DQ), unless its kernel caps it lower. flatten inlines everything the body
// calls into each copy, so its loops are vectorized for that target. A task runs the copy
// capability() names: the best the processor supports, or PYIMG_CPU_CAPABILITY where set
// (default | avx2 | avx512, read at the first call; a capability the processor lacks falls
// back to the best it has, with a warning). The package so runs on any x86-64. AVX-512 copies
// prefer 256-bit vectors, as GCC's tuning for Intel's AVX-512 servers does.
//
// Target attributes rather than ATen's way (the kernel file compiled again with -mavx2 in a
// capability namespace): such a file also compiles the inline functions of every header it
// includes for AVX2, and the linker keeps one copy of each, which baseline code may then call.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace pyimg {
namespace cpu {

enum class Capability { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

// The instruction set the kernels run with (cpu_capability.cpp).
Capability capability();
const char* capability_name(Capability c);

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PYIMG_CPU_MULTI_ISA 1
#define PYIMG_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,f16c,popcnt"), flatten))
#define PYIMG_TARGET_AVX512                                                              \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi,bmi2,f16c,popcnt," \
                        "prefer-vector-width=256"),                                       \
                 flatten))
#endif

template <typename F>
__attribute__((flatten)) void run_baseline(const F& task, int64_t begin, int64_t end) {
  task(begin, end);
}

#ifdef PYIMG_CPU_MULTI_ISA
template <typename F>
PYIMG_TARGET_AVX2 void run_avx2(const F& task, int64_t begin, int64_t end) {
  task(begin, end);
}

template <typename F>
PYIMG_TARGET_AVX512 void run_avx512(const F& task, int64_t begin, int64_t end) {
  task(begin, end);
}
#endif

// task(begin, end), compiled for capability() but at most kMost: a kernel whose loops measured
// slower in a wider copy leaves it out (and is spared compiling it).
template <Capability kMost = Capability::kAvx512, typename F>
void run_task(const F& task, int64_t begin, int64_t end) {
#ifdef PYIMG_CPU_MULTI_ISA
  const Capability c = std::min(capability(), kMost);
  if constexpr (kMost >= Capability::kAvx512) {
    if (c == Capability::kAvx512) return run_avx512(task, begin, end);
  }
  if constexpr (kMost >= Capability::kAvx2) {
    if (c == Capability::kAvx2) return run_avx2(task, begin, end);
  }
#endif
  run_baseline(task, begin, end);
}

// at::parallel_for with every task run by run_task.
template <Capability kMost = Capability::kAvx512, typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& task) {
  at::parallel_for(begin, end, grain,
                   [&](int64_t b, int64_t e) { run_task<kMost>(task, b, e); });
}

// Work items per task so that a task moves at least ~32K elements (fewer tasks cost less to
// hand out than they gain from balance on a few cores).
inline int64_t grain_for(int64_t elements_per_item) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(elements_per_item, 1));
}

}  // namespace cpu
}  // namespace pyimg
