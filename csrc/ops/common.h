// What every op's host code shares: the memory format of its output, the dtype its kernels
// accumulate in, and the checks that its tensor arguments sit with its input.
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

// An uninitialized tensor of x's sizes and options, in output_memory_format(x).
at::Tensor empty_output_like(const at::Tensor& x);

// How a same-device error names the two devices, after PyTorch's "Expected all tensors to be
// on the same device, but ...": stock's "found at least two devices, cpu (input) and meta
// (weight)", or "weight is on meta and the input on cpu".
enum class DeviceWording { kFoundTwo, kArgumentIsOn };

// Raises unless t, the argument `name`, is on the device of x, the op's input.
void check_same_device(const at::Tensor& t, const at::Tensor& x, const char* name,
                       DeviceWording wording);

// Raises "<op>: <name> must match <input>'s device and dtype" unless t, the argument `name`,
// has the device and dtype of x, which the message calls `input`.
void check_device_and_dtype(const at::Tensor& t, const at::Tensor& x, const char* op,
                            const char* name, const char* input = "the input");

}  // namespace pyimg
