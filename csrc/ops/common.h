// What every op's host code shares: the memory format of its output and the dtype its
// kernels accumulate in.
#pragma once

#include <ATen/core/Tensor.h>

namespace pyimg {

// The layout pyimg's ops give their output, PyTorch's definition: channels_last when x is
// channels_last-contiguous but not contiguous (is_contiguous ignores the strides of size-1
// dimensions), else x.suggest_memory_format() (views, and tensors contiguous in both formats).
// pyimg/_format.py has the same rule for the Python side and the fake kernels; an output
// allocated in the format this returns gets it back.
at::MemoryFormat output_memory_format(const at::Tensor& x);

inline bool is_channels_last(const at::Tensor& x) {
  return output_memory_format(x) == at::MemoryFormat::ChannelsLast;
}

// The dtype the kernels accumulate x's sums in: double for double, else float.
inline at::ScalarType accumulate_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace pyimg
