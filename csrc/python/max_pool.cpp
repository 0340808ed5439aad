// Eager entries of pyimg.ops.max_pool2d_with_indices and max_unpool2d for 4-D inputs with
// non-empty planes. The Python path keeps the cases stock validates differently from the C++
// op (3-D inputs, empty planes, indices of another shape, device or dtype, an output_size out
// of range), so their errors stay stock's.
#include "python/eager.h"

namespace pyimg::eager {

using Pair = std::array<int64_t, 2>;
using PoolSignature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, at::IntArrayRef,
                                                         at::IntArrayRef, at::IntArrayRef,
                                                         at::IntArrayRef, bool, bool);
using UnpoolSignature = at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef,
                                   at::IntArrayRef, at::IntArrayRef, c10::SymIntArrayRef, bool);

static bool planes_not_empty(const at::Tensor& x) {
  return x.dim() == 4 && x.size(1) > 0 && x.size(2) > 0 && x.size(3) > 0;
}

// stride None (or []) means the kernel size, as in stock pooling.
static bool unpack_stride(py::handle obj, const Pair& kernel, Pair& out) {
  if (obj.is_none() || (PyList_CheckExact(obj.ptr()) && PyList_GET_SIZE(obj.ptr()) == 0)) {
    out = kernel;
    return true;
  }
  return unpack(obj, out);
}

static py::object max_pool2d_with_indices(py::handle x_obj, py::handle kernel_obj,
                                          py::handle stride_obj, py::handle padding_obj,
                                          py::handle dilation_obj, py::handle ceil_obj,
                                          py::handle compact_obj) {
  at::Tensor x;
  Pair kernel{}, stride{}, padding{}, dilation{};
  bool ceil_mode = false, compact = false;
  if (!unpack(x_obj, x) || !unpack(kernel_obj, kernel) ||
      !unpack_stride(stride_obj, kernel, stride) || !unpack(padding_obj, padding) ||
      !unpack(dilation_obj, dilation) || !unpack(ceil_obj, ceil_mode) ||
      !unpack(compact_obj, compact) || !planes_not_empty(x) || !serves(x)) {
    return py::none();
  }
  static const auto op = typed_op<PoolSignature>("pyimg::max_pool2d_with_indices");
  return call(op, records_gradient(x), x, at::IntArrayRef(kernel), at::IntArrayRef(stride),
              at::IntArrayRef(padding), at::IntArrayRef(dilation), ceil_mode, compact);
}

// The unpooled plane: stock's default from the pooled size, or output_size ((H, W) or
// (N, C, H, W)) when it lies strictly within a stride of that default.
static bool unpool_size(py::handle obj, const at::Tensor& x, const Pair& kernel,
                        const Pair& stride, const Pair& padding, std::array<c10::SymInt, 2>& out) {
  std::array<int64_t, 2> size{};
  for (int d = 0; d < 2; ++d) size[d] = (x.size(2 + d) - 1) * stride[d] + kernel[d] - 2 * padding[d];
  if (!obj.is_none()) {
    if (!PyList_CheckExact(obj.ptr()) && !PyTuple_CheckExact(obj.ptr())) return false;
    const py::sequence items = py::reinterpret_borrow<py::sequence>(obj);
    const size_t n = items.size();
    if (n != 2 && n != 4) return false;
    for (int d = 0; d < 2; ++d) {
      int64_t given = 0;
      if (!unpack(items[n - 2 + d], given) || given <= size[d] - stride[d] ||
          given >= size[d] + stride[d]) {
        return false;
      }
      size[d] = given;
    }
  }
  out = {c10::SymInt(size[0]), c10::SymInt(size[1])};
  return true;
}

static py::object max_unpool2d(py::handle x_obj, py::handle indices_obj, py::handle kernel_obj,
                               py::handle stride_obj, py::handle padding_obj,
                               py::handle output_size_obj) {
  at::Tensor x, indices;
  Pair kernel{}, stride{}, padding{};
  if (!unpack(x_obj, x) || !unpack(indices_obj, indices) || !unpack(kernel_obj, kernel) ||
      !(stride_obj.is_none() ? (stride = kernel, true) : unpack(stride_obj, stride)) ||
      !unpack(padding_obj, padding) || !planes_not_empty(x) || !serves(x) ||
      indices.sizes() != x.sizes() || indices.device() != x.device()) {
    return py::none();
  }
  const bool compact = indices.scalar_type() == at::kByte;
  if (!compact && indices.scalar_type() != at::kLong) return py::none();
  if (std::min({kernel[0], kernel[1], stride[0], stride[1]}) <= 0 ||
      std::min(padding[0], padding[1]) < 0 || (compact && kernel[0] * kernel[1] > 256)) {
    return py::none();
  }
  std::array<c10::SymInt, 2> size;
  if (!unpool_size(output_size_obj, x, kernel, stride, padding, size)) return py::none();
  static const auto op = typed_op<UnpoolSignature>("pyimg::max_unpool2d");
  return call(op, records_gradient(x), x, indices, at::IntArrayRef(kernel),
              at::IntArrayRef(stride), at::IntArrayRef(padding), c10::SymIntArrayRef(size),
              compact);
}

void bind_max_pool(py::module_& m) {
  m.def("max_pool2d_with_indices", &max_pool2d_with_indices);
  m.def("max_unpool2d", &max_unpool2d);
}

}  // namespace pyimg::eager
