// Autograd of batch_norm_stats and bn_prelu. The backward calls bn_prelu_backward through the
// dispatcher, so it runs on whichever backend holds the tensors; that op has no derivative of
// its own, so differentiating bn_prelu twice raises. batch_norm_stats' gradient is torch ops,
// differentiable again.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <tuple>

#include "ops/autograd/autograd_helpers.h"

namespace pyimg {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using OptionalTensor = std::optional<at::Tensor>;

std::tuple<at::Tensor, at::Tensor> stats(const at::Tensor& x) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pyimg::batch_norm_stats", "")
                             .typed<decltype(stats)>();
  return op.call(x);
}

at::Tensor bn_prelu(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& invstd,
                    const OptionalTensor& weight, const OptionalTensor& bias,
                    const OptionalTensor& prelu_weight, const OptionalTensor& residual,
                    bool training, bool relu) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pyimg::bn_prelu", "")
                             .typed<decltype(bn_prelu)>();
  return op.call(x, mean, invstd, weight, bias, prelu_weight, residual, training, relu);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> bn_prelu_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& mean, const at::Tensor& invstd,
    const OptionalTensor& weight, const OptionalTensor& bias, const OptionalTensor& prelu_weight,
    bool training, bool relu) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pyimg::bn_prelu_backward", "")
                             .typed<decltype(bn_prelu_backward)>();
  return op.call(grad, x, mean, invstd, weight, bias, prelu_weight, training, relu);
}

OptionalTensor optional_of(const at::Tensor& t) {
  return t.defined() ? OptionalTensor(t) : std::nullopt;
}

class StatsFunction : public torch::autograd::Function<StatsFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [mean, var] = stats(x);
    ctx->save_for_backward({x, mean});
    return {mean, var};
  }

  // mean = sum(x) / M, var = sum((x - mean)^2) / M; d var / d x = 2 (x - mean) / M.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &mean = saved[1];
    const c10::SymInt channels = x.sym_size(1);
    // No channels, no elements: the gradient is empty whatever M is.
    const c10::Scalar m(channels == 0 ? c10::SymInt(1) : x.sym_numel() / channels);
    const std::array<int64_t, 4> per_channel{1, -1, 1, 1};
    at::Tensor grad = at::zeros_like(x, x.options().dtype(mean.scalar_type()));
    grad = grad + grads[0].view(per_channel) / m;
    grad = grad + grads[1].view(per_channel) * 2 * (x.to(mean.scalar_type()) -
                                                     mean.view(per_channel)) / m;
    return {grad.to(x.scalar_type())};
  }
};

class BnPreluFunction : public torch::autograd::Function<BnPreluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& mean,
                            const at::Tensor& invstd, const OptionalTensor& weight,
                            const OptionalTensor& bias, const OptionalTensor& prelu_weight,
                            const OptionalTensor& residual, bool training, bool relu) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->saved_data["training"] = training;
    ctx->saved_data["relu"] = relu;
    ctx->saved_data["weight_needs_grad"] = requires_grad_of(weight);
    ctx->saved_data["bias_needs_grad"] = requires_grad_of(bias);
    ctx->saved_data["prelu_weight_needs_grad"] = requires_grad_of(prelu_weight);
    ctx->saved_data["has_residual"] = residual.has_value();
    ctx->save_for_backward({x, mean, invstd, weight.value_or(at::Tensor()),
                            bias.value_or(at::Tensor()), prelu_weight.value_or(at::Tensor())});
    return bn_prelu(x, mean, invstd, weight, bias, prelu_weight, residual, training, relu);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& grad = grads[0];
    variable_list depends_on = saved;
    depends_on.push_back(grad);
    return once_differentiable("pyimg::bn_prelu", depends_on, [&]() -> variable_list {
      const at::Tensor &x = saved[0], &mean = saved[1], &invstd = saved[2];
      const at::Tensor& prelu_weight = saved[5];
      auto [grad_x, sum_dz, sum_dz_xhat, sum_dy_negz] = bn_prelu_backward(
          grad, x, mean, invstd, optional_of(saved[3]), optional_of(saved[4]),
          optional_of(prelu_weight), ctx->saved_data["training"].toBool(),
          ctx->saved_data["relu"].toBool());
      at::Tensor grad_prelu;
      if (ctx->saved_data["prelu_weight_needs_grad"].toBool()) {
        grad_prelu = prelu_weight.sym_numel() == 1 ? sum_dy_negz.sum().reshape({1}) : sum_dy_negz;
      }
      return {grad_x,
              {},
              {},
              ctx->saved_data["weight_needs_grad"].toBool() ? sum_dz_xhat : at::Tensor(),
              ctx->saved_data["bias_needs_grad"].toBool() ? sum_dz : at::Tensor(),
              grad_prelu,
              ctx->saved_data["has_residual"].toBool() ? grad : at::Tensor(),
              {},
              {}};
    });
  }
};

std::tuple<at::Tensor, at::Tensor> batch_norm_stats_autograd(const at::Tensor& x) {
  if (!records_gradient(x)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return stats(x);
  }
  const variable_list out = StatsFunction::apply(x);
  return {out[0], out[1]};
}

at::Tensor bn_prelu_autograd(const at::Tensor& x, const at::Tensor& mean,
                             const at::Tensor& invstd, const OptionalTensor& weight,
                             const OptionalTensor& bias, const OptionalTensor& prelu_weight,
                             const OptionalTensor& residual, bool training, bool relu) {
  if (!records_gradient(x, mean, invstd, weight, bias, prelu_weight, residual)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return bn_prelu(x, mean, invstd, weight, bias, prelu_weight, residual, training, relu);
  }
  return BnPreluFunction::apply(x, mean, invstd, weight, bias, prelu_weight, residual, training,
                                relu);
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, Autograd, m) {
  m.impl("batch_norm_stats", &batch_norm_stats_autograd);
  m.impl("bn_prelu", &bn_prelu_autograd);
}

}  // namespace pyimg
