// Autograd of max_pool2d_with_indices and max_unpool2d. The backward calls the backward ops
// through the dispatcher, so it runs on whichever backend holds the tensors; those ops have no
// derivative of their own, so differentiating either op twice raises.
#include <ATen/ATen.h>
#include <c10/util/SmallVector.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <tuple>

#include "ops/autograd/autograd_helpers.h"
#include "ops/autograd/autograd_node.h"

namespace pyimg {

namespace {

using PoolSignature = std::tuple<at::Tensor, at::Tensor>(
    const at::Tensor&, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, bool,
    bool);
using PoolBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&,
                                         c10::SymIntArrayRef, at::IntArrayRef, at::IntArrayRef,
                                         at::IntArrayRef, at::IntArrayRef, bool);
using UnpoolSignature = at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef,
                                   at::IntArrayRef, at::IntArrayRef, c10::SymIntArrayRef, bool);
using UnpoolBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&,
                                           const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                                           at::IntArrayRef, bool);

// A window parameter (int[2] in the schemas), kept without a heap allocation.
using Pair = c10::SmallVector<int64_t, 2>;

// What both backward ops take of the forward's window.
struct Window {
  void set(at::IntArrayRef kernel, at::IntArrayRef step, at::IntArrayRef pad, bool compact_) {
    kernel_size.assign(kernel.begin(), kernel.end());
    stride.assign(step.begin(), step.end());
    padding.assign(pad.begin(), pad.end());
    compact = compact_;
  }

  Pair kernel_size, stride, padding;
  bool compact = false;
};

// Edge: x. indices is an output without a gradient.
struct MaxPoolBackward : FunctionalNode<MaxPoolBackward, 1> {
  std::string name() const override { return "pyimg::MaxPool2DWithIndicesBackward"; }

  template <class Self, class Visit>
  static auto fields(Self& self, Visit&& visit) {
    return visit(self.w.kernel_size, self.w.stride, self.w.padding, self.w.compact,
                 self.dilation, self.input_size, self.indices_);
  }

  static variable_list backward(const variable_list& grads, const std::array<bool, 1>&,
                                const Pair& kernel_size, const Pair& stride,
                                const Pair& padding, bool compact, const Pair& dilation,
                                const std::array<c10::SymInt, 2>& input_size,
                                const at::Tensor& indices) {
    if (!grads[0].defined()) return variable_list(1);
    return once_differentiable("pyimg::max_pool2d_with_indices", {grads[0]},
                               [&]() -> variable_list {
      static const auto op =
          find_op<PoolBackwardSignature>("pyimg::max_pool2d_with_indices_backward");
      return {op.call(grads[0], indices, input_size, kernel_size, stride, padding, dilation,
                      compact)};
    });
  }

  Window w;
  Pair dilation;
  std::array<c10::SymInt, 2> input_size;
  SavedVariable indices_;
};

// Edge: x (indices, integer, has none).
struct MaxUnpoolBackward : FunctionalNode<MaxUnpoolBackward, 1> {
  std::string name() const override { return "pyimg::MaxUnpool2DBackward"; }

  template <class Self, class Visit>
  static auto fields(Self& self, Visit&& visit) {
    return visit(self.w.kernel_size, self.w.stride, self.w.padding, self.w.compact, self.x_,
                 self.indices_);
  }

  static variable_list backward(const variable_list& grads, const std::array<bool, 1>&,
                                const Pair& kernel_size, const Pair& stride,
                                const Pair& padding, bool compact, const at::Tensor& x,
                                const at::Tensor& indices) {
    if (!grads[0].defined()) return variable_list(1);
    return once_differentiable("pyimg::max_unpool2d", {grads[0], x}, [&]() -> variable_list {
      static const auto op = find_op<UnpoolBackwardSignature>("pyimg::max_unpool2d_backward");
      return {op.call(grads[0], x, indices, kernel_size, stride, padding, compact)};
    });
  }

  Window w;
  SavedVariable x_, indices_;
};

std::tuple<at::Tensor, at::Tensor> max_pool2d_with_indices_autograd(
    c10::DispatchKeySet keys, const at::Tensor& x, at::IntArrayRef kernel_size,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
    bool compact) {
  static const auto op = find_op<PoolSignature>("pyimg::max_pool2d_with_indices");
  auto node = make_node<MaxPoolBackward>("pyimg::max_pool2d_with_indices", x);
  auto [values, indices] = call_below_autograd(op, keys, x, kernel_size, stride, padding,
                                               dilation, ceil_mode, compact);
  if (node) {
    node->w.set(kernel_size, stride, padding, compact);
    node->dilation.assign(dilation.begin(), dilation.end());
    node->input_size = {x.sym_size(2), x.sym_size(3)};
    torch::autograd::set_history(values, node);
    node->indices_ = SavedVariable(indices, /*is_output=*/true);
  }
  return {std::move(values), std::move(indices)};
}

at::Tensor max_unpool2d_autograd(c10::DispatchKeySet keys, const at::Tensor& x,
                                 const at::Tensor& indices, at::IntArrayRef kernel_size,
                                 at::IntArrayRef stride, at::IntArrayRef padding,
                                 c10::SymIntArrayRef output_size, bool compact) {
  static const auto op = find_op<UnpoolSignature>("pyimg::max_unpool2d");
  auto node = make_node<MaxUnpoolBackward>("pyimg::max_unpool2d", x);
  at::Tensor out =
      call_below_autograd(op, keys, x, indices, kernel_size, stride, padding, output_size,
                          compact);
  if (node) {
    node->w.set(kernel_size, stride, padding, compact);
    node->x_ = SavedVariable(x, /*is_output=*/false);
    node->indices_ = SavedVariable(indices, /*is_output=*/false);
    torch::autograd::set_history(out, node);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, Autograd, m) {
  m.impl("max_pool2d_with_indices", &max_pool2d_with_indices_autograd);
  m.impl("max_unpool2d", &max_unpool2d_autograd);
}

}  // namespace pyimg
