// Host-side contract shared by the CPU and CUDA batch-norm kernels (Ioffe & Szegedy 2015,
// "Batch Normalization"), fused with PReLU (He et al. 2015, "Delving Deep into Rectifiers")
// and a residual sum.
//
// The ops split BN into per-channel statistics and one elementwise pass:
//   batch_norm_stats(x)          -> (mean, var): biased batch variance, per channel
//   bn_prelu(x, mean, invstd, ...) y = prelu(z) + residual, z = (x - mean) * invstd * w + b
//   bn_prelu_backward(...)       -> grad_x and the per-channel sums the parameter grads are
// Eval passes the running statistics as (mean, invstd); training the batch's. The per-channel
// tensors (mean, invstd, w, b, PReLU weight, the sums) are in the accumulation type: float64
// for float64 inputs, float32 otherwise.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>

#include <optional>

#include "ops/activation.h"

namespace pyimg {

// The per-channel tensors of one call, validated and contiguous; w, b, alpha may be undefined
// (w = 1, b = 0, no PReLU). alpha has 1 or C values. relu: a ReLU instead of the PReLU (alpha
// undefined), which differs from a PReLU of slope 0 only in its gradient at a NaN z.
struct BatchNormParams {
  at::Tensor mean, invstd, weight, bias, alpha;
  bool relu = false;
};

// Kernel-side view of BatchNormParams: z = (x - mean[c]) * scale(c) + shift(c), then PReLU with
// slope(c). Without a PReLU weight the slope is 1, which makes the PReLU formula the identity,
// and 0 for a ReLU, so one branch-free kernel serves all three.
template <typename Acc>
struct ChannelView {
  const Acc* mean;
  const Acc* invstd;
  const Acc* weight;  // nullptr: 1
  const Acc* bias;    // nullptr: 0
  const Acc* alpha;   // nullptr: no PReLU
  int64_t alpha_stride;  // 0 when one PReLU weight serves every channel
  bool relu;

  C10_HOST_DEVICE Acc scale(int64_t c) const {
    return weight != nullptr ? invstd[c] * weight[c] : invstd[c];
  }
  C10_HOST_DEVICE Acc shift(int64_t c) const { return bias != nullptr ? bias[c] : Acc(0); }
  C10_HOST_DEVICE Acc slope(int64_t c) const {
    return alpha != nullptr ? alpha[c * alpha_stride] : relu ? Acc(0) : Acc(1);
  }
  // The activation whose gradient the backward takes (activation.h): they differ at a NaN z.
  C10_HOST_DEVICE Activation activation() const {
    return relu ? Activation::kReLU : Activation::kPReLU;
  }
};

template <typename Acc>
ChannelView<Acc> channel_view(const BatchNormParams& p) {
  const auto ptr = [](const at::Tensor& t) {
    return t.defined() ? t.const_data_ptr<Acc>() : nullptr;
  };
  return {ptr(p.mean), ptr(p.invstd), ptr(p.weight), ptr(p.bias), ptr(p.alpha),
          p.alpha.defined() && p.alpha.numel() > 1 ? 1 : 0, p.relu};
}

// x must be 4-D floating; returns x in the layout the kernels read and write (its own when it
// is NCHW- or channels_last-contiguous, else a contiguous copy).
at::Tensor checked_input(const at::Tensor& x, const char* op);

BatchNormParams check_params(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& invstd,
                             const std::optional<at::Tensor>& weight,
                             const std::optional<at::Tensor>& bias,
                             const std::optional<at::Tensor>& alpha, bool relu, const char* op);

// A tensor like x (same sizes, dtype, device) in x's layout; `name` for the error message.
at::Tensor checked_like(const at::Tensor& t, const at::Tensor& x, const char* name,
                        const char* op);

// Per-channel outputs in the accumulation type.
at::Tensor empty_channels(const at::Tensor& x);

}  // namespace pyimg
