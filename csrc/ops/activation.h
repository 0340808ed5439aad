// Activations fused into kernel epilogues, shared by the CPU and CUDA kernels.
// LeakyReLU and PReLU are one formula, z > 0 ? z : alpha * z; they differ only in where
// alpha comes from (a scalar slope, or a learned weight per output channel).
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <c10/util/string_view.h>

namespace pyimg {

enum class Activation : int { kNone, kReLU, kLeakyReLU, kPReLU, kTanh, kSigmoid };

Activation parse_activation(c10::string_view name);

template <typename T>
C10_HOST_DEVICE inline T activate(Activation act, T z, T alpha) {
  switch (act) {
    // Written as max/min so that compilers emit no branch (a mispredicted one per element
    // made the CPU loop 10x slower on signed data); z < 0 is tested so NaN passes through.
    case Activation::kReLU:
      return z < T(0) ? T(0) : z;
    case Activation::kLeakyReLU:
    case Activation::kPReLU: {
      const T positive = z < T(0) ? T(0) : z;
      const T negative = z < T(0) ? z : T(0);
      return positive + alpha * negative;
    }
    case Activation::kTanh:
      return std::tanh(z);
    case Activation::kSigmoid:
      return T(1) / (T(1) + std::exp(-z));
    default:
      return z;
  }
}

// d activate / dz at z, as ATen's backward kernels: at z == 0 relu gives 0 and leaky alpha; at
// a NaN z relu passes the gradient (1) and leaky / PReLU give alpha.
template <typename T>
C10_HOST_DEVICE inline T activation_grad(Activation act, T z, T alpha) {
  switch (act) {
    case Activation::kReLU:
      return z <= T(0) ? T(0) : T(1);
    case Activation::kLeakyReLU:
    case Activation::kPReLU:
      return z > T(0) ? T(1) : alpha;
    case Activation::kTanh: {
      const T t = std::tanh(z);
      return T(1) - t * t;
    }
    case Activation::kSigmoid: {
      const T s = T(1) / (T(1) + std::exp(-z));
      return s * (T(1) - s);
    }
    default:
      return T(1);
  }
}

}  // namespace pyimg
