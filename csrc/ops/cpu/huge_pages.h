// Transparent huge pages for freshly allocated CPU outputs.
//
// An output of tens of MB is a fresh mapping each call, and the kernel's first touch maps it
// 4 KiB page by page: on a small host those faults cost as much as the pass itself (an 8 MB
// fill: 3 ms of faults for 1 ms of stores). Advising huge pages on the untouched buffer, what
// THP_MEM_ALLOC_ENABLE=1 does for every torch allocation, cuts the faults 512-fold. Advice
// only: where THP is off, or off Linux, nothing changes.
#pragma once

#include <ATen/core/Tensor.h>

namespace pyimg {

// Call before the first write; buffers under one 2 MiB page are left alone.
void advise_huge_pages(const at::Tensor& fresh);

}  // namespace pyimg
