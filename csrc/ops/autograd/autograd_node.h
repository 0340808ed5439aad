// What the autograd nodes of pyimg's C++ ops share. Each op's Autograd kernel builds its node
// as PyTorch's generated kernels do (torch/csrc/autograd/generated/VariableType*.cpp): a
// Node subclass with typed members, saved tensors as SavedVariable, one edge per input in the
// order of the backward's results, set_history on the fresh outputs. torch::autograd::Function
// does the same through a string-keyed map and a generic wrapping of every input and output,
// which cost 0.7-2 us more per call on a small tensor (benchmarks/results/training_nodes_*).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <mutex>

namespace pyimg {

using torch::autograd::Node;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

// The registered op `name` with C++ signature Signature.
template <class Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

// Runs op below Autograd on the dispatch keys past it, as the generated kernels do: the
// kernel's own keys, not a second look at the arguments'.
template <class Result, class... Args, class... Given>
Result call_below_autograd(const c10::TypedOperatorHandle<Result(Args...)>& op,
                           c10::DispatchKeySet keys, const Given&... args) {
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return op.redispatch(keys & c10::after_autograd_keyset, args...);
}

// The node of a call on `inputs` (tensors or optional tensors, in the order of the backward's
// results), its edges set; null when the call records no gradient. A forward-mode tangent
// raises: the ops have no forward-mode formula, and below Autograd it would be dropped.
template <class NodeT, class... Inputs>
c10::intrusive_ptr<NodeT> make_node(const char* op, const Inputs&... inputs) {
  TORCH_CHECK_NOT_IMPLEMENTED(!(torch::autograd::isFwGradDefined(inputs) || ...),
                              "Trying to use forward AD with ", op,
                              ", which has no forward-mode formula; use reverse-mode autograd "
                              "(backward, torch.autograd.grad)");
  if (!torch::autograd::compute_requires_grad(inputs...)) return {};
  auto node = c10::make_intrusive<NodeT>();
  node->set_next_edges(torch::autograd::collect_next_edges(inputs...));
  return node;
}

// For release_variables(): drops the saved tensors once a backward without retain_graph has
// used them, under the node's mutex as the generated nodes do.
template <class... Saved>
void release(std::mutex& node_mutex, Saved&... saved) {
  std::lock_guard<std::mutex> lock(node_mutex);
  (saved.reset_data(), ...);
}

// Whether any incoming gradient is defined; where none is, a backward returns none either.
inline bool any_defined(const variable_list& grads) {
  for (const auto& g : grads) {
    if (g.defined()) return true;
  }
  return false;
}

}  // namespace pyimg
