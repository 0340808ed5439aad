#include "ops/cpu/huge_pages.h"

#include <cstdint>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace pyimg {

void advise_huge_pages(const at::Tensor& fresh) {
#ifdef __linux__
  constexpr std::uintptr_t kHuge = std::uintptr_t{1} << 21;
  if (!fresh.is_cpu() || fresh.nbytes() < 2 * kHuge) return;
  const auto begin = reinterpret_cast<std::uintptr_t>(fresh.const_data_ptr());
  const std::uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t last = (begin + fresh.nbytes()) & ~(kHuge - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
  (void)fresh;
#endif
}

}  // namespace pyimg
