// Autograd of max_pool2d_with_indices and max_unpool2d. The backward calls the backward ops
// through the dispatcher, so it runs on whichever backend holds the tensors; those ops have no
// derivative of their own, so differentiating either op twice raises.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <array>
#include <tuple>

#include "ops/autograd/autograd_helpers.h"

namespace pyimg {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::tuple<at::Tensor, at::Tensor> pool(const at::Tensor& x, at::IntArrayRef kernel_size,
                                        at::IntArrayRef stride, at::IntArrayRef padding,
                                        at::IntArrayRef dilation, bool ceil_mode, bool compact) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pyimg::max_pool2d_with_indices", "")
                             .typed<decltype(pool)>();
  return op.call(x, kernel_size, stride, padding, dilation, ceil_mode, compact);
}

at::Tensor pool_backward(const at::Tensor& grad_out, const at::Tensor& indices,
                         c10::SymIntArrayRef input_size, at::IntArrayRef kernel_size,
                         at::IntArrayRef stride, at::IntArrayRef padding,
                         at::IntArrayRef dilation, bool compact) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pyimg::max_pool2d_with_indices_backward", "")
                             .typed<decltype(pool_backward)>();
  return op.call(grad_out, indices, input_size, kernel_size, stride, padding, dilation, compact);
}

at::Tensor unpool(const at::Tensor& x, const at::Tensor& indices, at::IntArrayRef kernel_size,
                  at::IntArrayRef stride, at::IntArrayRef padding, c10::SymIntArrayRef output_size,
                  bool compact) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pyimg::max_unpool2d", "")
                             .typed<decltype(unpool)>();
  return op.call(x, indices, kernel_size, stride, padding, output_size, compact);
}

at::Tensor unpool_backward(const at::Tensor& grad_out, const at::Tensor& x,
                           const at::Tensor& indices, at::IntArrayRef kernel_size,
                           at::IntArrayRef stride, at::IntArrayRef padding, bool compact) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pyimg::max_unpool2d_backward", "")
                             .typed<decltype(unpool_backward)>();
  return op.call(grad_out, x, indices, kernel_size, stride, padding, compact);
}

void save_window(AutogradContext* ctx, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                 at::IntArrayRef padding, bool compact) {
  ctx->saved_data["kernel_size"] = kernel_size;
  ctx->saved_data["stride"] = stride;
  ctx->saved_data["padding"] = padding;
  ctx->saved_data["compact"] = compact;
}

class MaxPoolFunction : public torch::autograd::Function<MaxPoolFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               at::IntArrayRef kernel_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
                               bool compact) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [values, indices] = pool(x, kernel_size, stride, padding, dilation, ceil_mode, compact);
    save_window(ctx, kernel_size, stride, padding, compact);
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["height"] = x.sym_size(2);
    ctx->saved_data["width"] = x.sym_size(3);
    ctx->mark_non_differentiable({indices});
    ctx->save_for_backward({indices});
    return {values, indices};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor indices = ctx->get_saved_variables()[0];
    const std::array<c10::SymInt, 2> input_size{ctx->saved_data["height"].toSymInt(),
                                                ctx->saved_data["width"].toSymInt()};
    return once_differentiable("pyimg::max_pool2d_with_indices", {grads[0]},
                               [&]() -> variable_list {
      const at::Tensor grad_x = pool_backward(
          grads[0], indices, input_size, ctx->saved_data["kernel_size"].toIntVector(),
          ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
          ctx->saved_data["dilation"].toIntVector(), ctx->saved_data["compact"].toBool());
      return {grad_x, {}, {}, {}, {}, {}, {}};
    });
  }
};

class MaxUnpoolFunction : public torch::autograd::Function<MaxUnpoolFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& indices,
                            at::IntArrayRef kernel_size, at::IntArrayRef stride,
                            at::IntArrayRef padding, c10::SymIntArrayRef output_size,
                            bool compact) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    save_window(ctx, kernel_size, stride, padding, compact);
    ctx->save_for_backward({x, indices});
    return unpool(x, indices, kernel_size, stride, padding, output_size, compact);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &indices = saved[1];
    return once_differentiable("pyimg::max_unpool2d", {grads[0], x}, [&]() -> variable_list {
      const at::Tensor grad_x = unpool_backward(
          grads[0], x, indices, ctx->saved_data["kernel_size"].toIntVector(),
          ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
          ctx->saved_data["compact"].toBool());
      return {grad_x, {}, {}, {}, {}, {}, {}};
    });
  }
};

std::tuple<at::Tensor, at::Tensor> max_pool2d_with_indices_autograd(
    const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode, bool compact) {
  if (!records_gradient(x)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return pool(x, kernel_size, stride, padding, dilation, ceil_mode, compact);
  }
  const variable_list out =
      MaxPoolFunction::apply(x, kernel_size, stride, padding, dilation, ceil_mode, compact);
  return {out[0], out[1]};
}

at::Tensor max_unpool2d_autograd(const at::Tensor& x, const at::Tensor& indices,
                                 at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                 at::IntArrayRef padding, c10::SymIntArrayRef output_size,
                                 bool compact) {
  if (!records_gradient(x, indices)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return unpool(x, indices, kernel_size, stride, padding, output_size, compact);
  }
  return MaxUnpoolFunction::apply(x, indices, kernel_size, stride, padding, output_size,
                                  compact);
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, Autograd, m) {
  m.impl("max_pool2d_with_indices", &max_pool2d_with_indices_autograd);
  m.impl("max_unpool2d", &max_unpool2d_autograd);
}

}  // namespace pyimg
