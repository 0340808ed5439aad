// Host- and device-side contract shared by the CPU and CUDA max-pool / max-unpool kernels.
//
// Naming: the "plane" is one (H, W) image of the pooled tensor's input (and of the unpooled
// output); the "pooled" plane is (PH, PW). Pooled element (ph, pw) owns the window whose
// top-left corner is (ph * sh - pad_h, pw * sw - pad_w), with taps dilation apart.
//
// Index formats: "flat" indices are int64 positions h * W + w in the plane, as
// F.max_pool2d(return_indices=True) returns; "compact" ones are uint8 tap numbers
// ki * kw + kj inside the window (8x less index traffic), valid when kh * kw <= 256.
//
// Everything is a gather: each output element reads the few pooled elements whose windows
// cover it, so every output is written once, in a fixed order, with no atomics.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>

#include <cstdint>

namespace pyimg {

struct PoolGeometry {
  int64_t kh, kw, sh, sw, pad_h, pad_w, dh, dw;
  int64_t H, W;    // the plane
  int64_t PH, PW;  // the pooled plane

  // The plane position (h * W + w) that index idx of pooled element (ph, pw) names, or -1
  // when it names none (a compact tap past the window, a flat index outside the plane, or a
  // tap in the padding).
  C10_HOST_DEVICE int64_t position(int64_t idx, int64_t ph, int64_t pw, bool compact) const {
    if (!compact) return idx >= 0 && idx < H * W ? idx : -1;
    if (idx < 0 || idx >= kh * kw) return -1;
    const int64_t h = ph * sh - pad_h + (idx / kw) * dh;
    const int64_t w = pw * sw - pad_w + (idx % kw) * dw;
    return h >= 0 && h < H && w >= 0 && w < W ? h * W + w : -1;
  }

  // Whether every window (dilation 1) has a row and a column in the plane, so that a pass
  // over the plane meets every window's index.
  C10_HOST_DEVICE bool windows_meet_plane() const {
    return (PH - 1) * sh - pad_h < H && (PW - 1) * sw - pad_w < W;
  }

  // Whether flat plane position pos lies in unpool window (ph, pw) (dilation 1). A loop over
  // the window's rows rather than pos / W: division costs more than kh compares.
  C10_HOST_DEVICE bool in_window(int64_t pos, int64_t ph, int64_t pw) const {
    const int64_t h0 = ph * sh - pad_h, w0 = pw * sw - pad_w;
    for (int64_t ki = 0; ki < kh; ++ki) {
      const int64_t h = h0 + ki, w = pos - h * W;
      if (h >= 0 && h < H && w >= w0 && w < w0 + kw && w >= 0 && w < W) return true;
    }
    return false;
  }
};

// The pooled rows [*lo, *hi) whose windows (k taps, stride s, padding p, dilation d) can
// cover plane row pos; the same for columns.
C10_HOST_DEVICE inline void covering(int64_t pos, int64_t k, int64_t s, int64_t p, int64_t d,
                                     int64_t pooled, int64_t* lo, int64_t* hi) {
  const int64_t first = pos + p - (k - 1) * d;  // the lowest window start that reaches pos
  *lo = first <= 0 ? 0 : (first + s - 1) / s;
  const int64_t last = (pos + p) / s + 1;
  *hi = last < pooled ? last : pooled;
}

// Unpool and unpool-backward share this: of the pooled elements in rows [lo_h, hi_h) and
// columns [lo_w, hi_w) (those covering(h) and covering(w) give) whose index names plane
// position (h, w), the one that max_unpool2d writes there. The largest value wins (NaN counts
// as the largest); ties go to the lowest pooled position. Returns that position ph * PW + pw
// and its value, or -1 when no index names (h, w). load(ph, pw, &value) returns the index.
template <typename Acc, typename Load>
C10_HOST_DEVICE int64_t unpool_winner(const PoolGeometry& g, int64_t h, int64_t w, int64_t lo_h,
                                      int64_t hi_h, int64_t lo_w, int64_t hi_w, bool compact,
                                      const Load& load, Acc* best_value) {
  const int64_t pos = h * g.W + w;
  int64_t best = -1;
  *best_value = Acc(0);
  for (int64_t ph = lo_h; ph < hi_h; ++ph) {
    for (int64_t pw = lo_w; pw < hi_w; ++pw) {
      Acc value;
      const int64_t idx = load(ph, pw, &value);
      if (g.position(idx, ph, pw, compact) != pos) continue;
      const bool nan = value != value, best_nan = *best_value != *best_value;
      if (best < 0 || (!best_nan && (nan || value > *best_value))) {
        best = ph * g.PW + pw;
        *best_value = value;
      }
    }
  }
  return best;
}

// Runs the lambda given last with scalar_t = the tensors' dtype and index_t = the index
// format's type (uint8_t when compact, else int64_t).
#define PYIMG_DISPATCH_POOL(dtype, compact, name, ...)                         \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, name, [&] { \
    if (compact) {                                                             \
      using index_t = uint8_t;                                                 \
      __VA_ARGS__();                                                           \
    } else {                                                                   \
      using index_t = int64_t;                                                 \
      __VA_ARGS__();                                                           \
    }                                                                          \
  })

// Pool: x (N, C, H, W) -> values and indices (N, C, PH, PW).
PoolGeometry check_pool(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                        at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
                        bool compact, const char* op);
// Pool backward: grad_out, indices (N, C, PH, PW) -> gradient (N, C, H, W).
PoolGeometry check_pool_backward(const at::Tensor& grad_out, const at::Tensor& indices,
                                 at::IntArrayRef input_size, at::IntArrayRef kernel_size,
                                 at::IntArrayRef stride, at::IntArrayRef padding,
                                 at::IntArrayRef dilation, bool compact);
// Unpool: x, indices (N, C, PH, PW) -> (N, C, H, W) with (H, W) = output_size.
PoolGeometry check_unpool(const at::Tensor& x, const at::Tensor& indices,
                          at::IntArrayRef kernel_size, at::IntArrayRef stride,
                          at::IntArrayRef padding, at::IntArrayRef output_size, bool compact,
                          const char* op);
// Unpool backward: grad_out (N, C, H, W) of x's batch, channels, dtype and device, and the
// unpool's x and indices (N, C, PH, PW) -> gradient (N, C, PH, PW).
PoolGeometry check_unpool_backward(const at::Tensor& grad_out, const at::Tensor& x,
                                   const at::Tensor& indices, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding, bool compact);

// Outputs in output_memory_format() of the tensor they are computed from.
at::Tensor empty_planes(const at::Tensor& like, int64_t h, int64_t w, at::ScalarType dtype);

// What validate_unpool_indices found: every index names a position in its own window (the
// gather kernels apply), or some name in-plane positions outside their window (the scatter
// path below applies); an index naming no position of the plane raises.
enum class IndexCheck : int { kInWindow = 0, kOutsideWindow = 1 };
[[noreturn]] void invalid_index_error(int64_t idx, const PoolGeometry& g);

// The deterministic scatter form of max_unpool2d for flat indices that leave their window
// (in-plane, but not what a max-pool of this geometry produces). Same rule as
// unpool_winner, composed from ATen ops, so CPU and CUDA agree.
at::Tensor unpool_scatter(const at::Tensor& x, const at::Tensor& indices, const PoolGeometry& g);
at::Tensor unpool_scatter_backward(const at::Tensor& grad_out, const at::Tensor& x,
                                   const at::Tensor& indices, const PoolGeometry& g);

}  // namespace pyimg
