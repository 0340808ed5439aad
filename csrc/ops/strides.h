// Strides of a 4-D (N, C, H, W) tensor, passed to kernels that read inputs of any layout
// through their strides instead of copying them to a fixed one.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace pyimg {

struct Strides4 {
  int64_t n, c, h, w;
};

inline Strides4 strides_of(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

}  // namespace pyimg
