// Schema of depthwise_conv2d and the argument checks its CPU and CUDA kernels share.
#include "ops/depthwise_conv.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <torch/library.h>

#include "ops/common.h"

namespace pyimg {
namespace {

constexpr const char* kOp = "depthwise_conv2d";

// A per-output-channel table as a contiguous tensor of the accumulation type.
at::Tensor channel_table(const std::optional<at::Tensor>& t, const at::Tensor& x,
                         int64_t channels, const char* name, bool one_ok) {
  if (!t.has_value()) return {};
  check_same_device(*t, x, name, DeviceWording::kFoundTwo);
  TORCH_CHECK(t->dim() <= 1 && (t->numel() == channels || (one_ok && t->numel() == 1)), kOp,
              ": ", name, " must be 1-D with ", channels, " element(s), but got shape ",
              t->sizes());
  return t->reshape({-1}).to(accumulate_type(x)).contiguous();
}

DepthwiseGeometry check_geometry(const at::Tensor& x, const at::Tensor& weight,
                                 at::IntArrayRef stride, at::IntArrayRef padding,
                                 at::IntArrayRef dilation) {
  TORCH_CHECK(x.dim() == 4, kOp, " expects a 4-D (N, C, H, W) input, but got input of size: ",
              x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), kOp,
              " expects a floating-point input, but got ", x.scalar_type());
  TORCH_CHECK(weight.dim() == 4, kOp,
              ": weight must be (C_out, 1, KH, KW), but got weight of size ", weight.sizes());
  TORCH_CHECK(weight.size(1) == 1, "Given groups=", x.size(1), ", weight of size ",
              weight.sizes(), ", expected input", x.sizes(), " to have ",
              weight.size(1) * x.size(1), " channels, but got ", x.size(1),
              " channels instead");
  check_same_device(weight, x, "weight", DeviceWording::kFoundTwo);
  TORCH_CHECK(weight.scalar_type() == x.scalar_type(), "Input type (", x.scalar_type(),
              ") and weight type (", weight.scalar_type(), ") should be the same");
  TORCH_CHECK(stride.size() == 2 && padding.size() == 4 && dilation.size() == 2, kOp,
              ": expected 2 strides, 4 paddings (top, bottom, left, right) and 2 dilations");
  TORCH_CHECK(stride[0] > 0 && stride[1] > 0, "non-positive stride is not supported");
  TORCH_CHECK(dilation[0] > 0 && dilation[1] > 0,
              "dilation should be greater than zero, but got ", dilation);
  for (const int64_t p : padding) TORCH_CHECK(p >= 0, "negative padding is not supported");
  DepthwiseGeometry g{};
  g.N = x.size(0), g.C = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.C_out = weight.size(0), g.KH = weight.size(2), g.KW = weight.size(3);
  TORCH_CHECK(g.C > 0 && g.C_out % g.C == 0, "Given groups=", g.C, ", expected weight to be ",
              "divisible by ", g.C, " at dimension 0, but got weight of size ", weight.sizes(),
              " instead");
  g.multiplier = g.C_out / g.C;
  g.sh = stride[0], g.sw = stride[1], g.dh = dilation[0], g.dw = dilation[1];
  g.pad_top = padding[0], g.pad_left = padding[2];
  const int64_t padded_h = g.H + padding[0] + padding[1];
  const int64_t padded_w = g.W + padding[2] + padding[3];
  const int64_t span_h = g.dh * (g.KH - 1) + 1, span_w = g.dw * (g.KW - 1) + 1;
  TORCH_CHECK(padded_h >= span_h && padded_w >= span_w,
              "Calculated padded input size per channel: (", padded_h, " x ", padded_w,
              "). Kernel size: (", span_h, " x ", span_w,
              "). Kernel size can't be greater than actual input size");
  g.OH = (padded_h - span_h) / g.sh + 1;
  g.OW = (padded_w - span_w) / g.sw + 1;
  return g;
}

}  // namespace

DepthwiseCall prepare_depthwise(const at::Tensor& x, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation,
                                const std::optional<at::Tensor>& scale,
                                const std::optional<at::Tensor>& shift,
                                c10::string_view activation,
                                const std::optional<at::Tensor>& prelu_weight,
                                double negative_slope, const std::optional<at::Tensor>& residual,
                                bool add_before_activation) {
  DepthwiseCall call;
  call.g = check_geometry(x, weight, stride, padding, dilation);
  const DepthwiseGeometry& g = call.g;
  const at::MemoryFormat format = output_memory_format(x);
  call.channels_last = format == at::MemoryFormat::ChannelsLast;
  call.x = x.contiguous(format);
  call.taps = weight.reshape({g.C_out, g.KH * g.KW}).t().to(accumulate_type(x)).contiguous();
  if (bias.has_value()) {
    TORCH_CHECK(bias->scalar_type() == x.scalar_type(), "Input type (", x.scalar_type(),
                ") and bias type (", bias->scalar_type(), ") should be the same");
  }
  call.bias = channel_table(bias, x, g.C_out, "bias", false);
  call.scale = channel_table(scale, x, g.C_out, "scale", false);
  call.shift = channel_table(shift, x, g.C_out, "shift", false);
  call.act = parse_activation(activation);
  TORCH_CHECK_VALUE(call.act != Activation::kTanh && call.act != Activation::kSigmoid, kOp,
                    ": activation must be none, relu, leaky_relu or prelu");
  TORCH_CHECK_VALUE(prelu_weight.has_value() == (call.act == Activation::kPReLU), kOp,
                    ": prelu_weight is given exactly when activation='prelu'");
  if (call.act == Activation::kPReLU) {
    call.alpha = channel_table(prelu_weight, x, g.C_out, "PReLU weight", true);
  } else if (call.act == Activation::kLeakyReLU) {
    call.alpha = at::full({1}, negative_slope, x.options().dtype(accumulate_type(x)));
  }
  call.out = at::empty({g.N, g.C_out, g.OH, g.OW}, x.options().memory_format(format));
  if (residual.has_value()) {
    check_same_device(*residual, x, "residual", DeviceWording::kFoundTwo);
    TORCH_CHECK(residual->sizes() == call.out.sizes(), kOp, ": residual has shape ",
                residual->sizes(), " but the output has shape ", call.out.sizes());
    TORCH_CHECK(residual->scalar_type() == x.scalar_type(), kOp,
                ": residual must have the input's dtype ", x.scalar_type(), ", but got ",
                residual->scalar_type());
    call.residual = residual->contiguous(format);
  }
  call.add_before_activation = add_before_activation;
  return call;
}

}  // namespace pyimg

TORCH_LIBRARY_FRAGMENT(pyimg, m) {
  // F.conv2d(x, weight, bias, stride, padding, dilation, groups=C_in), then
  // u = (conv + bias) * scale + shift and y = act(u [+ residual]) [+ residual]: the residual
  // before the activation when add_before_activation. padding is (top, bottom, left, right).
  // Output in x's layout.
  m.def(
      "depthwise_conv2d(Tensor x, Tensor weight, Tensor? bias, int[] stride, int[] padding, "
      "int[] dilation, Tensor? scale, Tensor? shift, str activation, Tensor? prelu_weight, "
      "float negative_slope, Tensor? residual, bool add_before_activation) -> Tensor");
}
