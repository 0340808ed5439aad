// Host-side contract shared by the CPU and CUDA depthwise convolution kernels: the argument
// checks, the output allocation, and the epilogue handed to the kernels.
//
// depthwise_conv2d is F.conv2d with groups = C_in (weight (C_out, 1, KH, KW), C_out a multiple
// of C_in: output channel co reads input channel co / (C_out / C_in)), followed by the conv
// epilogue of pyimg/ops/conv.py without the pixel shuffle:
//     u = (conv + bias) * scale + shift,  y = act(u [+ residual]) [+ residual].
// A GEMM tile wastes almost all of its work here (K = KH * KW per output), so these kernels
// are direct: each output element sums its own taps.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <cstdint>
#include <optional>

#include "ops/activation.h"

namespace pyimg {

struct DepthwiseGeometry {
  int64_t N, C, H, W;  // input
  int64_t C_out, OH, OW, KH, KW;
  int64_t sh, sw, pad_top, pad_left, dh, dw;
  int64_t multiplier;  // C_out / C
};

// Everything a kernel needs, validated: x, residual and out contiguous in out's layout (x's);
// the weight as (KH * KW, C_out) taps-major and the per-channel tables in the accumulation
// type (float, or double for double inputs), each of C_out values or undefined.
struct DepthwiseCall {
  DepthwiseGeometry g;
  at::Tensor x, taps, bias, scale, shift, alpha, residual, out;
  Activation act = Activation::kNone;
  bool add_before_activation = false;
  bool channels_last = false;
};

DepthwiseCall prepare_depthwise(const at::Tensor& x, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation,
                                const std::optional<at::Tensor>& scale,
                                const std::optional<at::Tensor>& shift,
                                c10::string_view activation,
                                const std::optional<at::Tensor>& prelu_weight,
                                double negative_slope, const std::optional<at::Tensor>& residual,
                                bool add_before_activation);

// Kernel-side view of the epilogue: raw pointers, one value or one per output channel.
template <typename Acc>
struct DepthwiseEpilogue {
  const Acc* bias;
  const Acc* scale;
  const Acc* shift;
  const Acc* alpha;
  int64_t alpha_stride;  // 0: one PReLU weight (or leaky slope) for every channel
  Activation act;
  bool add_before_activation;

  // The output value from the conv sum of channel co and the residual (0 without one).
  C10_HOST_DEVICE Acc apply(Acc acc, int64_t co, Acc residual) const {
    if (bias != nullptr) acc += bias[co];
    if (scale != nullptr) acc *= scale[co];
    if (shift != nullptr) acc += shift[co];
    if (add_before_activation) acc += residual;
    acc = activate(act, acc, alpha != nullptr ? alpha[co * alpha_stride] : Acc(0));
    return add_before_activation ? acc : acc + residual;
  }
};

template <typename Acc>
DepthwiseEpilogue<Acc> epilogue_of(const DepthwiseCall& call) {
  const auto ptr = [](const at::Tensor& t) {
    return t.defined() ? t.const_data_ptr<Acc>() : nullptr;
  };
  return {ptr(call.bias), ptr(call.scale), ptr(call.shift), ptr(call.alpha),
          call.alpha.defined() && call.alpha.numel() > 1 ? 1 : 0, call.act,
          call.add_before_activation};
}

}  // namespace pyimg
