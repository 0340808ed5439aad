// Autograd of batch_norm_stats and bn_prelu. The backward calls bn_prelu_backward through the
// dispatcher, so it runs on whichever backend holds the tensors; that op has no derivative of
// its own, so differentiating bn_prelu twice raises. batch_norm_stats' gradient is torch ops,
// differentiable again.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <tuple>

#include "ops/autograd/autograd_helpers.h"
#include "ops/autograd/autograd_node.h"

namespace pyimg {

namespace {

using OptionalTensor = std::optional<at::Tensor>;
using StatsSignature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&);
using BnPreluSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                    const OptionalTensor&, const OptionalTensor&,
                                    const OptionalTensor&, const OptionalTensor&, bool, bool);
using BnPreluBackwardSignature = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    const OptionalTensor&, const OptionalTensor&, const OptionalTensor&, bool, bool);

OptionalTensor optional_of(const at::Tensor& t) {
  return t.defined() ? OptionalTensor(t) : std::nullopt;
}

// Edge: x. Outputs: mean, var (either may come without a gradient).
struct BatchNormStatsBackward : FunctionalNode<BatchNormStatsBackward, 1> {
  std::string name() const override { return "pyimg::BatchNormStatsBackward"; }

  template <class Self, class Visit>
  static auto fields(Self& self, Visit&& visit) {
    return visit(self.x_, self.mean_);
  }

  // mean = sum(x) / M, var = sum((x - mean)^2) / M; d var / d x = 2 (x - mean) / M.
  static variable_list backward(const variable_list& grads, const std::array<bool, 1>&,
                                const at::Tensor& x, const at::Tensor& mean) {
    if (!any_defined(grads)) return variable_list(1);
    const c10::SymInt channels = x.sym_size(1);
    // No channels, no elements: the gradient is empty whatever M is.
    const c10::Scalar m(channels == 0 ? c10::SymInt(1) : x.sym_numel() / channels);
    const std::array<int64_t, 4> per_channel{1, -1, 1, 1};
    at::Tensor grad = at::zeros_like(x, x.options().dtype(mean.scalar_type()));
    if (grads[0].defined()) grad = grad + grads[0].view(per_channel) / m;
    if (grads[1].defined()) {
      grad = grad + grads[1].view(per_channel) * 2 *
                        (x.to(mean.scalar_type()) - mean.view(per_channel)) / m;
    }
    return {grad.to(x.scalar_type())};
  }

  SavedVariable x_, mean_;
};

// Edges: x, mean, invstd, weight, bias, prelu_weight, residual. mean and invstd get no
// gradient: in training they are x's batch statistics, whose part of the gradient
// bn_prelu_backward computes within x's; in eval they are the running statistics.
struct BnPreluBackward : FunctionalNode<BnPreluBackward, 7> {
  std::string name() const override { return "pyimg::BnPreluBackward"; }

  template <class Self, class Visit>
  static auto fields(Self& self, Visit&& visit) {
    return visit(self.training, self.relu, self.x_, self.mean_, self.invstd_, self.weight_,
                 self.bias_, self.prelu_weight_);
  }

  static variable_list backward(const variable_list& grads,
                                const std::array<bool, 7>& needs_input_grad, bool training,
                                bool relu, const at::Tensor& x, const at::Tensor& mean,
                                const at::Tensor& invstd, const at::Tensor& weight,
                                const at::Tensor& bias, const at::Tensor& prelu_weight) {
    const at::Tensor& grad = grads[0];
    if (!grad.defined()) return variable_list(7);
    return once_differentiable("pyimg::bn_prelu", {x, mean, invstd, weight, bias, prelu_weight,
                                                   grad}, [&]() -> variable_list {
      static const auto op = find_op<BnPreluBackwardSignature>("pyimg::bn_prelu_backward");
      auto [grad_x, sum_dz, sum_dz_xhat, sum_dy_negz] =
          op.call(grad, x, mean, invstd, optional_of(weight), optional_of(bias),
                  optional_of(prelu_weight), training, relu);
      at::Tensor grad_prelu;
      if (needs_input_grad[5]) {
        grad_prelu = prelu_weight.sym_numel() == 1 ? sum_dy_negz.sum().reshape({1}) : sum_dy_negz;
      }
      return {grad_x,
              {},
              {},
              needs_input_grad[3] ? sum_dz_xhat : at::Tensor(),
              needs_input_grad[4] ? sum_dz : at::Tensor(),
              grad_prelu,
              needs_input_grad[6] ? grad : at::Tensor()};
    });
  }

  bool training = false;
  bool relu = false;
  SavedVariable x_, mean_, invstd_, weight_, bias_, prelu_weight_;
};

std::tuple<at::Tensor, at::Tensor> batch_norm_stats_autograd(c10::DispatchKeySet keys,
                                                             const at::Tensor& x) {
  static const auto op = find_op<StatsSignature>("pyimg::batch_norm_stats");
  auto node = make_node<BatchNormStatsBackward>("pyimg::batch_norm_stats", x);
  auto [mean, var] = call_below_autograd(op, keys, x);
  if (node) {
    torch::autograd::set_history(mean, node);
    torch::autograd::set_history(var, node);
    node->x_ = SavedVariable(x, /*is_output=*/false);
    node->mean_ = SavedVariable(mean, /*is_output=*/true);
  }
  return {std::move(mean), std::move(var)};
}

at::Tensor bn_prelu_autograd(c10::DispatchKeySet keys, const at::Tensor& x,
                             const at::Tensor& mean, const at::Tensor& invstd,
                             const OptionalTensor& weight, const OptionalTensor& bias,
                             const OptionalTensor& prelu_weight, const OptionalTensor& residual,
                             bool training, bool relu) {
  static const auto op = find_op<BnPreluSignature>("pyimg::bn_prelu");
  auto node = make_node<BnPreluBackward>("pyimg::bn_prelu", x, mean, invstd, weight, bias,
                                         prelu_weight, residual);
  at::Tensor out = call_below_autograd(op, keys, x, mean, invstd, weight, bias, prelu_weight,
                                       residual, training, relu);
  if (node) {
    node->training = training;
    node->relu = relu;
    node->x_ = SavedVariable(x, /*is_output=*/false);
    node->mean_ = SavedVariable(mean, /*is_output=*/false);
    node->invstd_ = SavedVariable(invstd, /*is_output=*/false);
    node->weight_ = SavedVariable(weight, /*is_output=*/false);
    node->bias_ = SavedVariable(bias, /*is_output=*/false);
    node->prelu_weight_ = SavedVariable(prelu_weight, /*is_output=*/false);
    torch::autograd::set_history(out, node);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, Autograd, m) {
  m.impl("batch_norm_stats", &batch_norm_stats_autograd);
  m.impl("bn_prelu", &bn_prelu_autograd);
}

}  // namespace pyimg
