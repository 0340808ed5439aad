#include "ops/activation.h"

#include <c10/util/Exception.h>

#include <string>

namespace pyimg {

Activation parse_activation(c10::string_view name) {
  if (name == "none") return Activation::kNone;
  if (name == "relu") return Activation::kReLU;
  if (name == "leaky_relu") return Activation::kLeakyReLU;
  if (name == "prelu") return Activation::kPReLU;
  if (name == "tanh") return Activation::kTanh;
  if (name == "sigmoid") return Activation::kSigmoid;
  TORCH_CHECK_VALUE(false, "unknown activation '", std::string(name.data(), name.size()),
                    "'; expected one of none, relu, leaky_relu, prelu, tanh, sigmoid");
}

}  // namespace pyimg
