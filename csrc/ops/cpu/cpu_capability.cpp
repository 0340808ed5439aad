// Which instruction set pyimg's CPU kernels run with: the processor's best, or the one
// PYIMG_CPU_CAPABILITY names (so tests can run each path on one machine).
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cstdlib>
#include <string>

#include "ops/cpu/parallel.h"

namespace pyimg {
namespace cpu {
namespace {

Capability supported() {
#ifdef PYIMG_CPU_MULTI_ISA
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return Capability::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2")) {
    return Capability::kAvx2;
  }
#endif
  return Capability::kDefault;
}

Capability resolve() {
  const Capability best = supported();
  const char* env = std::getenv("PYIMG_CPU_CAPABILITY");
  if (env == nullptr || *env == '\0') return best;
  const std::string name(env);
  Capability wanted;
  if (name == "default") {
    wanted = Capability::kDefault;
  } else if (name == "avx2") {
    wanted = Capability::kAvx2;
  } else if (name == "avx512") {
    wanted = Capability::kAvx512;
  } else {
    TORCH_CHECK(false, "PYIMG_CPU_CAPABILITY must be one of default, avx2, avx512, but got '",
                name, "'");
  }
  if (wanted > best) {
    TORCH_WARN("PYIMG_CPU_CAPABILITY=", name, " but this processor supports up to ",
               capability_name(best), "; using ", capability_name(best));
    return best;
  }
  return wanted;
}

std::string capability_op() { return capability_name(capability()); }

}  // namespace

Capability capability() {
  static const Capability chosen = resolve();
  return chosen;
}

const char* capability_name(Capability c) {
  switch (c) {
    case Capability::kAvx512: return "avx512";
    case Capability::kAvx2: return "avx2";
    case Capability::kDefault: break;
  }
  return "default";
}

}  // namespace cpu
}  // namespace pyimg

TORCH_LIBRARY_FRAGMENT(pyimg, m) {
  m.def("cpu_capability() -> str", &pyimg::cpu::capability_op);
}
