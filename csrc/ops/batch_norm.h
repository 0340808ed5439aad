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

#include <cmath>
#include <optional>
#include <type_traits>

#include "ops/activation.h"
#include "ops/channel_view.h"

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
struct BatchNormView {
  ChannelView<Acc> mean, invstd;
  ChannelView<Acc> weight;   // none: 1
  ChannelView<Acc> bias;     // none: 0
  BroadcastView<Acc> alpha;  // none: no PReLU
  bool relu;

  C10_HOST_DEVICE Acc scale(int64_t c) const {
    return weight.defined() ? invstd[c] * weight[c] : invstd[c];
  }
  C10_HOST_DEVICE Acc shift(int64_t c) const { return bias.value_or(c, Acc(0)); }
  C10_HOST_DEVICE Acc slope(int64_t c) const { return alpha.value_or(c, relu ? Acc(0) : Acc(1)); }
  // The activation whose gradient the backward takes (activation.h): they differ at a NaN z.
  C10_HOST_DEVICE Activation activation() const {
    return relu ? Activation::kReLU : Activation::kPReLU;
  }
};

template <typename Acc>
BatchNormView<Acc> batch_norm_view(const BatchNormParams& p) {
  return {channel_view<Acc>(p.mean), channel_view<Acc>(p.invstd), channel_view<Acc>(p.weight),
          channel_view<Acc>(p.bias), channel_view<Acc, true>(p.alpha), p.relu};
}

// Training's per-channel step between batch_norm_stats and bn_prelu, as ATen's CPU batch norm
// takes it (batch_norm_cpu_update_stats_template), with m the momentum in the accumulation
// type Acc:
//   running_mean = m * mean + (1 - m) * running_mean                          in Acc
//   running_var  = m * var * count / (count - 1) + (1 - m) * running_var      the sum in double
//   invstd       = 1 / sqrt(var + eps)                                        in double
// (ATen divides its sum of squares by count - 1 in Acc where this scales the biased variance
// in double). Each product and sum is rounded on its own, where nvcc would fuse them into
// FMAs, so every backend and pyimg/ops/batch_norm.py's torch-op version give the same bits.
template <typename Acc>
struct RunningStatsStep {
  Acc m;
  double unbias, eps;  // count / (count - 1)

  RunningStatsStep(double momentum, int64_t count, double eps)
      : m(static_cast<Acc>(momentum)),
        unbias(static_cast<double>(count) / static_cast<double>(count - 1)),
        eps(eps) {}

  C10_HOST_DEVICE Acc mean(Acc batch, Acc running) const {
    return add(mul(m, batch), mul(Acc(1) - m, running));
  }
  C10_HOST_DEVICE Acc var(Acc batch, Acc running) const {
    const double unbiased = mul(static_cast<double>(batch), unbias);
    return static_cast<Acc>(
        add(mul(static_cast<double>(m), unbiased), static_cast<double>(mul(Acc(1) - m, running))));
  }
  C10_HOST_DEVICE Acc invstd(Acc var) const {
#ifdef __CUDA_ARCH__
    return static_cast<Acc>(__drcp_rn(__dsqrt_rn(__dadd_rn(static_cast<double>(var), eps))));
#else
    return static_cast<Acc>(1.0 / std::sqrt(static_cast<double>(var) + eps));
#endif
  }

 private:
  template <typename T>
  C10_HOST_DEVICE static T mul(T a, T b) {
#ifdef __CUDA_ARCH__
    if constexpr (std::is_same_v<T, float>) return __fmul_rn(a, b);
    else return __dmul_rn(a, b);
#else
    return a * b;
#endif
  }
  template <typename T>
  C10_HOST_DEVICE static T add(T a, T b) {
#ifdef __CUDA_ARCH__
    if constexpr (std::is_same_v<T, float>) return __fadd_rn(a, b);
    else return __dadd_rn(a, b);
#else
    return a + b;
#endif
  }
};

// Whether update_running_stats takes t as a running statistic of x: none, or a 1-D tensor of
// x's C channels in x's accumulation type on x's device, any stride but 0 (its values are
// written in place), not an inference tensor (whose in-place update is an error outside
// inference mode).
bool updatable_running_stat(const std::optional<at::Tensor>& t, const at::Tensor& x);

// RunningStatsStep over the channels, in place on the running statistics given (which must be
// updatable; an empty batch, count 0, leaves them as stock does) and on var, which becomes
// invstd and is returned: mean and var as batch_norm_stats returned them.
at::Tensor update_running_stats(const std::optional<at::Tensor>& running_mean,
                                const std::optional<at::Tensor>& running_var,
                                const at::Tensor& mean, at::Tensor& var, int64_t count,
                                double momentum, double eps);

#ifdef PYIMG_WITH_CUDA
void update_running_stats_cuda(const std::optional<at::Tensor>& running_mean,
                               const std::optional<at::Tensor>& running_var,
                               const at::Tensor& mean, at::Tensor& var, int64_t count,
                               double momentum, double eps);
#endif

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

// The ops past their checks, each with x (and grad, residual) in the layout the kernels read,
// and its outputs allocated; for an empty x the outputs already hold the result.
struct StatsCall {
  at::Tensor x, mean, var;
};
StatsCall prepare_stats(const at::Tensor& input);

struct BnPreluCall {
  at::Tensor x, residual, out;  // residual undefined for none
  BatchNormParams params;
};
BnPreluCall prepare_bn_prelu(const at::Tensor& input, const at::Tensor& mean,
                             const at::Tensor& invstd, const std::optional<at::Tensor>& weight,
                             const std::optional<at::Tensor>& bias,
                             const std::optional<at::Tensor>& prelu_weight,
                             const std::optional<at::Tensor>& residual, bool relu);

struct BnPreluBackwardCall {
  at::Tensor x, grad;
  BatchNormParams params;
  at::Tensor grad_x, sum_dz, sum_dz_xhat, sum_negz;
};
BnPreluBackwardCall prepare_bn_prelu_backward(const at::Tensor& grad_out, const at::Tensor& input,
                                              const at::Tensor& mean, const at::Tensor& invstd,
                                              const std::optional<at::Tensor>& weight,
                                              const std::optional<at::Tensor>& bias,
                                              const std::optional<at::Tensor>& prelu_weight,
                                              bool relu);

}  // namespace pyimg
