// How pyimg's CUDA kernels cover their work: blocks of kThreads threads, each thread taking
// items i, i + (threads in the grid), ... of a grid-stride loop.
#pragma once

#include <algorithm>
#include <cstdint>

namespace pyimg {

constexpr int kThreads = 256;

// Blocks of kThreads for a grid-stride loop over `items`: one item a thread, at most 2^20
// blocks (2^28 threads, far more than a GPU runs at once, so larger work loops instead), and
// at least one (a launch of no blocks is an error).
inline unsigned int grid_size(int64_t items) {
  return static_cast<unsigned int>(
      std::clamp<int64_t>((items + kThreads - 1) / kThreads, 1, int64_t{1} << 20));
}

}  // namespace pyimg

// for (int64_t i ...) over [0, n), as one thread of a grid of kThreads-thread blocks.
#define PYIMG_GRID_STRIDE_LOOP(i, n)                                                 \
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < (n);          \
       i += int64_t{gridDim.x} * kThreads)
