// What the C++ autograd kernels of pyimg's ops share: when a call records a gradient, and how
// a backward built on backward ops without derivatives refuses to be differentiated again.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/variable.h>

#include <functional>
#include <optional>

namespace pyimg {

// A forward-mode tangent counts too: below Autograd it would be dropped without a word, while
// the autograd kernels refuse it (they have no forward-mode formula).
inline bool records_gradient_of(const at::Tensor& t, bool grad_mode) {
  return t.defined() && ((grad_mode && t.requires_grad()) || t._fw_grad(/*level=*/0).defined());
}
inline bool records_gradient_of(const std::optional<at::Tensor>& t, bool grad_mode) {
  return t.has_value() && records_gradient_of(*t, grad_mode);
}

// Whether a call records a gradient: grad mode on and an input that requires grad, or an
// input with a forward-mode tangent. Otherwise the kernels run below Autograd without building
// a node, as a Python autograd kernel registered by torch.library.register_autograd does.
template <typename... Tensors>
bool records_gradient(const Tensors&... tensors) {
  const bool grad_mode = at::GradMode::is_enabled();
  return (records_gradient_of(tensors, grad_mode) || ...);
}

// The gradients compute() returns, computed without recording; when the backward itself is
// recorded (create_graph=True) and anything it depends on (its incoming gradients, the saved
// tensors) requires grad, they come back attached to a node that raises when differentiated,
// as Python's @once_differentiable does: a second derivative raises instead of being wrong.
torch::autograd::variable_list once_differentiable(
    const char* op, const torch::autograd::variable_list& depends_on,
    const std::function<torch::autograd::variable_list()>& compute);

}  // namespace pyimg
