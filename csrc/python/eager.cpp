#include "python/eager.h"

#include <ATen/PythonTorchFunctionTLS.h>
#include <torch/csrc/autograd/python_variable.h>

namespace pyimg::eager {

static bool plain(py::handle obj) {
  return THPVariable_CheckExact(obj.ptr()) && !at::impl::torch_function_mode_enabled();
}

bool unpack(py::handle obj, at::Tensor& out) {
  if (!plain(obj)) return false;
  out = THPVariable_Unpack(obj.ptr());
  return true;
}

bool unpack(py::handle obj, std::optional<at::Tensor>& out) {
  if (obj.is_none()) {
    out.reset();
    return true;
  }
  if (!plain(obj)) return false;
  out = THPVariable_Unpack(obj.ptr());
  return true;
}

bool unpack(py::handle obj, int64_t& out) {
  if (!PyLong_CheckExact(obj.ptr())) return false;
  int overflow = 0;
  out = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
  return overflow == 0;
}

bool unpack(py::handle obj, double& out) {
  if (PyFloat_CheckExact(obj.ptr())) {
    out = PyFloat_AS_DOUBLE(obj.ptr());
    return true;
  }
  int64_t integer = 0;
  if (!unpack(obj, integer)) return false;
  out = static_cast<double>(integer);
  return true;
}

bool unpack(py::handle obj, std::string_view& out) {
  if (!PyUnicode_CheckExact(obj.ptr())) return false;
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(obj.ptr(), &size);
  if (data == nullptr) {
    PyErr_Clear();
    return false;
  }
  out = std::string_view(data, static_cast<size_t>(size));
  return true;
}

bool unpack(py::handle obj, bool& out) {
  if (!PyBool_Check(obj.ptr())) return false;
  out = obj.ptr() == Py_True;
  return true;
}

bool unpack(py::handle obj, std::array<int64_t, 2>& out) {
  if (unpack(obj, out[0])) {
    out[1] = out[0];
    return true;
  }
  if (!PyList_CheckExact(obj.ptr()) && !PyTuple_CheckExact(obj.ptr())) return false;
  const py::sequence items = py::reinterpret_borrow<py::sequence>(obj);
  const size_t n = items.size();
  if (n != 1 && n != 2) return false;
  return unpack(items[0], out[0]) && unpack(items[n - 1], out[1]);
}

// The backend pyimg.use_backend / PYIMG_BACKEND forces: pyimg._backend._forced, read on every
// call (a module attribute lookup) so that no second copy of that state can go stale.
static bool forced_allows(c10::DeviceType device) {
  static PyObject* backend_module = PyImport_ImportModule("pyimg._backend");
  if (backend_module == nullptr) {
    PyErr_Clear();
    return false;
  }
  py::object forced =
      py::reinterpret_steal<py::object>(PyObject_GetAttrString(backend_module, "_forced"));
  if (!forced) {
    PyErr_Clear();
    return false;
  }
  if (forced.is_none()) return true;
  const std::string name = py::str(forced);
  return (name == "cpu" && device == c10::DeviceType::CPU) ||
         (name == "cuda" && device == c10::DeviceType::CUDA);
}

static bool kernels_for(c10::DeviceType device) {
#ifdef PYIMG_WITH_CUDA
  return device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA;
#else
  return device == c10::DeviceType::CPU;
#endif
}

static bool kernel_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// functorch's transforms wrap tensors below the Python layer; the Python path routes them
// through the dispatcher's own autograd handling.
static bool functorch_active() {
  return c10::impl::tls_is_dispatch_key_included(c10::DispatchKey::FuncTorchDynamicLayerFrontMode);
}

bool serves(const at::Tensor& x) {
  const c10::DeviceType device = x.device().type();
  return kernels_for(device) && kernel_dtype(x.scalar_type()) && !functorch_active() &&
         forced_allows(device);
}

}  // namespace pyimg::eager
