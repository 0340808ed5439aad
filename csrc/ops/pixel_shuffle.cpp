// Schemas of the pixel-shuffle ops and the argument checks every backend shares.
#include "ops/pixel_shuffle.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <array>

namespace pyimg {

static void check_common(const at::Tensor& t, int64_t r, const char* op, const char* factor) {
  TORCH_CHECK(t.dim() == 4, op, " expects a 4-D (N, C, H, W) input, but got input with ", t.dim(),
              " dimension(s)");
  TORCH_CHECK(r > 0, op, " expects a positive ", factor, ", but got ", r);
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op,
              " expects a floating-point input, but got ", t.scalar_type());
}

static void check_small_tensor(const at::Tensor& small, int64_t r, const char* op) {
  check_common(small, r, op, "upscale_factor");
  TORCH_CHECK(small.size(1) % (r * r) == 0, op,
              " expects its input's 'channel' dimension to be divisible by the square of "
              "upscale_factor, but input.size(-3)=",
              small.size(1), " is not divisible by ", r * r);
}

static void check_large_tensor(const at::Tensor& large, int64_t r, const char* op) {
  check_common(large, r, op, "downscale_factor");
  TORCH_CHECK(large.size(2) % r == 0, op,
              " expects height to be divisible by downscale_factor, but input.size(-2)=",
              large.size(2), " is not divisible by ", r);
  TORCH_CHECK(large.size(3) % r == 0, op,
              " expects width to be divisible by downscale_factor, but input.size(-1)=",
              large.size(3), " is not divisible by ", r);
}

static at::Tensor checked_parameter(const at::Tensor& p, const at::Tensor& x, const char* name,
                                    bool numel_ok, int64_t expected) {
  check_same_device(p, x, name, DeviceWording::kArgumentIsOn);
  TORCH_CHECK(p.scalar_type() == x.scalar_type(), name, " must have the input's dtype ",
              x.scalar_type(), ", but got ", p.scalar_type());
  TORCH_CHECK(p.dim() <= 1 && numel_ok, name, " must be 1-D with ", expected,
              " element(s), but got shape ", p.sizes());
  return p.contiguous();
}

static FusedEpilogue check_epilogue(const at::Tensor& small, int64_t r,
                             const std::optional<at::Tensor>& bias, c10::string_view activation,
                             const std::optional<at::Tensor>& weight, double negative_slope) {
  FusedEpilogue e;
  e.act = parse_activation(activation);
  e.negative_slope = negative_slope;
  const int64_t channels = small.size(1);
  const int64_t large_channels = channels / (r * r);
  // In the order of the Python checks (pyimg/_activation.py), so a call with several faults
  // names the same one on every backend.
  TORCH_CHECK_VALUE(weight.has_value() == (e.act == Activation::kPReLU),
                    "a weight is given exactly when activation='prelu'");
  if (weight.has_value()) {
    const int64_t n = weight->numel();
    e.weight = checked_parameter(*weight, small, "PReLU weight", n == 1 || n == large_channels,
                                 large_channels);
  }
  if (bias.has_value()) {
    e.bias = checked_parameter(*bias, small, "bias", bias->numel() == channels, channels);
  }
  return e;
}

static void check_grad_out(const at::Tensor& grad_out, const at::Tensor& x, int64_t r) {
  const std::array<int64_t, 4> expected{x.size(0), x.size(1) / (r * r), x.size(2) * r,
                                        x.size(3) * r};
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef(expected), "pixel_shuffle_backward: grad_out ",
              "has shape ", grad_out.sizes(), " but the forward output has shape ",
              at::IntArrayRef(expected));
  check_device_and_dtype(grad_out, x, "pixel_shuffle_backward", "grad_out", "x");
}

static at::Tensor empty_large(const at::Tensor& small, int64_t r) {
  return at::empty({small.size(0), small.size(1) / (r * r), small.size(2) * r, small.size(3) * r},
                   small.options().memory_format(output_memory_format(small)));
}

static at::Tensor empty_small(const at::Tensor& large, int64_t r) {
  return at::empty({large.size(0), large.size(1) * r * r, large.size(2) / r, large.size(3) / r},
                   large.options().memory_format(output_memory_format(large)));
}

PreparedCall prepare_shuffle(const at::Tensor& x, int64_t r, const std::optional<at::Tensor>& bias,
                             c10::string_view activation, const std::optional<at::Tensor>& weight,
                             double negative_slope) {
  check_small_tensor(x, r, "pixel_shuffle");
  FusedEpilogue epilogue = check_epilogue(x, r, bias, activation, weight, negative_slope);
  return {std::move(epilogue), empty_large(x, r)};
}

at::Tensor prepare_unshuffle(const at::Tensor& x, int64_t r) {
  check_large_tensor(x, r, "pixel_unshuffle");
  return empty_small(x, r);
}

PreparedCall prepare_shuffle_backward(const at::Tensor& grad_out, const at::Tensor& x, int64_t r,
                                      const std::optional<at::Tensor>& bias,
                                      c10::string_view activation,
                                      const std::optional<at::Tensor>& weight,
                                      double negative_slope) {
  check_small_tensor(x, r, "pixel_shuffle_backward");
  check_grad_out(grad_out, x, r);
  FusedEpilogue epilogue = check_epilogue(x, r, bias, activation, weight, negative_slope);
  return {std::move(epilogue), empty_output_like(x)};
}

}  // namespace pyimg

TORCH_LIBRARY_FRAGMENT(pyimg, m) {
  m.def(
      "pixel_shuffle(Tensor x, int upscale_factor, Tensor? bias=None, str activation='none', "
      "Tensor? weight=None, float negative_slope=0.01) -> Tensor");
  m.def("pixel_unshuffle(Tensor x, int downscale_factor) -> Tensor");
  // Gradient with respect to the pre-activation, laid out like x (the small tensor).
  m.def(
      "pixel_shuffle_backward(Tensor grad_out, Tensor x, int upscale_factor, Tensor? bias, "
      "str activation, Tensor? weight, float negative_slope) -> Tensor");
}
