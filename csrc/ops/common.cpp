#include "ops/common.h"

namespace pyimg {

at::MemoryFormat output_memory_format(const at::Tensor& x) {
  if (x.dim() != 4) return at::MemoryFormat::Contiguous;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous()) {
    return at::MemoryFormat::ChannelsLast;
  }
  return x.suggest_memory_format();
}

}  // namespace pyimg
