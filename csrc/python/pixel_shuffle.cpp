// Eager entries of pyimg.ops.pixel_shuffle and pixel_unshuffle for 4-D inputs (other ranks
// take the Python path, which reshapes).
#include "python/eager.h"

namespace pyimg::eager {

using ShuffleSignature = at::Tensor(const at::Tensor&, int64_t, const std::optional<at::Tensor>&,
                                    c10::string_view, const std::optional<at::Tensor>&, double);
using UnshuffleSignature = at::Tensor(const at::Tensor&, int64_t);

static py::object pixel_shuffle(py::handle x_obj, py::handle r_obj, py::handle bias_obj,
                                py::handle activation_obj, py::handle weight_obj,
                                py::handle slope_obj) {
  at::Tensor x;
  int64_t r = 0;
  std::optional<at::Tensor> bias, weight;
  std::string_view activation;
  double slope = 0;
  if (!unpack(x_obj, x) || !unpack(r_obj, r) || !unpack(bias_obj, bias) ||
      !unpack(activation_obj, activation) || !unpack(weight_obj, weight) ||
      !unpack(slope_obj, slope) || x.dim() != 4 || !serves(x)) {
    return py::none();
  }
  // A bias of one value per output channel becomes one per input channel, as the op takes it.
  if (bias.has_value() && bias->dim() == 1 && r > 1 && bias->numel() * r * r == x.size(1)) {
    bias = bias->repeat_interleave(r * r);
  }
  bias = in_dtype(bias, x.scalar_type());
  weight = in_dtype(weight, x.scalar_type());
  static const auto op = typed_op<ShuffleSignature>("pyimg::pixel_shuffle");
  const bool record = records_gradient(x, bias, weight);
  return call(op, record, x, r, bias, c10::string_view(activation), weight, slope);
}

static py::object pixel_unshuffle(py::handle x_obj, py::handle r_obj) {
  at::Tensor x;
  int64_t r = 0;
  if (!unpack(x_obj, x) || !unpack(r_obj, r) || x.dim() != 4 || !serves(x)) return py::none();
  static const auto op = typed_op<UnshuffleSignature>("pyimg::pixel_unshuffle");
  return call(op, records_gradient(x), x, r);
}

void bind_pixel_shuffle(py::module_& m) {
  m.def("pixel_shuffle", &pixel_shuffle);
  m.def("pixel_unshuffle", &pixel_unshuffle);
}

}  // namespace pyimg::eager
