// What the autograd nodes of pyimg's C++ ops share. Each op's Autograd kernel builds its node
// as PyTorch's generated kernels do (torch/csrc/autograd/generated/VariableType*.cpp): a
// Node subclass with typed members, saved tensors as SavedVariable, one edge per input in the
// order of the backward's results, set_history on the fresh outputs. torch::autograd::Function
// does the same through a string-keyed map and a generic wrapping of every input and output,
// which cost 0.7-2 us more per call on a small tensor (benchmarks/results/training_nodes_*).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/SmallVector.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/csrc/dynamo/compiled_autograd.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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

// Whether any incoming gradient is defined; where none is, a backward returns none either.
inline bool any_defined(const variable_list& grads) {
  for (const auto& g : grads) {
    if (g.defined()) return true;
  }
  return false;
}

// How a node's field travels into its functional backward under compiled autograd: as one
// IValue of type() (the schema Python converts it back with), unpacked again as a Value.
// Scalars and strings travel as themselves.
template <class Field>
struct FieldPacker {
  using Value = Field;
  static at::IValue pack(const Field& value) { return value; }
  static Field unpack(const at::IValue& packed) { return packed.to<Field>(); }
  static at::TypePtr type() {
    return torch::dynamo::autograd::IValuePacker<Field>::packed_type();
  }
};

// A saved tensor travels unpacked; an absent one (an optional input not given) as None.
template <>
struct FieldPacker<SavedVariable> {
  using Value = at::Tensor;
  static at::IValue pack(const at::Tensor& value) {
    return value.defined() ? at::IValue(value) : at::IValue();
  }
  static at::Tensor unpack(const at::IValue& packed) {
    return packed.isNone() ? at::Tensor() : packed.toTensor();
  }
  static at::TypePtr type() { return c10::OptionalType::create(c10::TensorType::get()); }
};

// A window parameter: a list of ints.
template <unsigned N>
struct FieldPacker<c10::SmallVector<int64_t, N>> {
  using Value = c10::SmallVector<int64_t, N>;
  static at::IValue pack(const Value& value) {
    return std::vector<int64_t>(value.begin(), value.end());
  }
  static Value unpack(const at::IValue& packed) {
    const std::vector<int64_t> list = packed.toIntVector();
    return Value(list.begin(), list.end());
  }
  static at::TypePtr type() { return c10::ListType::ofInts(); }
};

// Sizes: a list of SymInts, symbolic where compiled autograd made them dynamic.
template <size_t N>
struct FieldPacker<std::array<c10::SymInt, N>> {
  using Value = std::array<c10::SymInt, N>;
  static at::IValue pack(const Value& value) {
    return std::vector<c10::SymInt>(value.begin(), value.end());
  }
  static Value unpack(const at::IValue& packed) {
    const std::vector<c10::SymInt> list = packed.toSymIntVector();
    TORCH_INTERNAL_ASSERT(list.size() == N);
    Value value;
    std::copy(list.begin(), list.end(), value.begin());
    return value;
  }
  static at::TypePtr type() { return c10::ListType::create(c10::SymIntType::get()); }
};

// Which inputs need a gradient: a list of bools.
template <size_t N>
struct FieldPacker<std::array<bool, N>> {
  using Value = std::array<bool, N>;
  static at::IValue pack(const Value& value) {
    c10::List<bool> list;
    list.reserve(N);
    for (const bool needs : value) list.push_back(needs);
    return list;
  }
  static Value unpack(const at::IValue& packed) {
    const c10::List<bool> list = packed.toBoolList();
    TORCH_INTERNAL_ASSERT(list.size() == N);
    Value value{};
    for (size_t i = 0; i < N; ++i) value[i] = list.get(i);
    return value;
  }
  static at::TypePtr type() { return c10::ListType::create(c10::BoolType::get()); }
};

template <class T>
struct is_std_array : std::false_type {};
template <class T, size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};

// A node whose backward is written once, as a function of what it is given:
//
//   static variable_list backward(const variable_list& grads,
//                                 const std::array<bool, NumInputs>& needs_input_grad,
//                                 const Value&... fields);
//
// where the fields are the node's members, listed in that order by
//
//   template <class Self, class Visit>
//   static auto fields(Self& self, Visit&& visit) { return visit(self.a, self.b_, ...); }
//
// (a SavedVariable member reaches backward unpacked, as an at::Tensor). apply() calls backward
// directly. Compiled autograd (torch._dynamo.compiled_autograd) does not run apply(): it asks
// compiled_args() for the node's tensors, sizes and constants, then apply_with_saved() with
// the saved tensors swapped for the ones it traces, which puts a call of backward into its
// graph, as PyTorch's generated nodes do (CppNode, torch::autograd::Function's node, does the
// same through its saved_data map). Only compiled autograd calls those two: recording a node
// costs what it did before.
template <class Derived, size_t NumInputs>
struct FunctionalNode : Node {
  using NeedsInputGrad = std::array<bool, NumInputs>;

  variable_list apply(variable_list&& grads) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return Derived::fields(derived(), [&](const auto&... field) {
      return Derived::backward(grads, needs_input_grad(), unpacked(field)...);
    });
  }

  // Drops the saved tensors once a backward without retain_graph has used them, under the
  // node's mutex as the generated nodes do.
  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    Derived::fields(derived(), [](auto&... field) { (reset(field), ...); });
  }

  void compiled_args(torch::dynamo::autograd::CompiledNodeArgs& args) const override {
    Derived::fields(derived(), [&](const auto&... field) { (collect(args, field), ...); });
  }

  variable_list apply_with_saved(const variable_list& grads,
                                 torch::dynamo::autograd::SwapSavedVariables& saved) override {
    namespace ca = torch::dynamo::autograd;
    Derived::fields(derived(), [&](auto&... field) { (swap(saved, field, true), ...); });
    std::vector<at::IValue> args{FieldPacker<NeedsInputGrad>::pack(needs_input_grad())};
    Derived::fields(derived(), [&]<class... Field>(Field&... field) {
      (args.push_back(FieldPacker<Field>::pack(unpacked(field))), ...);
    });
    static const std::string bound_name = bind(saved.get_py_compiler());
    const auto& compiler = ca::getPyCompilerInterface();
    const auto output_metadata =
        ca::IValuePacker<std::vector<std::optional<torch::autograd::InputMetadata>>>::pack(
            ca::get_input_metadata(next_edges()));
    variable_list results = compiler->call_function(saved.get_py_compiler(), "apply_functional",
                                                    bound_name, grads, args, output_metadata);
    Derived::fields(derived(), [&](auto&... field) { (swap(saved, field, false), ...); });
    return results;
  }

 private:
  Derived& derived() { return static_cast<Derived&>(*this); }
  const Derived& derived() const { return static_cast<const Derived&>(*this); }

  NeedsInputGrad needs_input_grad() const {
    NeedsInputGrad needs{};
    for (size_t i = 0; i < NumInputs; ++i) needs[i] = task_should_compute_output(i);
    return needs;
  }

  // A saved output needs its node to be unpacked; a saved input ignores it.
  at::Tensor unpacked(const SavedVariable& saved) { return saved.unpack(getptr()); }
  template <class Field>
  static const Field& unpacked(const Field& field) {
    return field;
  }

  static void reset(SavedVariable& saved) { saved.reset_data(); }
  template <class Field>
  static void reset(Field&) {}

  // Every field is part of compiled autograd's cache key, and the tensors and sizes among
  // them inputs of its graph. is_output=true hands the node to the saved tensor's unpacking,
  // which an input's ignores.
  static void collect(torch::dynamo::autograd::CompiledNodeArgs& args,
                      const SavedVariable& saved) {
    args.collect(saved, /*is_output=*/true);
  }
  template <unsigned N>
  static void collect(torch::dynamo::autograd::CompiledNodeArgs& args,
                      const c10::SmallVector<int64_t, N>& list) {
    args.collect(c10::IntArrayRef(list));
  }
  template <class T, size_t N>
  static void collect(torch::dynamo::autograd::CompiledNodeArgs& args,
                      const std::array<T, N>& list) {
    args.collect(c10::ArrayRef<T>(list));
  }
  template <class Field>
  static void collect(torch::dynamo::autograd::CompiledNodeArgs& args, const Field& field) {
    args.collect(field);
  }

  template <class Field>
  static void swap(torch::dynamo::autograd::SwapSavedVariables& saved, Field& field,
                   bool before) {
    if constexpr (is_std_array<Field>::value) {
      for (auto& element : field) swap(saved, element, before);
    } else if (before) {
      saved.before(field);
    } else {
      saved.after(field);
    }
  }

  template <class... Field, size_t... I>
  static variable_list call_backward(const variable_list& grads,
                                     const std::vector<at::IValue>& args,
                                     std::index_sequence<I...>) {
    return Derived::backward(grads, FieldPacker<NeedsInputGrad>::unpack(args[0]),
                             FieldPacker<Field>::unpack(args[1 + I])...);
  }

  // Binds backward, as a function of (grads, packed args), to the Python compiler; once per
  // node type and process, as the generated nodes do. Traceable: backward is made of
  // dispatcher ops, which have fake kernels. Bound as a custom function: compiled autograd
  // moves CPU scalar inputs to the GPU only for calls it knows take them (aten ops, its
  // generated nodes), which pyimg's ops need not.
  std::string bind(PyObject* py_compiler) {
    std::vector<at::TypePtr> schema{FieldPacker<NeedsInputGrad>::type()};
    torch::autograd::functional_apply_t backward_of_packed;
    Derived::fields(derived(), [&]<class... Field>(Field&...) {
      (schema.push_back(FieldPacker<Field>::type()), ...);
      backward_of_packed = [](const variable_list& grads, const std::vector<at::IValue>& args) {
        return call_backward<Field...>(grads, args, std::index_sequence_for<Field...>());
      };
    });
    // The name becomes an attribute path in the code compiled autograd generates.
    std::string name = this->name();
    for (size_t at = name.find("::"); at != std::string::npos; at = name.find("::")) {
      name.replace(at, 2, "_");
    }
    return torch::dynamo::autograd::getPyCompilerInterface()->bind_function(
        py_compiler, name, std::move(backward_of_packed), std::move(schema),
        /*is_custom_function=*/true, /*is_traceable=*/true);
  }
};

}  // namespace pyimg
