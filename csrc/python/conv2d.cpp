// Eager entry of pyimg.ops.conv2d (and so dilated_conv2d) for the cpu and cuda backends: stock
// ATen convolution, then the fused epilogue through pyimg::bn_prelu / pixel_shuffle /
// pixel_unshuffle, the same ops in the same order as _conv_then_epilogue in pyimg/ops/conv.py.
//
// The checks in pyimg/ops/conv_checks.py are the source of truth for errors. This entry serves
// only calls it sees to be ordinary and valid with a cheap predicate (batched 4-D x, padding
// that is numeric or pads both sides alike, consistent shapes, groups, devices and dtypes), and
// declines every other one, valid or not, so the Python path runs it and raises its own
// messages: the predicate may turn away a valid call, never accept an invalid one. Depthwise
// calls the Python path gives to pyimg::depthwise_conv2d go to that op.
#include <ATen/autocast_mode.h>
#include <ATen/ops/convolution.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/zeros.h>
#include <c10/util/strides.h>

#include "ops/common.h"
#include "python/eager.h"

namespace pyimg::eager {

namespace {

using ShuffleSignature = at::Tensor(const at::Tensor&, int64_t, const std::optional<at::Tensor>&,
                                    c10::string_view, const std::optional<at::Tensor>&, double);
using UnshuffleSignature = at::Tensor(const at::Tensor&, int64_t);
using BnPreluSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                    const std::optional<at::Tensor>&,
                                    const std::optional<at::Tensor>&,
                                    const std::optional<at::Tensor>&,
                                    const std::optional<at::Tensor>&, bool, bool);

using DepthwiseSignature = at::Tensor(
    const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, at::IntArrayRef,
    at::IntArrayRef, at::IntArrayRef, const std::optional<at::Tensor>&,
    const std::optional<at::Tensor>&, c10::string_view, const std::optional<at::Tensor>&, double,
    const std::optional<at::Tensor>&, bool);

using Pair = std::array<int64_t, 2>;

struct Call {
  at::Tensor x, weight;
  std::optional<at::Tensor> bias, scale, shift, prelu_weight, residual;
  Pair stride{}, padding{}, dilation{};
  // F.conv2d's padding='same' / 'valid', or empty for numeric padding.
  std::string_view padding_mode;
  int64_t groups = 0, r = 0;
  std::string_view activation;
  double negative_slope = 0;
  bool add_before_activation = false;
};

bool on_x(const at::Tensor& t, const at::Tensor& x) {
  return t.layout() == at::kStrided && t.device() == x.device();
}

// None, or C values of a float dtype on x's device.
bool per_channel(const std::optional<at::Tensor>& t, const at::Tensor& x, int64_t channels) {
  return !t || (on_x(*t, x) && at::isFloatingType(t->scalar_type()) && t->dim() == 1 &&
                t->size(0) == channels);
}

bool known_activation(std::string_view a) {
  return a == "none" || a == "relu" || a == "leaky_relu" || a == "prelu";
}

// Whether the Python path gives this call to depthwise_conv2d (_direct_depthwise in
// pyimg/ops/conv.py).
bool direct_depthwise(const Call& c) {
  if (c.groups != c.x.size(1) || c.r != 1) return false;
  if (c.x.device().type() != c10::DeviceType::CPU) return true;
  return pyimg::output_memory_format(c.x) == at::MemoryFormat::Contiguous &&
         std::max(c.dilation[0], c.dilation[1]) > 1;
}

// padding='same' / 'valid' as numbers, where they pad both sides alike (resolve_geometry in
// pyimg/ops/conv_checks.py): 'same' only with stride 1 and an even span (dilation * (k - 1)).
bool resolve_padding(Call& c) {
  if (c.padding_mode.empty()) return true;
  if (c.padding_mode == "valid") {
    c.padding = {0, 0};
    return true;
  }
  if (c.padding_mode != "same" || c.stride != Pair{1, 1}) return false;
  for (int i = 0; i < 2; ++i) {
    const int64_t span = c.dilation[i] * (c.weight.size(2 + i) - 1);
    if (span % 2 != 0) return false;
    c.padding[i] = span / 2;
  }
  return true;
}

// The "obviously fine" predicate (see the top of this file).
bool ordinary(Call& c) {
  const at::Tensor& x = c.x;
  const at::Tensor& w = c.weight;
  if (x.dim() != 4 || x.layout() != at::kStrided || w.dim() != 4 || !on_x(w, x) ||
      w.scalar_type() != x.scalar_type() || c.groups < 1 || !serves(x) ||
      at::autocast::is_autocast_enabled(x.device().type())) {
    return false;
  }
  const int64_t c_in = x.size(1), c_out = w.size(0), r = c.r;
  if (c_in == 0 || c_out == 0 || c_in % c.groups != 0 || c_out % c.groups != 0 ||
      w.size(1) * c.groups != c_in || r < 1 || c_out % (r * r) != 0 || !resolve_padding(c)) {
    return false;
  }
  std::array<int64_t, 2> out{};
  for (int i = 0; i < 2; ++i) {
    if (c.stride[i] <= 0 || c.dilation[i] <= 0 || c.padding[i] < 0) return false;
    const int64_t span = c.dilation[i] * (w.size(2 + i) - 1);
    const int64_t padded = x.size(2 + i) + 2 * c.padding[i];
    if (padded < span + 1) return false;
    out[i] = ((padded - span - 1) / c.stride[i] + 1) * r;
  }
  if (c.bias && (!per_channel(c.bias, x, c_out) || c.bias->scalar_type() != x.scalar_type())) {
    return false;
  }
  if (!per_channel(c.scale, x, c_out) || !per_channel(c.shift, x, c_out)) return false;
  const bool prelu = c.activation == "prelu";
  if (!known_activation(c.activation) || c.prelu_weight.has_value() != prelu) return false;
  if (const auto& a = c.prelu_weight) {
    if (!on_x(*a, x) || !at::isFloatingType(a->scalar_type()) || a->dim() > 1 ||
        (a->numel() != 1 && a->numel() != c_out / (r * r))) {
      return false;
    }
  }
  if (const auto& res = c.residual) {
    if (!on_x(*res, x) || !at::isFloatingType(res->scalar_type()) ||
        res->sizes() != at::IntArrayRef({x.size(0), c_out / (r * r), out[0], out[1]})) {
      return false;
    }
  }
  return true;
}

// -- the composition, as _conv_then_epilogue ------------------------------------------------

// with_canonical_strides in pyimg/_format.py: stock's convolution gradients misread some
// layouts whose size-1 dimensions carry other strides than their format's own.
at::Tensor with_canonical_strides(const at::Tensor& t) {
  if (t.dim() != 4) return t;
  const at::MemoryFormat fmt = pyimg::output_memory_format(t);
  if (!t.is_contiguous(fmt)) return t;
  c10::DimVector canonical = c10::contiguous_strides(t.sizes());
  if (fmt == at::MemoryFormat::ChannelsLast) {
    const std::vector<int64_t> channels_last = c10::get_channels_last_strides_2d(t.sizes());
    canonical.assign(channels_last.begin(), channels_last.end());
  }
  if (t.strides() == at::IntArrayRef(canonical)) return t;
  return t.as_strided(t.sizes(), canonical);
}

at::Tensor stock_convolution(const Call& c, const std::optional<at::Tensor>& bias) {
  const at::MemoryFormat fmt = pyimg::output_memory_format(c.x);
  const at::Tensor y = at::convolution(with_canonical_strides(c.x),
                                       with_canonical_strides(c.weight), bias, c.stride,
                                       c.padding, c.dilation, false, {0, 0}, c.groups);
  return y.contiguous(fmt);
}

// bn_prelu's PReLU weight for the activation (_as_prelu in pyimg/ops/conv.py).
std::optional<at::Tensor> as_prelu(const Call& c, at::ScalarType acc) {
  if (c.activation == "none" || c.activation == "relu") return std::nullopt;
  if (c.activation == "leaky_relu") {
    return at::full({1}, c.negative_slope, c.x.options().dtype(acc));
  }
  at::Tensor alpha = in_dtype(c.prelu_weight, acc)->reshape(-1);
  if (alpha.numel() > 1 && c.r > 1) return alpha.repeat_interleave(c.r * c.r);
  return alpha;
}

at::Tensor conv_then_epilogue(const Call& c) {
  static const auto bn_prelu = typed_op<BnPreluSignature>("pyimg::bn_prelu");
  static const auto shuffle = typed_op<ShuffleSignature>("pyimg::pixel_shuffle");
  static const auto unshuffle = typed_op<UnshuffleSignature>("pyimg::pixel_unshuffle");
  const at::Tensor& x = c.x;
  const int64_t r = c.r;
  const c10::string_view activation(c.activation);
  // Without a scale the bias is the convolution's own (free in cuDNN / oneDNN); with one it
  // folds into the shift: (y + bias) * scale + shift == y * scale + (bias * scale + shift).
  const at::Tensor y = stock_convolution(c, c.scale ? std::nullopt : c.bias);
  const at::ScalarType acc = pyimg::accumulate_type(x);
  std::optional<at::Tensor> scale = in_dtype(c.scale, acc), shift = in_dtype(c.shift, acc);
  if (scale && c.bias) {
    const at::Tensor folded = *in_dtype(c.bias, acc) * *scale;
    shift = shift ? folded + *shift : folded;
  }
  const std::optional<at::Tensor> alpha_x = in_dtype(c.prelu_weight, x.scalar_type());
  if (!scale && !c.residual) {
    // bias + activation (+ shuffle) is the fused pixel_shuffle's own epilogue.
    if (!shift && c.activation == "none" && r == 1) return y;
    return shuffle.call(y, r, in_dtype(shift, x.scalar_type()), activation, alpha_x,
                        c.negative_slope);
  }
  std::optional<at::Tensor> residual = c.residual;
  if (residual && r > 1) residual = unshuffle.call(*residual, r);
  residual = in_dtype(residual, x.scalar_type());
  const at::Tensor zeros = at::zeros({c.weight.size(0)}, x.options().dtype(acc));
  const at::Tensor ones = at::ones_like(zeros);
  if (c.add_before_activation) {
    const at::Tensor z =
        bn_prelu.call(y, zeros, ones, scale, shift, std::nullopt, residual, false, false);
    if (c.activation == "none" && r == 1) return z;
    return shuffle.call(z, r, std::nullopt, activation, alpha_x, c.negative_slope);
  }
  const at::Tensor z = bn_prelu.call(y, zeros, ones, scale, shift, as_prelu(c, acc), residual,
                                     false, c.activation == "relu");
  if (r == 1) return z;
  return shuffle.call(z, r, std::nullopt, c10::string_view("none"), std::nullopt, 0.0);
}

// The Python path's depthwise_conv2d call (conv2d in pyimg/ops/conv.py): padding as (top,
// bottom, left, right), the residual in x's dtype.
at::Tensor depthwise(const Call& c) {
  static const auto op = typed_op<DepthwiseSignature>("pyimg::depthwise_conv2d");
  const std::array<int64_t, 4> padding{c.padding[0], c.padding[0], c.padding[1], c.padding[1]};
  return op.call(c.x, c.weight, c.bias, c.stride, padding, c.dilation, c.scale, c.shift,
                 c10::string_view(c.activation), c.prelu_weight, c.negative_slope,
                 in_dtype(c.residual, c.x.scalar_type()), c.add_before_activation);
}

// padding: a number or pair, or 'same' / 'valid' (resolved once the weight's size is known).
bool unpack_padding(py::handle obj, Call& c) {
  return unpack(obj, c.padding) || unpack(obj, c.padding_mode);
}

py::object conv2d(py::handle x, py::handle weight, py::handle bias, py::handle stride,
                  py::handle padding, py::handle dilation, py::handle groups, py::handle scale,
                  py::handle shift, py::handle activation, py::handle prelu_weight,
                  py::handle negative_slope, py::handle residual,
                  py::handle add_before_activation, py::handle upscale_factor) {
  Call c;
  if (!unpack(x, c.x) || !unpack(weight, c.weight) || !unpack(bias, c.bias) ||
      !unpack(stride, c.stride) || !unpack_padding(padding, c) ||
      !unpack(dilation, c.dilation) || !unpack(groups, c.groups) ||
      !unpack(scale, c.scale) || !unpack(shift, c.shift) ||
      !unpack(activation, c.activation) || !unpack(prelu_weight, c.prelu_weight) ||
      !unpack(negative_slope, c.negative_slope) || !unpack(residual, c.residual) ||
      !unpack(add_before_activation, c.add_before_activation) ||
      !unpack(upscale_factor, c.r) || !ordinary(c)) {
    return py::none();
  }
  const bool record =
      records_gradient(c.x, c.weight, c.bias, c.scale, c.shift, c.prelu_weight, c.residual);
  return run(record,
             [&c] { return direct_depthwise(c) ? depthwise(c) : conv_then_epilogue(c); });
}

}  // namespace

void bind_conv2d(py::module_& m) { m.def("conv2d", &conv2d); }

}  // namespace pyimg::eager
