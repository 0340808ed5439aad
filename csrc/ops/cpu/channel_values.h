#pragma once
// Per-output-channel epilogue arguments (bias, PReLU weight) of pyimg's CPU inference
// convolutions, checked and made flat and contiguous once per call.

#include <ATen/ATen.h>

#include <optional>

namespace pyimg {

inline at::Tensor channel_values(const std::optional<at::Tensor>& t, int64_t CO,
                                 const char* op, const char* name) {
  if (!t.has_value()) return {};
  TORCH_CHECK(t->scalar_type() == at::kFloat && t->numel() == CO && t->device().is_cpu(),
              op, ": ", name, " must be ", CO, " float32 values on the CPU, got ",
              t->scalar_type(), " of shape ", t->sizes());
  return t->reshape({-1}).contiguous();
}

}  // namespace pyimg
