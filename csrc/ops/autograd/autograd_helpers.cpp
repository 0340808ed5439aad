#include "ops/autograd/autograd_helpers.h"

#include <torch/csrc/autograd/functions/basic_ops.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <string>

namespace pyimg {

torch::autograd::variable_list once_differentiable(
    const char* op, const torch::autograd::variable_list& depends_on,
    const std::function<torch::autograd::variable_list()>& compute) {
  const bool create_graph = at::GradMode::is_enabled();
  torch::autograd::variable_list grads;
  {
    at::NoGradGuard no_grad;
    grads = compute();
  }
  if (!create_graph) return grads;
  // The error node's edges lead to what the gradients depend on, so that differentiating
  // them with respect to any of it reaches the node and raises.
  torch::autograd::tensor_list outputs;
  outputs.reserve(grads.size());
  for (const auto& g : grads) outputs.push_back(g.defined() ? g.tensor_data() : at::Tensor());
  const std::string message = std::string("trying to differentiate twice ") + op +
                              ", whose backward is not differentiable (no double backward)";
  return torch::autograd::wrap_outputs(
      depends_on, std::move(outputs), [&](torch::autograd::edge_list&& next_edges) {
        return c10::make_intrusive<torch::autograd::Error>(message, std::move(next_edges));
      });
}

}  // namespace pyimg
