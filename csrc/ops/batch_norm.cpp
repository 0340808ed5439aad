// Schemas of the batch-norm ops and the argument checks every backend shares.
#include "ops/batch_norm.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cmath>

#include "ops/common.h"

namespace pyimg {

at::Tensor checked_input(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() == 4, op, " expects a 4-D (N, C, H, W) input, but got input with ", x.dim(),
              " dimension(s)");
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op,
              " expects a floating-point input, but got ", x.scalar_type());
  return x.contiguous(output_memory_format(x));
}

static at::Tensor checked_channel_tensor(const at::Tensor& p, const at::Tensor& x,
                                         const char* name, const char* op, bool one_ok) {
  const int64_t channels = x.size(1);
  check_same_device(p, x, name, DeviceWording::kArgumentIsOn);
  TORCH_CHECK(p.scalar_type() == accumulate_type(x), op, ": ", name, " must be ",
              accumulate_type(x), " for a ", x.scalar_type(), " input, but got ",
              p.scalar_type());
  TORCH_CHECK(p.dim() == 1 && (p.numel() == channels || (one_ok && p.numel() == 1)), op, ": ",
              name, " must be 1-D with ", channels, " element(s), but got shape ", p.sizes());
  return p.contiguous();
}

BatchNormParams check_params(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& invstd,
                             const std::optional<at::Tensor>& weight,
                             const std::optional<at::Tensor>& bias,
                             const std::optional<at::Tensor>& alpha, bool relu, const char* op) {
  TORCH_CHECK(!(relu && alpha.has_value()), op, ": relu=True takes no PReLU weight");
  BatchNormParams p;
  p.relu = relu;
  p.mean = checked_channel_tensor(mean, x, "mean", op, false);
  p.invstd = checked_channel_tensor(invstd, x, "invstd", op, false);
  if (weight.has_value()) p.weight = checked_channel_tensor(*weight, x, "weight", op, false);
  if (bias.has_value()) p.bias = checked_channel_tensor(*bias, x, "bias", op, false);
  if (alpha.has_value()) p.alpha = checked_channel_tensor(*alpha, x, "PReLU weight", op, true);
  return p;
}

at::Tensor checked_like(const at::Tensor& t, const at::Tensor& x, const char* name,
                        const char* op) {
  TORCH_CHECK(t.sizes() == x.sizes(), op, ": ", name, " has shape ", t.sizes(),
              " but the input has shape ", x.sizes());
  check_device_and_dtype(t, x, op, name);
  return t.contiguous(output_memory_format(x));
}

at::Tensor empty_channels(const at::Tensor& x) {
  return at::empty({x.size(1)}, x.options().dtype(accumulate_type(x)));
}

StatsCall prepare_stats(const at::Tensor& input) {
  StatsCall call;
  call.x = checked_input(input, "batch_norm_stats");
  call.mean = empty_channels(call.x);
  call.var = empty_channels(call.x);
  if (call.x.numel() == 0) {
    call.mean.fill_(NAN);
    call.var.fill_(NAN);
  }
  return call;
}

BnPreluCall prepare_bn_prelu(const at::Tensor& input, const at::Tensor& mean,
                             const at::Tensor& invstd, const std::optional<at::Tensor>& weight,
                             const std::optional<at::Tensor>& bias,
                             const std::optional<at::Tensor>& prelu_weight,
                             const std::optional<at::Tensor>& residual, bool relu) {
  constexpr const char* kOp = "bn_prelu";
  BnPreluCall call;
  call.x = checked_input(input, kOp);
  call.params = check_params(call.x, mean, invstd, weight, bias, prelu_weight, relu, kOp);
  if (residual.has_value()) call.residual = checked_like(*residual, call.x, "residual", kOp);
  call.out = empty_output_like(call.x);
  return call;
}

BnPreluBackwardCall prepare_bn_prelu_backward(const at::Tensor& grad_out, const at::Tensor& input,
                                              const at::Tensor& mean, const at::Tensor& invstd,
                                              const std::optional<at::Tensor>& weight,
                                              const std::optional<at::Tensor>& bias,
                                              const std::optional<at::Tensor>& prelu_weight,
                                              bool relu) {
  constexpr const char* kOp = "bn_prelu_backward";
  BnPreluBackwardCall call;
  call.x = checked_input(input, kOp);
  call.grad = checked_like(grad_out, call.x, "grad", kOp);
  call.params = check_params(call.x, mean, invstd, weight, bias, prelu_weight, relu, kOp);
  call.grad_x = empty_output_like(call.x);
  for (at::Tensor* sum : {&call.sum_dz, &call.sum_dz_xhat, &call.sum_negz}) {
    *sum = empty_channels(call.x);
    if (call.x.numel() == 0) sum->zero_();
  }
  return call;
}

}  // namespace pyimg

TORCH_LIBRARY_FRAGMENT(pyimg, m) {
  // Per-channel mean and biased variance of an (N, C, H, W) input, in the accumulation type.
  m.def("batch_norm_stats(Tensor x) -> (Tensor mean, Tensor var)");
  // prelu(z) + residual with z = (x - mean) * invstd * weight + bias; no PReLU when its weight
  // is None, a ReLU instead when relu. Output in x's dtype and layout. training says that mean
  // and invstd are x's batch statistics: it changes only the gradient, which then flows
  // through them.
  m.def(
      "bn_prelu(Tensor x, Tensor mean, Tensor invstd, Tensor? weight, Tensor? bias, "
      "Tensor? prelu_weight, Tensor? residual, bool training, bool relu=False) -> Tensor");
  // The gradient of bn_prelu with respect to x (through the batch statistics when training),
  // and the per-channel sums of dL/dz, dL/dz * xhat and dL/dy * min(z, 0): the gradients of
  // bias, weight and the PReLU weight (summed over channels when it has one value).
  m.def(
      "bn_prelu_backward(Tensor grad, Tensor x, Tensor mean, Tensor invstd, Tensor? weight, "
      "Tensor? bias, Tensor? prelu_weight, bool training, bool relu=False) -> "
      "(Tensor grad_x, Tensor sum_dz, Tensor sum_dz_xhat, Tensor sum_dy_negz)");
}
