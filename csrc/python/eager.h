// The eager entry points: what pyimg.ops' public functions call first, so that a call the
// compiled kernels serve costs one C++ call rather than Python checks, the backend choice and
// an OpOverload call (together 3-4x the stock op's time on small tensors).
//
// An entry serves a call only where the Python path would end in the same C++ op: no forced
// backend other than the tensor's device type, a dtype the kernels take, plain tensors (no
// __torch_function__ override or mode), no functorch transform, arguments of the expected
// Python types. For every other call it returns None and the Python path takes over, so a
// call's result, its errors (the C++ op's own checks) and its autograd are the Python path's.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <pybind11/pybind11.h>
#include <torch/csrc/utils/pybind.h>

#include "ops/autograd/autograd_helpers.h"

#include <array>
#include <optional>
#include <string_view>

namespace pyimg::eager {

namespace py = pybind11;

// A plain tensor (torch.Tensor or nn.Parameter, no __torch_function__ mode active).
bool unpack(py::handle obj, at::Tensor& out);
// A plain tensor or None.
bool unpack(py::handle obj, std::optional<at::Tensor>& out);
// A Python int (not a bool), a float or int, a str.
bool unpack(py::handle obj, int64_t& out);
bool unpack(py::handle obj, double& out);
bool unpack(py::handle obj, std::string_view& out);
// A Python bool.
bool unpack(py::handle obj, bool& out);
// An int, or a list / tuple of one or two ints, as (height, width): stock pooling's pairs.
bool unpack(py::handle obj, std::array<int64_t, 2>& out);

// t converted to dtype (None stays None; no copy when it has that dtype already), as
// pyimg._format.in_dtype: the entries convert several small parameters per call.
inline std::optional<at::Tensor> in_dtype(const std::optional<at::Tensor>& t,
                                          at::ScalarType dtype) {
  if (!t.has_value() || t->scalar_type() == dtype) return t;
  return t->to(dtype);
}

// Whether pyimg's backend choice sends a call on x to the C++ op: the backend forced with
// pyimg.use_backend / PYIMG_BACKEND is none or x's device type, the extension has kernels for
// that device, and they take x's dtype.
bool serves(const at::Tensor& x);

// Runs compute() with the GIL released, below the Autograd key when there is nothing to
// record (autograd kernels would only redispatch).
template <class Compute>
py::object run(bool record, const Compute& compute) {
  decltype(compute()) result;
  {
    py::gil_scoped_release no_gil;
    if (record) {
      result = compute();
    } else {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      result = compute();
    }
  }
  return py::cast(std::move(result));
}

// Calls op as run does.
template <class Result, class... Args, class... Given>
py::object call(const c10::TypedOperatorHandle<Result(Args...)>& op, bool record,
                const Given&... args) {
  return run(record, [&] { return op.call(args...); });
}

// The registered op pyimg::name with C++ signature Signature, looked up once per entry.
template <class Signature>
c10::TypedOperatorHandle<Signature> typed_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

void bind_pixel_shuffle(py::module_& m);
void bind_max_pool(py::module_& m);
void bind_batch_norm(py::module_& m);
void bind_conv2d(py::module_& m);

}  // namespace pyimg::eager
