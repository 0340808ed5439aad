// Schemas of the max-pool / max-unpool ops, the argument checks every backend shares, and
// the deterministic scatter form of unpool for indices that leave their window.
#include "ops/max_pool.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/common.h"

namespace pyimg {

namespace {

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Stock's pooling_output_shape: with ceil_mode the last window must start inside the input
// or its left padding.
int64_t pooled_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  int64_t out = floor_div(in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0), s) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

void check_input(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() == 4, op, " expects a 4-D (N, C, H, W) input, but got ", x.dim(),
              " dimension(s)");
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op,
              " expects a floating-point input, but got ", x.scalar_type());
}

void check_pairs(at::IntArrayRef a, at::IntArrayRef b, at::IntArrayRef c, const char* op) {
  TORCH_CHECK(a.size() == 2 && b.size() == 2 && c.size() == 2, op,
              ": kernel_size, stride, padding (and dilation) must be pairs");
}

}  // namespace

PoolGeometry check_pool(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                        at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
                        bool compact, const char* op) {
  check_input(x, op);
  check_pairs(kernel_size, stride, padding, op);
  TORCH_CHECK(dilation.size() == 2, op, ": dilation must be a pair");
  PoolGeometry g{kernel_size[0], kernel_size[1], stride[0], stride[1], padding[0], padding[1],
                 dilation[0], dilation[1], x.size(2), x.size(3), 0, 0};
  TORCH_CHECK(g.kh > 0 && g.kw > 0, op, ": kernel_size must be greater than zero");
  TORCH_CHECK(g.sh > 0 && g.sw > 0, op, ": stride should not be zero");
  TORCH_CHECK(g.dh > 0 && g.dw > 0, op, ": dilation should be greater than zero");
  // Stock's rule: half the kernel size, dilation not counted.
  TORCH_CHECK(g.pad_h >= 0 && g.pad_w >= 0 && g.pad_h <= g.kh / 2 && g.pad_w <= g.kw / 2, op,
              ": pad should be at most half of kernel size");
  TORCH_CHECK(!compact || g.kh * g.kw <= 256, op,
              ": compact (uint8) indices need kernel_size[0] * kernel_size[1] <= 256, got ",
              g.kh * g.kw);
  g.PH = pooled_size(g.H, g.kh, g.sh, g.pad_h, g.dh, ceil_mode);
  g.PW = pooled_size(g.W, g.kw, g.sw, g.pad_w, g.dw, ceil_mode);
  TORCH_CHECK(g.PH > 0 && g.PW > 0, op, ": given input size (", g.H, "x", g.W,
              "), the calculated output size (", g.PH, "x", g.PW, ") is too small");
  return g;
}

namespace {

void check_indices(const at::Tensor& indices, const at::Tensor& x, bool compact, const char* op) {
  TORCH_CHECK(indices.sizes() == x.sizes(), op, ": expected shape of indices to be same as ",
              "that of the input tensor (", x.sizes(), ") but got indices tensor with shape: ",
              indices.sizes());
  TORCH_CHECK(indices.device() == x.device(), op, ": indices must be on the input's device");
  TORCH_CHECK(indices.scalar_type() == (compact ? at::kByte : at::kLong), op,
              ": elements in indices should be type ",
              compact ? "uint8 (compact indices)" : "int64 (flat indices)", " but got: ",
              indices.scalar_type());
}

}  // namespace

PoolGeometry check_pool_backward(const at::Tensor& grad_out, const at::Tensor& indices,
                                 at::IntArrayRef input_size, at::IntArrayRef kernel_size,
                                 at::IntArrayRef stride, at::IntArrayRef padding,
                                 at::IntArrayRef dilation, bool compact) {
  const char* op = "max_pool2d_with_indices_backward";
  TORCH_CHECK(grad_out.dim() == 4 && at::isFloatingType(grad_out.scalar_type()), op,
              " expects a 4-D floating-point grad_out");
  check_indices(indices, grad_out, compact, op);
  check_pairs(kernel_size, stride, padding, op);
  TORCH_CHECK(dilation.size() == 2 && input_size.size() == 2, op,
              ": dilation and input_size must be pairs");
  return {kernel_size[0], kernel_size[1], stride[0], stride[1], padding[0], padding[1],
          dilation[0], dilation[1], input_size[0], input_size[1], grad_out.size(2),
          grad_out.size(3)};
}

PoolGeometry check_unpool(const at::Tensor& x, const at::Tensor& indices,
                          at::IntArrayRef kernel_size, at::IntArrayRef stride,
                          at::IntArrayRef padding, at::IntArrayRef output_size, bool compact,
                          const char* op) {
  check_input(x, op);
  check_pairs(kernel_size, stride, padding, op);
  TORCH_CHECK(output_size.size() == 2, op, ": output_size must be a pair (H, W)");
  check_indices(indices, x, compact, op);
  PoolGeometry g{kernel_size[0], kernel_size[1], stride[0], stride[1], padding[0], padding[1],
                 1, 1, output_size[0], output_size[1], x.size(2), x.size(3)};
  TORCH_CHECK(g.kh > 0 && g.kw > 0 && g.sh > 0 && g.sw > 0 && g.pad_h >= 0 && g.pad_w >= 0, op,
              ": kernel_size and stride must be positive, padding non-negative");
  TORCH_CHECK(g.H >= 0 && g.W >= 0, op, ": output_size must be non-negative");
  return g;
}

PoolGeometry check_unpool_backward(const at::Tensor& grad_out, const at::Tensor& x,
                                   const at::Tensor& indices, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding, bool compact) {
  const char* op = "max_unpool2d_backward";
  TORCH_CHECK(grad_out.dim() == 4 && grad_out.size(0) == x.size(0) &&
                  grad_out.size(1) == x.size(1),
              op, ": grad_out has shape ", grad_out.sizes(), " but the input has shape ",
              x.sizes());
  check_device_and_dtype(grad_out, x, op, "grad_out");
  return check_unpool(x, indices, kernel_size, stride, padding,
                      {grad_out.size(2), grad_out.size(3)}, compact, op);
}

at::Tensor empty_planes(const at::Tensor& like, int64_t h, int64_t w, at::ScalarType dtype) {
  return at::empty({like.size(0), like.size(1), h, w},
                   like.options().dtype(dtype).memory_format(output_memory_format(like)));
}

void invalid_index_error(int64_t idx, const PoolGeometry& g) {
  TORCH_CHECK(false, "Found an invalid max index: ", idx, " (output volumes are of size ", g.H,
              "x", g.W, ")");
}

namespace {

// x and indices as (N * C, PH * PW) rows, one per plane.
at::Tensor rows_of(const at::Tensor& t) { return t.reshape({t.size(0) * t.size(1), -1}); }

at::Tensor planes_of(const at::Tensor& rows, const at::Tensor& like, const PoolGeometry& g) {
  return rows.view({like.size(0), like.size(1), g.H, g.W})
      .contiguous(output_memory_format(like));
}

at::Tensor scatter_rows(const at::Tensor& x, const at::Tensor& indices, const PoolGeometry& g) {
  // amax over the values written to a position is the largest value whatever the order;
  // positions nothing names keep the 0 they start with.
  return at::zeros({x.size(0) * x.size(1), g.H * g.W}, x.options())
      .scatter_reduce(1, rows_of(indices), rows_of(x), "amax", /*include_self=*/false);
}

}  // namespace

at::Tensor unpool_scatter(const at::Tensor& x, const at::Tensor& indices, const PoolGeometry& g) {
  return planes_of(scatter_rows(x, indices, g), x, g);
}

at::Tensor unpool_scatter_backward(const at::Tensor& grad_out, const at::Tensor& x,
                                   const at::Tensor& indices, const PoolGeometry& g) {
  // Only the winner of each position (unpool_winner's rule) gets its gradient: the value
  // equal to the position's maximum with the lowest pooled position.
  const at::Tensor idx = rows_of(indices), values = rows_of(x);
  const at::Tensor written = scatter_rows(x, indices, g).gather(1, idx);
  const at::Tensor is_max = values.eq(written).logical_or(values.isnan().logical_and(written.isnan()));
  const int64_t n = values.size(1);
  const at::Tensor pos = at::arange(n, idx.options()).expand_as(idx);
  const at::Tensor candidate = at::where(is_max, pos, n);
  const at::Tensor first = at::full({idx.size(0), g.H * g.W}, n, idx.options())
                               .scatter_reduce(1, idx, candidate, "amin", /*include_self=*/true);
  const at::Tensor grad_rows = grad_out.reshape({idx.size(0), g.H * g.W});
  const at::Tensor grad = at::where(first.gather(1, idx).eq(pos), grad_rows.gather(1, idx), 0);
  return grad.view(x.sizes()).contiguous(output_memory_format(x));
}

}  // namespace pyimg

TORCH_LIBRARY_FRAGMENT(pyimg, m) {
  // compact: uint8 tap numbers inside the window instead of int64 flat plane positions.
  m.def(
      "max_pool2d_with_indices(Tensor x, int[2] kernel_size, int[2] stride, int[2] padding, "
      "int[2] dilation, bool ceil_mode, bool compact) -> (Tensor, Tensor)");
  // Gradient with respect to x, of spatial size input_size (H, W).
  m.def(
      "max_pool2d_with_indices_backward(Tensor grad_out, Tensor indices, SymInt[2] input_size, "
      "int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation, bool compact) -> "
      "Tensor");
  m.def(
      "max_unpool2d(Tensor x, Tensor indices, int[2] kernel_size, int[2] stride, "
      "int[2] padding, SymInt[2] output_size, bool compact) -> Tensor");
  m.def(
      "max_unpool2d_backward(Tensor grad_out, Tensor x, Tensor indices, int[2] kernel_size, "
      "int[2] stride, int[2] padding, bool compact) -> Tensor");
}
