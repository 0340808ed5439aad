// Autograd of pixel_shuffle and pixel_unshuffle. The backward calls the ops through the
// dispatcher, so it runs on whichever backend holds the tensors. Unfused, each op's gradient
// is the other op, differentiable again; the fused backward (pixel_shuffle_backward) has no
// derivative of its own, so differentiating it twice raises.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <array>
#include <string>

#include "ops/autograd/autograd_helpers.h"
#include "ops/autograd/autograd_node.h"

namespace pyimg {

namespace {

using OptionalTensor = std::optional<at::Tensor>;
using ShuffleSignature = at::Tensor(const at::Tensor&, int64_t, const OptionalTensor&,
                                    c10::string_view, const OptionalTensor&, double);
using UnshuffleSignature = at::Tensor(const at::Tensor&, int64_t);
using ShuffleBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, int64_t,
                                            const OptionalTensor&, c10::string_view,
                                            const OptionalTensor&, double);

const c10::TypedOperatorHandle<ShuffleSignature>& shuffle_op() {
  static const auto op = find_op<ShuffleSignature>("pyimg::pixel_shuffle");
  return op;
}

const c10::TypedOperatorHandle<UnshuffleSignature>& unshuffle_op() {
  static const auto op = find_op<UnshuffleSignature>("pyimg::pixel_unshuffle");
  return op;
}

at::Tensor shuffle(const at::Tensor& x, int64_t r) {
  return shuffle_op().call(x, r, std::nullopt, "none", std::nullopt, 0.01);
}

at::Tensor unshuffle(const at::Tensor& x, int64_t r) { return unshuffle_op().call(x, r); }

at::Tensor shuffle_backward(const at::Tensor& grad_out, const at::Tensor& x, int64_t r,
                            const OptionalTensor& bias, c10::string_view activation,
                            const OptionalTensor& weight, double negative_slope) {
  static const auto op =
      find_op<ShuffleBackwardSignature>("pyimg::pixel_shuffle_backward");
  return op.call(grad_out, x, r, bias, activation, weight, negative_slope);
}

OptionalTensor optional_of(const at::Tensor& t) {
  return t.defined() ? OptionalTensor(t) : std::nullopt;
}

// d out / d alpha = z where z <= 0, summed per large channel (or over all of them).
at::Tensor prelu_weight_grad(const at::Tensor& grad, const at::Tensor& x, int64_t r,
                             const at::Tensor& bias, const at::Tensor& weight) {
  const at::Tensor z = bias.defined() ? x + bias.view({1, -1, 1, 1}) : x;
  const at::Tensor per_small_channel = (unshuffle(grad, r) * z.clamp_max(0)).sum({0, 2, 3});
  const at::Tensor per_channel = per_small_channel.view({-1, r * r}).sum(1);
  return (weight.sym_numel() == 1 ? per_channel.sum() : per_channel)
      .reshape_symint(weight.sym_sizes());
}

// Edges: x, bias, weight. Unfused (no bias, no activation) it saves no tensor: the gradient is
// a rearrangement.
struct PixelShuffleBackward : FunctionalNode<PixelShuffleBackward, 3> {
  std::string name() const override { return "pyimg::PixelShuffleBackward"; }

  template <class Self, class Visit>
  static auto fields(Self& self, Visit&& visit) {
    return visit(self.r, self.fused, self.activation, self.negative_slope, self.x_, self.bias_,
                 self.weight_);
  }

  static variable_list backward(const variable_list& grads,
                                const std::array<bool, 3>& needs_input_grad, int64_t r,
                                bool fused, const std::string& activation,
                                double negative_slope, const at::Tensor& x,
                                const at::Tensor& bias, const at::Tensor& weight) {
    const at::Tensor& grad = grads[0];
    if (!grad.defined()) return variable_list(3);
    if (!fused) return {unshuffle(grad, r), {}, {}};
    return once_differentiable("pyimg::pixel_shuffle with a fused epilogue",
                               {grad, x, bias, weight}, [&]() -> variable_list {
      const at::Tensor grad_z = shuffle_backward(grad, x, r, optional_of(bias), activation,
                                                 optional_of(weight), negative_slope);
      const at::Tensor grad_bias = needs_input_grad[1] ? grad_z.sum({0, 2, 3}) : at::Tensor();
      const at::Tensor grad_weight =
          needs_input_grad[2] ? prelu_weight_grad(grad, x, r, bias, weight) : at::Tensor();
      return {grad_z, grad_bias, grad_weight};
    });
  }

  int64_t r = 0;
  bool fused = false;
  std::string activation;
  double negative_slope = 0;
  SavedVariable x_, bias_, weight_;
};

// Edge: x.
struct PixelUnshuffleBackward : FunctionalNode<PixelUnshuffleBackward, 1> {
  std::string name() const override { return "pyimg::PixelUnshuffleBackward"; }

  template <class Self, class Visit>
  static auto fields(Self& self, Visit&& visit) {
    return visit(self.r);
  }

  static variable_list backward(const variable_list& grads, const std::array<bool, 1>&,
                                int64_t r) {
    if (!grads[0].defined()) return variable_list(1);
    return {shuffle(grads[0], r)};
  }

  int64_t r = 0;
};

at::Tensor pixel_shuffle_autograd(c10::DispatchKeySet keys, const at::Tensor& x, int64_t r,
                                  const OptionalTensor& bias, c10::string_view activation,
                                  const OptionalTensor& weight, double negative_slope) {
  auto node = make_node<PixelShuffleBackward>("pyimg::pixel_shuffle", x, bias, weight);
  at::Tensor out =
      call_below_autograd(shuffle_op(), keys, x, r, bias, activation, weight, negative_slope);
  if (node) {
    node->r = r;
    node->fused = bias.has_value() || activation != "none";
    if (node->fused) {
      node->activation = std::string(activation);
      node->negative_slope = negative_slope;
      node->x_ = SavedVariable(x, /*is_output=*/false);
      node->bias_ = SavedVariable(bias, /*is_output=*/false);
      node->weight_ = SavedVariable(weight, /*is_output=*/false);
    }
    torch::autograd::set_history(out, node);
  }
  return out;
}

at::Tensor pixel_unshuffle_autograd(c10::DispatchKeySet keys, const at::Tensor& x, int64_t r) {
  auto node = make_node<PixelUnshuffleBackward>("pyimg::pixel_unshuffle", x);
  at::Tensor out = call_below_autograd(unshuffle_op(), keys, x, r);
  if (node) {
    node->r = r;
    torch::autograd::set_history(out, node);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, Autograd, m) {
  m.impl("pixel_shuffle", &pixel_shuffle_autograd);
  m.impl("pixel_unshuffle", &pixel_unshuffle_autograd);
}

}  // namespace pyimg
