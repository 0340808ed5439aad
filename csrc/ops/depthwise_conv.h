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
#include "ops/channel_view.h"

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

// A backend's kernel: computes call.out, which has elements.
using DepthwiseKernel = void (*)(const DepthwiseCall& call);

// The op as a backend registers it: prepare_depthwise, then that backend's kernel.
template <DepthwiseKernel kernel>
at::Tensor depthwise_conv2d_impl(const at::Tensor& x, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation,
                                 const std::optional<at::Tensor>& scale,
                                 const std::optional<at::Tensor>& shift,
                                 c10::string_view activation,
                                 const std::optional<at::Tensor>& prelu_weight,
                                 double negative_slope, const std::optional<at::Tensor>& residual,
                                 bool add_before_activation) {
  const DepthwiseCall call =
      prepare_depthwise(x, weight, bias, stride, padding, dilation, scale, shift, activation,
                        prelu_weight, negative_slope, residual, add_before_activation);
  if (call.out.numel() > 0) kernel(call);
  return call.out;
}

// Kernel-side view of the epilogue.
template <typename Acc>
struct DepthwiseEpilogue {
  ChannelView<Acc> bias, scale, shift;
  BroadcastView<Acc> alpha;  // the PReLU weight, or the leaky slope for every channel
  Activation act;
  bool add_before_activation;

  // The output value from the conv sum of channel co and the residual (0 without one).
  C10_HOST_DEVICE Acc apply(Acc acc, int64_t co, Acc residual) const {
    if (bias.defined()) acc += bias[co];
    if (scale.defined()) acc *= scale[co];
    if (shift.defined()) acc += shift[co];
    if (add_before_activation) acc += residual;
    acc = activate(act, acc, alpha.value_or(co, Acc(0)));
    return add_before_activation ? acc : acc + residual;
  }
};

template <typename Acc>
DepthwiseEpilogue<Acc> epilogue_of(const DepthwiseCall& call) {
  return {channel_view<Acc>(call.bias), channel_view<Acc>(call.scale),
          channel_view<Acc>(call.shift), channel_view<Acc, true>(call.alpha), call.act,
          call.add_before_activation};
}

}  // namespace pyimg
