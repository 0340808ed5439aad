#include "ops/common.h"

#include <ATen/ops/empty.h>

namespace pyimg {

at::MemoryFormat output_memory_format(const at::Tensor& x) {
  if (x.dim() != 4) return at::MemoryFormat::Contiguous;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous()) {
    return at::MemoryFormat::ChannelsLast;
  }
  return x.suggest_memory_format();
}

at::Tensor empty_output_like(const at::Tensor& x) {
  return at::empty(x.sizes(), x.options().memory_format(output_memory_format(x)));
}

void check_same_device(const at::Tensor& t, const at::Tensor& x, const char* name,
                       DeviceWording wording) {
  if (t.device() == x.device()) return;
  if (wording == DeviceWording::kFoundTwo) {
    TORCH_CHECK(false,
                "Expected all tensors to be on the same device, but found at least two devices, ",
                x.device(), " (input) and ", t.device(), " (", name, ")");
  }
  TORCH_CHECK(false, "Expected all tensors to be on the same device, but ", name, " is on ",
              t.device(), " and the input on ", x.device());
}

void check_device_and_dtype(const at::Tensor& t, const at::Tensor& x, const char* op,
                            const char* name, const char* input) {
  TORCH_CHECK(t.device() == x.device() && t.scalar_type() == x.scalar_type(), op, ": ", name,
              " must match ", input, "'s device and dtype");
}

}  // namespace pyimg
