// Host-side contract shared by the CPU and CUDA pixel-shuffle kernels: argument checks,
// output allocation, and the epilogue handed to the kernels.
//
// Naming: the "small" tensor is (N, C, H, W) with C = Co * r * r; the "large" one is
// (N, Co, H * r, W * r). pixel_shuffle maps small -> large; pixel_unshuffle and the
// fused backward map large -> small. Element (co, h * r + i, w * r + j) of the large tensor
// is element (co * r * r + i * r + j, h, w) of the small one.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>

#include "ops/activation.h"
#include "ops/channel_view.h"
#include "ops/common.h"

namespace pyimg {

// Validated epilogue of the fused shuffle: bias has one value per small channel, the PReLU
// weight one per large channel (or one for all).
struct FusedEpilogue {
  Activation act = Activation::kNone;
  at::Tensor bias;    // contiguous, or undefined for none
  at::Tensor weight;  // contiguous PReLU weight, or undefined
  double negative_slope = 0.0;

  bool is_identity() const { return act == Activation::kNone && !bias.defined(); }
};

// Kernel-side view of FusedEpilogue, alpha resolved per large channel.
template <typename T, typename Acc>
struct EpilogueView {
  Activation act;
  ChannelView<T> bias;      // per small channel
  BroadcastView<T> weight;  // per large channel
  Acc slope;

  C10_HOST_DEVICE Acc alpha(int64_t co) const { return weight.value_or(co, slope); }
  C10_HOST_DEVICE Acc bias_at(int64_t c) const { return bias.value_or(c, Acc(0)); }
};

template <typename T, typename Acc>
EpilogueView<T, Acc> view_of(const FusedEpilogue& e) {
  return {e.act, channel_view<T>(e.bias), channel_view<T, true>(e.weight),
          static_cast<Acc>(e.negative_slope)};
}

// An op call past its checks: the validated epilogue and the allocated, unwritten output.
struct PreparedCall {
  FusedEpilogue epilogue;
  at::Tensor out;
};

// pixel_shuffle(x, r, bias, activation, weight, negative_slope): out is the large tensor.
PreparedCall prepare_shuffle(const at::Tensor& x, int64_t r, const std::optional<at::Tensor>& bias,
                             c10::string_view activation, const std::optional<at::Tensor>& weight,
                             double negative_slope);

// pixel_unshuffle(x, r): out is the small tensor.
at::Tensor prepare_unshuffle(const at::Tensor& x, int64_t r);

// pixel_shuffle_backward(grad_out, x, ...): out is laid out like x.
PreparedCall prepare_shuffle_backward(const at::Tensor& grad_out, const at::Tensor& x, int64_t r,
                                      const std::optional<at::Tensor>& bias,
                                      c10::string_view activation,
                                      const std::optional<at::Tensor>& weight,
                                      double negative_slope);

}  // namespace pyimg
