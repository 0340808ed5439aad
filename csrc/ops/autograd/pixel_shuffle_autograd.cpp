// Autograd of pixel_shuffle and pixel_unshuffle. The backward calls the ops through the
// dispatcher, so it runs on whichever backend holds the tensors. Unfused, each op's gradient
// is the other op, differentiable again; the fused backward (pixel_shuffle_backward) has no
// derivative of its own, so differentiating it twice raises.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "ops/autograd/autograd_helpers.h"

namespace pyimg {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using OptionalTensor = std::optional<at::Tensor>;

at::Tensor shuffle(const at::Tensor& x, int64_t r, const OptionalTensor& bias,
                   c10::string_view activation, const OptionalTensor& weight,
                   double negative_slope) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pyimg::pixel_shuffle", "")
                             .typed<decltype(shuffle)>();
  return op.call(x, r, bias, activation, weight, negative_slope);
}

at::Tensor unshuffle(const at::Tensor& x, int64_t r) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pyimg::pixel_unshuffle", "")
                             .typed<decltype(unshuffle)>();
  return op.call(x, r);
}

at::Tensor shuffle_backward(const at::Tensor& grad_out, const at::Tensor& x, int64_t r,
                            const OptionalTensor& bias, c10::string_view activation,
                            const OptionalTensor& weight, double negative_slope) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pyimg::pixel_shuffle_backward", "")
                             .typed<decltype(shuffle_backward)>();
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

class PixelShuffleFunction : public torch::autograd::Function<PixelShuffleFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t r,
                            const OptionalTensor& bias, c10::string_view activation,
                            const OptionalTensor& weight, double negative_slope) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const bool fused = bias.has_value() || activation != "none";
    ctx->saved_data["r"] = r;
    ctx->saved_data["activation"] = std::string(activation);
    ctx->saved_data["negative_slope"] = negative_slope;
    ctx->saved_data["fused"] = fused;
    ctx->saved_data["bias_needs_grad"] = requires_grad_of(bias);
    ctx->saved_data["weight_needs_grad"] = requires_grad_of(weight);
    // x only when the backward reads it: the unfused gradient is a rearrangement.
    ctx->save_for_backward({fused ? x : at::Tensor(), bias.value_or(at::Tensor()),
                            weight.value_or(at::Tensor())});
    return shuffle(x, r, bias, activation, weight, negative_slope);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const int64_t r = ctx->saved_data["r"].toInt();
    const at::Tensor& grad = grads[0];
    if (!ctx->saved_data["fused"].toBool()) {
      return {unshuffle(grad, r), {}, {}, {}, {}, {}};
    }
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &bias = saved[1], &weight = saved[2];
    const bool bias_needs_grad = ctx->saved_data["bias_needs_grad"].toBool();
    const bool weight_needs_grad = ctx->saved_data["weight_needs_grad"].toBool();
    const std::string activation = ctx->saved_data["activation"].toStringRef();
    const double negative_slope = ctx->saved_data["negative_slope"].toDouble();
    return once_differentiable("pyimg::pixel_shuffle with a fused epilogue",
                               {grad, x, bias, weight}, [&]() -> variable_list {
      const at::Tensor grad_z = shuffle_backward(grad, x, r, optional_of(bias), activation,
                                                 optional_of(weight), negative_slope);
      const at::Tensor grad_bias = bias_needs_grad ? grad_z.sum({0, 2, 3}) : at::Tensor();
      const at::Tensor grad_weight =
          weight_needs_grad ? prelu_weight_grad(grad, x, r, bias, weight) : at::Tensor();
      return {grad_z, {}, grad_bias, {}, grad_weight, {}};
    });
  }
};

class PixelUnshuffleFunction : public torch::autograd::Function<PixelUnshuffleFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t r) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->saved_data["r"] = r;
    return unshuffle(x, r);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {shuffle(grads[0], ctx->saved_data["r"].toInt(), std::nullopt, "none", std::nullopt,
                    0.01),
            {}};
  }
};

at::Tensor pixel_shuffle_autograd(const at::Tensor& x, int64_t r, const OptionalTensor& bias,
                                  c10::string_view activation, const OptionalTensor& weight,
                                  double negative_slope) {
  if (!records_gradient(x, bias, weight)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return shuffle(x, r, bias, activation, weight, negative_slope);
  }
  return PixelShuffleFunction::apply(x, r, bias, activation, weight, negative_slope);
}

at::Tensor pixel_unshuffle_autograd(const at::Tensor& x, int64_t r) {
  if (!records_gradient(x)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return unshuffle(x, r);
  }
  return PixelUnshuffleFunction::apply(x, r);
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, Autograd, m) {
  m.impl("pixel_shuffle", &pixel_shuffle_autograd);
  m.impl("pixel_unshuffle", &pixel_unshuffle_autograd);
}

}  // namespace pyimg
