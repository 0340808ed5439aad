// CPU kernels of max_pool2d_with_indices, max_unpool2d and their backwards.
//
// All four are gathers over the output in memory order (for_each_output): a task writes whole
// output rows, each element once, so no zero-fill pass, no atomics, and the result does not
// depend on the thread count. Inputs are read through their strides (no copies). Which pooled
// windows cover a plane row or column is tabulated once a call (Covering), keeping divisions
// out of the inner loops.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/common.h"
#include "ops/cpu/parallel.h"
#include "ops/max_pool.h"
#include "ops/strides.h"

namespace pyimg {
namespace {

using cpu::grain_for;

// AVX-512 copies of these loops (short rows of gathers and selects) ran slower than the AVX2
// ones on AMD Zen 4: max_unpool2d (8, 64, 128, 128) 2x2, one thread, output in cache,
// 3.7-5.1 ms against 2.6-2.8 ms. So this file stops at AVX2.
constexpr cpu::Capability kWidest = cpu::Capability::kAvx2;

// A task's unit of work: one output row, contiguous in memory. NCHW: plane row h of channel
// c0 (channels = 1); channels_last: image row h with all C channels, element (w, c) at
// w * C + c. offset: the row's first element in the output.
struct OutputRow {
  int64_t n, c0, channels, h, offset;
};

// Calls f(row) for every row of out, a (N, C, H, W) tensor contiguous in its memory format.
template <typename F>
void for_each_row(const at::Tensor& out, const F& f) {
  const int64_t N = out.size(0), C = out.size(1), H = out.size(2), W = out.size(3);
  if (out.numel() == 0) return;
  if (is_channels_last(out)) {
    cpu::parallel_for<kWidest>(0, N * H, grain_for(W * C), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) f(OutputRow{row / H, 0, C, row % H, row * W * C});
    });
    return;
  }
  cpu::parallel_for<kWidest>(0, N * C * H, grain_for(W), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      f(OutputRow{row / (H * C), (row / H) % C, 1, row % H, row * W});
    }
  });
}

// Calls f(n, c, h, w, offset) for every element of out, whole rows per task.
template <typename F>
void for_each_output(const at::Tensor& out, const F& f) {
  const int64_t W = out.size(3);
  for_each_row(out, [&](const OutputRow& r) {
    for (int64_t w = 0, o = r.offset; w < W; ++w) {
      for (int64_t c = r.c0; c < r.c0 + r.channels; ++c, ++o) f(r.n, c, r.h, w, o);
    }
  });
}

// A per-thread scratch row, reused across tasks and calls; kSlot tells apart two rows of one
// element type used at once.
template <typename V, int kSlot>
V* scratch(int64_t size) {
  thread_local std::vector<V> buffer;
  if (static_cast<int64_t>(buffer.size()) < size) buffer.resize(size);
  return buffer.data();
}

// For each plane row (or column) pos, the pooled rows [lo[pos], hi[pos]) covering it.
struct Covering {
  std::vector<int64_t> lo, hi;
  Covering(int64_t size, int64_t k, int64_t s, int64_t p, int64_t d, int64_t pooled)
      : lo(size), hi(size) {
    for (int64_t pos = 0; pos < size; ++pos) covering(pos, k, s, p, d, pooled, &lo[pos], &hi[pos]);
  }
};

// One tap over the windows [lo, hi) of a row: best / tap hold each window's running maximum
// and the tap it came from.
template <typename T, typename Acc, typename Stride>
inline void window_sweep(const T* __restrict__ base, Stride stride, Acc* __restrict__ best,
                         int32_t* __restrict__ tap, int32_t code, int64_t lo, int64_t hi) {
  for (int64_t pw = lo; pw < hi; ++pw) {
    const Acc v = static_cast<Acc>(base[pw * stride]);
    const bool take = (v > best[pw]) | (v != v);  // | not ||: no branch
    best[pw] = take ? v : best[pw];
    tap[pw] = take ? code : tap[pw];
  }
}

// One tap over a block of channels: best / mark hold each channel's running maximum and
// the mark of the tap it came from.
template <typename Acc, typename T, typename Count, typename Stride>
inline void block_sweep(const T* __restrict__ p, Stride stride, Acc* __restrict__ best,
                        int32_t* __restrict__ mark, int32_t m, Count count) {
  // Else GCC unrolls a constant count into scalar code before it can vectorize.
#pragma omp simd
  for (int64_t c = 0; c < count; ++c) {
    const Acc v = static_cast<Acc>(p[c * stride]);
    const bool take = (v > best[c]) | (v != v);
    best[c] = take ? v : best[c];
    mark[c] = take ? m : mark[c];
  }
}

// Tap-major: for each tap of the window, one pass along the row updates every window's
// running maximum and tap number, so the inner loop is a branch-free, vectorizable sweep
// (over pw for NCHW, over channels for channels_last); taps become flat positions only when
// the row is written. Taps run in stock's order (row-major), and the update rule is stock's:
// the first of equal maxima, the last NaN.
template <typename T, typename I>
void pool(const at::Tensor& x, const PoolGeometry& g, at::Tensor& out, at::Tensor& indices) {
  using Acc = at::opmath_type<T>;
  const T* src = x.const_data_ptr<T>();
  T* dst = out.mutable_data_ptr<T>();
  I* idx = indices.mutable_data_ptr<I>();
  const Strides4 s = strides_of(x);
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  // First in-plane tap of each window row / column.
  std::vector<int64_t> first_h(g.PH), first_w(g.PW);
  for (int64_t ph = 0; ph < g.PH; ++ph) {
    const int64_t h0 = ph * g.sh - g.pad_h;
    first_h[ph] = h0 < 0 ? (-h0 + g.dh - 1) / g.dh : 0;
  }
  for (int64_t pw = 0; pw < g.PW; ++pw) {
    const int64_t w0 = pw * g.sw - g.pad_w;
    first_w[pw] = w0 < 0 ? (-w0 + g.dw - 1) / g.dw : 0;
  }
  // Tap column kj lies in the plane for windows [pw_lo[kj], pw_hi[kj]).
  std::vector<int64_t> pw_lo(g.kw), pw_hi(g.kw);
  for (int64_t kj = 0; kj < g.kw; ++kj) {
    const int64_t off = kj * g.dw - g.pad_w;
    pw_lo[kj] = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
    pw_hi[kj] = g.W - 1 - off < 0 ? 0 : std::min(g.PW, (g.W - 1 - off) / g.sw + 1);
  }
  // Tap t of a window at (h0, w0) is plane position h0 * W + w0 + tap_offset[t].
  std::vector<int64_t> tap_offset(g.kh * g.kw);
  for (int64_t t = 0; t < g.kh * g.kw; ++t) {
    tap_offset[t] = (t / g.kw) * g.dh * g.W + (t % g.kw) * g.dw;
  }
  for_each_row(out, [&](const OutputRow& r) {
    const int64_t ph = r.h, h0 = ph * g.sh - g.pad_h, Cr = r.channels, len = g.PW * Cr;
    Acc* best = scratch<Acc, 0>(len);
    int32_t* tap = scratch<int32_t, 1>(len);
    for (int64_t pw = 0; pw < g.PW; ++pw) {
      const auto first = static_cast<int32_t>(first_h[ph] * g.kw + first_w[pw]);
      for (int64_t c = 0; c < Cr; ++c) {
        best[pw * Cr + c] = -std::numeric_limits<Acc>::infinity();
        tap[pw * Cr + c] = first;
      }
    }
    const T* plane = src + r.n * s.n + r.c0 * s.c;
    for (int64_t ki = first_h[ph]; ki < g.kh && h0 + ki * g.dh < g.H; ++ki) {
      const int64_t h = h0 + ki * g.dh;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const int64_t off = kj * g.dw - g.pad_w;
        const T* base = plane + h * s.h + off * s.w;
        const auto code = static_cast<int32_t>(ki * g.kw + kj);
        if (Cr == 1) {
          // SegNet's stride 2 over a unit-stride row spelled out, so the loop vectorizes.
          const int64_t sw = g.sw * s.w;
          if (sw == 2) {
            window_sweep(base, std::integral_constant<int64_t, 2>{}, best, tap, code,
                         pw_lo[kj], pw_hi[kj]);
          } else {
            window_sweep(base, sw, best, tap, code, pw_lo[kj], pw_hi[kj]);
          }
          continue;
        }
        for (int64_t pw = pw_lo[kj]; pw < pw_hi[kj]; ++pw) {
          const T* p = base + pw * g.sw * s.w;
          // Unit channel stride (true channels_last) spelled out, so the loop vectorizes.
          if (s.c == 1) {
            block_sweep(p, std::integral_constant<int64_t, 1>{}, best + pw * Cr,
                          tap + pw * Cr, code, Cr);
          } else {
            block_sweep(p, s.c, best + pw * Cr, tap + pw * Cr, code, Cr);
          }
        }
      }
    }
    T* o = dst + r.offset;
    I* io = idx + r.offset;
    for (int64_t k = 0; k < len; ++k) o[k] = static_cast<T>(best[k]);
    if constexpr (kCompact) {
      for (int64_t k = 0; k < len; ++k) io[k] = static_cast<I>(tap[k]);
    } else {
      for (int64_t pw = 0, k = 0; pw < g.PW; ++pw) {
        const int64_t corner = h0 * g.W + pw * g.sw - g.pad_w;
        for (int64_t c = 0; c < Cr; ++c, ++k) io[k] = corner + tap_offset[tap[k]];
      }
    }
  });
}

// A block's maxima and marks to the output. Through restrict pointers: a uint8 index store
// may alias anything, so without them the loop reloads every pointer after each byte.
template <typename T, typename I, typename Acc, typename Count>
inline void store_block(T* __restrict__ values, I* __restrict__ indices,
                        const Acc* __restrict__ best, const int32_t* __restrict__ mark,
                        Count count) {
  for (int64_t c = 0; c < count; ++c) {
    values[c] = static_cast<T>(best[c]);
    indices[c] = static_cast<I>(mark[c]);
  }
}

// channels_last: per pooled position, channels go in blocks of kBlock whose running maxima
// and marks stay in registers while the window's taps stream past, each tap a contiguous run
// of channels; the loops vectorize across channels and each output is written once. Marks
// are tap numbers (compact) or plane positions (flat) as int32, lanes as wide as float's,
// so the caller sees that H * W fits. Same taps order and update rule as pool().
template <typename T, typename I>
void pool_channels_last(const at::Tensor& x, const PoolGeometry& g, at::Tensor& out,
                        at::Tensor& indices) {
  using Acc = at::opmath_type<T>;
  constexpr int64_t kBlock = 64;
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  const T* src = x.const_data_ptr<T>();
  T* dst = out.mutable_data_ptr<T>();
  I* idx = indices.mutable_data_ptr<I>();
  const Strides4 s = strides_of(x);
  const int64_t C = x.size(1), PH = g.PH, PW = g.PW;
  // Window pw's in-plane tap columns [kj_lo[pw], kj_hi[pw]).
  std::vector<int64_t> kj_lo(PW), kj_hi(PW);
  for (int64_t pw = 0; pw < PW; ++pw) {
    const int64_t w0 = pw * g.sw - g.pad_w;
    kj_lo[pw] = w0 < 0 ? (-w0 + g.dw - 1) / g.dw : 0;
    for (kj_hi[pw] = kj_lo[pw]; kj_hi[pw] < g.kw && w0 + kj_hi[pw] * g.dw < g.W;) ++kj_hi[pw];
  }
  cpu::parallel_for<kWidest>(0, x.size(0) * PH, grain_for(PW * C), [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t ph = unit % PH, n = unit / PH, h0 = ph * g.sh - g.pad_h;
      int64_t ki_lo = h0 < 0 ? (-h0 + g.dh - 1) / g.dh : 0, ki_hi = ki_lo;
      while (ki_hi < g.kh && h0 + ki_hi * g.dh < g.H) ++ki_hi;
      for (int64_t pw = 0; pw < PW; ++pw) {
        const int64_t w0 = pw * g.sw - g.pad_w, o = (unit * PW + pw) * C;
        const auto mark_of = [&](int64_t ki, int64_t kj) {
          return static_cast<int32_t>(kCompact ? ki * g.kw + kj
                                               : (h0 + ki * g.dh) * g.W + w0 + kj * g.dw);
        };
        for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
          const int64_t count = std::min(kBlock, C - c0);
          Acc best[kBlock];
          int32_t mark[kBlock];
          std::fill(best, best + kBlock, -std::numeric_limits<Acc>::infinity());
          std::fill(mark, mark + kBlock, mark_of(ki_lo, kj_lo[pw]));
          for (int64_t ki = ki_lo; ki < ki_hi; ++ki) {
            for (int64_t kj = kj_lo[pw]; kj < kj_hi[pw]; ++kj) {
              const T* p = src + n * s.n + (h0 + ki * g.dh) * s.h + (w0 + kj * g.dw) * s.w +
                           c0 * s.c;
              // A full block over unit channel stride spelled out, so it vectorizes.
              if (count == kBlock && s.c == 1) {
                block_sweep(p, std::integral_constant<int64_t, 1>{}, best, mark, mark_of(ki, kj),
                            std::integral_constant<int64_t, kBlock>{});
              } else {
                block_sweep(p, s.c, best, mark, mark_of(ki, kj), count);
              }
            }
          }
          // A full block's count spelled out, so the narrowing stores vectorize.
          if (count == kBlock) {
            store_block(dst + o + c0, idx + o + c0, best, mark,
                        std::integral_constant<int64_t, kBlock>{});
          } else {
            store_block(dst + o + c0, idx + o + c0, best, mark, count);
          }
        }
      }
    }
  });
}

template <typename T, typename I>
void pool_backward(const at::Tensor& grad_out, const at::Tensor& indices, const PoolGeometry& g,
                   at::Tensor& grad_x) {
  using Acc = at::opmath_type<T>;
  const T* gsrc = grad_out.const_data_ptr<T>();
  const I* isrc = indices.const_data_ptr<I>();
  T* dst = grad_x.mutable_data_ptr<T>();
  const Strides4 sg = strides_of(grad_out), si = strides_of(indices);
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  const Covering rows(g.H, g.kh, g.sh, g.pad_h, g.dh, g.PH);
  const Covering cols(g.W, g.kw, g.sw, g.pad_w, g.dw, g.PW);
  for_each_output(grad_x, [&](int64_t n, int64_t c, int64_t h, int64_t w, int64_t o) {
    const T* gp = gsrc + n * sg.n + c * sg.c;
    const I* ip = isrc + n * si.n + c * si.c;
    const int64_t pos = h * g.W + w;
    Acc sum = Acc(0);
    for (int64_t ph = rows.lo[h]; ph < rows.hi[h]; ++ph) {
      for (int64_t pw = cols.lo[w]; pw < cols.hi[w]; ++pw) {
        const int64_t idx = static_cast<int64_t>(ip[ph * si.h + pw * si.w]);
        if (g.position(idx, ph, pw, kCompact) == pos) sum += static_cast<Acc>(gp[ph * sg.h + pw * sg.w]);
      }
    }
    dst[o] = static_cast<T>(sum);
  });
}

// Whether every index names a plane position inside its own window, or some index names an
// in-plane position outside it; an index naming no plane position raises. Branch-free flags
// per row (the loop vectorizes); the offending index is searched for only on error.
template <typename I>
IndexCheck validate(const at::Tensor& indices, const PoolGeometry& g) {
  const I* isrc = indices.const_data_ptr<I>();
  const Strides4 si = strides_of(indices);
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  const int64_t C = indices.size(1), kh = g.kh, kw = g.kw, H = g.H, W = g.W, PW = g.PW;
  const double inv_w = 1.0 / static_cast<double>(std::max<int64_t>(W, 1));
  std::atomic<bool> outside_plane{false}, outside_window{false};
  cpu::parallel_for<kWidest>(
      0, indices.size(0) * C * g.PH, grain_for(PW), [&](int64_t begin, int64_t end) {
    bool plane_flag = false, window_flag = false;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t ph = row % g.PH, c = (row / g.PH) % C, n = row / (g.PH * C);
      const I* ip = isrc + n * si.n + c * si.c + ph * si.h;
      const int64_t h0 = ph * g.sh - g.pad_h, siw = si.w;
      bool plane_bad = false, window_bad = false;
      for (int64_t pw = 0; pw < PW; ++pw) {
        const int64_t idx = static_cast<int64_t>(ip[pw * siw]), w0 = pw * g.sw - g.pad_w;
        int64_t h, w;
        if constexpr (kCompact) {
          h = h0 + idx / kw;
          w = w0 + idx % kw;
        } else {
          // Exact for idx < 2^52: the quotient's distance to the next integer exceeds the
          // rounding error.
          h = static_cast<int64_t>(static_cast<double>(idx) * inv_w);
          w = idx - h * W;
        }
        const bool in_plane = (kCompact ? idx < kh * kw : idx >= 0 && idx < H * W) && h >= 0 &&
                              h < H && w >= 0 && w < W;
        const bool in_window = h >= h0 && h < h0 + kh && w >= w0 && w < w0 + kw;
        plane_bad |= !in_plane;
        window_bad |= !in_window;
      }
      plane_flag |= plane_bad;
      window_flag |= window_bad;
    }
    if (plane_flag) outside_plane = true;
    if (window_flag) outside_window = true;
  });
  if (outside_plane) {
    for (int64_t n = 0; n < indices.size(0); ++n) {
      for (int64_t c = 0; c < C; ++c) {
        for (int64_t ph = 0; ph < g.PH; ++ph) {
          for (int64_t pw = 0; pw < PW; ++pw) {
            const int64_t idx = static_cast<int64_t>(isrc[n * si.n + c * si.c + ph * si.h + pw * si.w]);
            if (g.position(idx, ph, pw, kCompact) < 0) invalid_index_error(idx, g);
          }
        }
      }
    }
  }
  return outside_window ? IndexCheck::kOutsideWindow : IndexCheck::kInWindow;
}

// Disjoint windows (stride >= kernel, SegNet's 2x2 / 2): no two windows share an output
// element, so pooled row ph alone decides output rows [band[ph], band[ph + 1]): its window rows
// and the rows up to the next window, which stay 0. A task zeroes one such band while it is in
// cache, then puts each pooled value where its index points, so the band reaches memory once
// and each index and value is read once.
//
// Validation rides along: a valid index hits exactly one position of its window, an invalid
// one none, so the call returns the number of hits, which equals the number of pooled
// elements exactly when every index is valid (given PoolGeometry::windows_meet_plane).
// Nothing is written outside the output whatever the indices.
struct DisjointBands {
  std::vector<int64_t> band;          // PH + 1 row bounds, band[0] = 0, band[PH] = H
  std::vector<int64_t> col_lo, col_hi;  // window pw's in-plane columns

  explicit DisjointBands(const PoolGeometry& g) : band(g.PH + 1), col_lo(g.PW), col_hi(g.PW) {
    for (int64_t ph = 0; ph <= g.PH; ++ph) {
      band[ph] = ph == 0 ? 0 : ph == g.PH ? g.H : std::clamp(ph * g.sh - g.pad_h, int64_t{0}, g.H);
    }
    for (int64_t pw = 0; pw < g.PW; ++pw) {
      col_lo[pw] = std::clamp(pw * g.sw - g.pad_w, int64_t{0}, g.W);
      col_hi[pw] = std::clamp(pw * g.sw - g.pad_w + g.kw, int64_t{0}, g.W);
    }
  }
};

using One = std::integral_constant<int64_t, 1>;

// The windows of one pooled row: rows [row_lo, row_hi) in the plane, window pw's in-plane
// columns [col_lo[pw], col_hi[pw]).
struct Window {
  const PoolGeometry& g;
  int64_t h0, row_lo, row_hi;
  const int64_t* col_lo;
  const int64_t* col_hi;
};

// The plane position (int32) each index of a pooled row names when that lies in its window,
// else -1. Neither kind divides, so the loops vectorize across the row in 32-bit lanes: a
// compact tap looks up its row and column in the window (then only the plane bounds are left
// to check); a flat index is its own position once found in one of the window's rows.
struct TapTable {
  int32_t row[256], col[256];  // a tap past the window gets a row no plane row matches

  explicit TapTable(const PoolGeometry& g) {
    for (int32_t t = 0; t < 256; ++t) {
      const bool inside = t < g.kh * g.kw;
      row[t] = inside ? static_cast<int32_t>(t / g.kw) : std::numeric_limits<int32_t>::min() / 2;
      col[t] = inside ? static_cast<int32_t>(t % g.kw) : 0;
    }
  }
};

template <typename Stride>
void tap_targets(const uint8_t* __restrict__ taps, Stride stride, const TapTable& table,
                 const PoolGeometry& g, int64_t ph, int32_t* __restrict__ target) {
  const auto H = static_cast<int32_t>(g.H), W = static_cast<int32_t>(g.W);
  const auto sw = static_cast<int32_t>(g.sw), pad_w = static_cast<int32_t>(g.pad_w);
  const auto h0 = static_cast<int32_t>(ph * g.sh - g.pad_h);
  const int32_t* __restrict__ tap_row = table.row;
  const int32_t* __restrict__ tap_col = table.col;
  for (int32_t pw = 0; pw < static_cast<int32_t>(g.PW); ++pw) {
    const int32_t t = taps[pw * stride];
    const int32_t h = h0 + tap_row[t], w = pw * sw - pad_w + tap_col[t];
    const bool hit = (h >= 0) & (h < H) & (w >= 0) & (w < W);  // & not &&: no branch
    target[pw] = hit ? h * W + w : -1;
  }
}

template <typename Stride>
void flat_targets(const int64_t* __restrict__ indices, Stride stride, const Window& win,
                  int32_t* __restrict__ target, int64_t PW) {
  const int64_t plane = win.g.H * win.g.W;
  const auto W = static_cast<int32_t>(win.g.W);
  const int64_t* __restrict__ col_lo = win.col_lo;
  const int64_t* __restrict__ col_hi = win.col_hi;
  int32_t* __restrict__ found = scratch<int32_t, 1>(PW);
  for (int64_t pw = 0; pw < PW; ++pw) {
    const int64_t idx = indices[pw * stride];
    target[pw] = (idx >= 0) & (idx < plane) ? static_cast<int32_t>(idx) : -1;
    found[pw] = 0;
  }
  for (auto h = static_cast<int32_t>(win.row_lo); h < win.row_hi; ++h) {
    for (int64_t pw = 0; pw < PW; ++pw) {
      const int32_t w = target[pw] - h * W;
      found[pw] |= (w >= static_cast<int32_t>(col_lo[pw])) & (w < static_cast<int32_t>(col_hi[pw]));
    }
  }
  for (int64_t pw = 0; pw < PW; ++pw) target[pw] = found[pw] ? target[pw] : -1;
}

// The int32 targets of pooled row ph's indices (tap_targets or flat_targets).
template <typename I>
void row_targets(const I* indices, int64_t stride, const TapTable& table, const Window& win,
                 int64_t ph, int32_t* target) {
  // Unit index strides spelled out, so the loops vectorize.
  if constexpr (std::is_same_v<I, uint8_t>) {
    if (stride == 1) {
      tap_targets(indices, One{}, table, win.g, ph, target);
    } else {
      tap_targets(indices, stride, table, win.g, ph, target);
    }
  } else if (stride == 1) {
    flat_targets(indices, One{}, win, target, win.g.PW);
  } else {
    flat_targets(indices, stride, win, target, win.g.PW);
  }
}

// One output row h of the windows of a pooled row: o[w] = the value of the window owning
// column w if its target is (h, w), else 0; each element stored once, in order, so the row
// needs no zero-fill first and no scatter. SegNet's 2x2 / 2 (window pw owns exactly columns
// 2pw and 2pw + 1) spelled out, so the loop vectorizes without a table.
template <typename T>
void unpool_row(T* __restrict__ o, int64_t h, int64_t W, const int32_t* __restrict__ target,
                const T* __restrict__ values, const int32_t* __restrict__ owner, bool pairs,
                int64_t PW) {
  const auto base = static_cast<int32_t>(h * W);
  if (pairs) {
    for (int64_t pw = 0; pw < PW; ++pw) {
      const int32_t d = target[pw] - (base + 2 * static_cast<int32_t>(pw));
      const T v = values[pw];
      o[2 * pw] = d == 0 ? v : T(0);
      o[2 * pw + 1] = d == 1 ? v : T(0);
    }
    return;
  }
  for (int64_t w = 0; w < W; ++w) {
    const int32_t pw = std::max(owner[w], 0);
    o[w] = (owner[w] >= 0) & (target[pw] == base + static_cast<int32_t>(w)) ? values[pw] : T(0);
  }
}

// NCHW: units of pooled rows of one plane, each writing the output rows of its bands in
// order (unpool_row). Returns how many indices hit a position of their window. Needs
// H * W < 2^31 (int32 targets).
template <typename T, typename I>
int64_t unpool_disjoint_planes(const at::Tensor& x, const at::Tensor& indices,
                               const PoolGeometry& g, at::Tensor& out) {
  const T* xsrc = x.const_data_ptr<T>();
  const I* isrc = indices.const_data_ptr<I>();
  T* dst = out.mutable_data_ptr<T>();
  const Strides4 sx = strides_of(x), si = strides_of(indices);
  const int64_t C = x.size(1), W = g.W, PH = g.PH, PW = g.PW;
  const DisjointBands b(g);
  // owner[w]: the window whose in-plane columns hold column w, or -1.
  std::vector<int32_t> owner(W, -1);
  for (int64_t pw = 0; pw < PW; ++pw) {
    for (int64_t w = b.col_lo[pw]; w < b.col_hi[pw]; ++w) owner[w] = static_cast<int32_t>(pw);
  }
  const bool pairs = g.kw == 2 && g.sw == 2 && g.pad_w == 0 && W == 2 * PW;
  const TapTable table(g);
  std::atomic<int64_t> hits{0};
  // A unit is a run of pooled rows of one plane whose bands hold about 32 KB of output: few
  // enough units that their bookkeeping costs nothing, enough to balance the threads.
  const int64_t rows_per_unit =
      std::max<int64_t>(1, (32768 / sizeof(T)) / std::max<int64_t>(g.sh * W, 1));
  const int64_t units_per_plane = (PH + rows_per_unit - 1) / rows_per_unit;
  cpu::parallel_for<kWidest>(
      0, x.size(0) * C * units_per_plane, 1, [&](int64_t begin, int64_t end) {
    int64_t task_hits = 0;
    int32_t* target = scratch<int32_t, 0>(PW);
    T* values = scratch<T, 2>(PW);
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t nc = unit / units_per_plane, n = nc / C, c = nc % C;
      const int64_t ph_lo = (unit % units_per_plane) * rows_per_unit;
      const int64_t ph_hi = std::min(ph_lo + rows_per_unit, PH);
      T* plane = dst + nc * g.H * W;
      for (int64_t ph = ph_lo; ph < ph_hi; ++ph) {
        const int64_t h0 = ph * g.sh - g.pad_h;
        const int64_t row_lo = std::max<int64_t>(h0, 0), row_hi = std::min(h0 + g.kh, g.H);
        const T* xp = xsrc + n * sx.n + c * sx.c + ph * sx.h;
        const I* ip = isrc + n * si.n + c * si.c + ph * si.h;
        const Window win{g, h0, row_lo, row_hi, b.col_lo.data(), b.col_hi.data()};
        row_targets(ip, si.w, table, win, ph, target);
        for (int64_t pw = 0; pw < PW; ++pw) task_hits += target[pw] >= 0;
        const T* v = xp;
        if (sx.w != 1) {
          for (int64_t pw = 0; pw < PW; ++pw) values[pw] = xp[pw * sx.w];
          v = values;
        }
        for (int64_t h = b.band[ph]; h < b.band[ph + 1]; ++h) {
          if (h >= row_lo && h < row_hi) {
            unpool_row(plane + h * W, h, W, target, v, owner.data(), pairs, PW);
          } else {
            std::memset(plane + h * W, 0, sizeof(T) * W);
          }
        }
      }
    }
    hits += task_hits;
  });
  return hits;
}

// o[c] = x[c] where indices[c] == mark, else 0, over C channels; returns how many matched.
template <typename T, typename I, typename XStride, typename IStride>
int64_t take_marked(T* __restrict__ o, const T* __restrict__ x, XStride sx,
                    const I* __restrict__ indices, IStride si, I mark, int64_t C) {
  int64_t hits = 0;
  for (int64_t c = 0; c < C; ++c) {
    const bool hit = indices[c * si] == mark;
    const T v = x[c * sx];  // loaded either way: a conditional load would not vectorize
    hits += hit;
    o[c] = hit ? v : T(0);
  }
  return hits;
}

// channels_last: one task per pooled row of one image, a band of all channels. Each window
// position takes, across the channels at once (the loop vectorizes), the value of those
// whose index names it: a gather, so the tap loop replaces a per-element scatter.
template <typename T, typename I>
int64_t unpool_disjoint_channels_last(const at::Tensor& x, const at::Tensor& indices,
                                      const PoolGeometry& g, at::Tensor& out) {
  const T* xsrc = x.const_data_ptr<T>();
  const I* isrc = indices.const_data_ptr<I>();
  T* dst = out.mutable_data_ptr<T>();
  const Strides4 sx = strides_of(x), si = strides_of(indices);
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  const int64_t C = x.size(1), W = g.W, PH = g.PH, PW = g.PW;
  const DisjointBands b(g);
  // The column ranges [lo, hi) no window covers (windows are disjoint and in order).
  std::vector<std::pair<int64_t, int64_t>> gaps;
  for (int64_t pw = 0, w = 0; pw <= PW; ++pw) {
    const int64_t next = pw < PW ? b.col_lo[pw] : W;
    if (next > w) gaps.emplace_back(w, next);
    if (pw < PW) w = std::max(w, b.col_hi[pw]);
  }
  std::atomic<int64_t> hits{0};
  cpu::parallel_for<kWidest>(
      0, x.size(0) * PH, grain_for(PW * g.sh * C), [&](int64_t begin, int64_t end) {
    int64_t task_hits = 0;
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t ph = unit % PH, n = unit / PH;
      T* image = dst + n * g.H * W * C;
      const int64_t h0 = ph * g.sh - g.pad_h;
      const int64_t row_lo = std::max<int64_t>(h0, 0), row_hi = std::min(h0 + g.kh, g.H);
      // Zeros only where no window position writes: rows between windows, columns in gaps.
      for (int64_t h = b.band[ph]; h < b.band[ph + 1]; ++h) {
        T* row = image + h * W * C;
        if (h < row_lo || h >= row_hi) {
          std::memset(row, 0, sizeof(T) * W * C);
          continue;
        }
        for (const auto& [lo, hi] : gaps) std::memset(row + lo * C, 0, sizeof(T) * (hi - lo) * C);
      }
      for (int64_t pw = 0; pw < PW; ++pw) {
        const T* xp = xsrc + n * sx.n + ph * sx.h + pw * sx.w;
        const I* ip = isrc + n * si.n + ph * si.h + pw * si.w;
        const int64_t w0 = pw * g.sw - g.pad_w, corner = row_lo * W + b.col_lo[pw];
        // Flat indices become int32 offsets from the window's first in-plane position once
        // (-1 when too far to be in the window), so the tap loop compares 32-bit lanes, as
        // wide as the values', instead of 64-bit ones once per tap.
        int32_t* offsets = nullptr;
        if constexpr (!kCompact) {
          offsets = scratch<int32_t, 0>(C);
          const int64_t span = (row_hi - row_lo) * W;
          for (int64_t c = 0; c < C; ++c) {
            const int64_t d = ip[c * si.c] - corner;
            offsets[c] = d >= 0 && d < span ? static_cast<int32_t>(d) : -1;
          }
        }
        for (int64_t h = row_lo; h < row_hi; ++h) {
          for (int64_t w = b.col_lo[pw]; w < b.col_hi[pw]; ++w) {
            T* o = image + (h * W + w) * C;
            // Unit channel strides (true channels_last) spelled out, so the loop vectorizes.
            if constexpr (kCompact) {
              const auto tap = static_cast<uint8_t>((h - h0) * g.kw + (w - w0));
              task_hits += si.c == 1 && sx.c == 1 ? take_marked(o, xp, One{}, ip, One{}, tap, C)
                                                  : take_marked(o, xp, sx.c, ip, si.c, tap, C);
            } else {
              const auto offset = static_cast<int32_t>(h * W + w - corner);
              task_hits += sx.c == 1 ? take_marked(o, xp, One{}, offsets, One{}, offset, C)
                                     : take_marked(o, xp, sx.c, offsets, One{}, offset, C);
            }
          }
        }
      }
    }
    hits += task_hits;
  });
  return hits;
}

// Overlapping windows, window-major per output row: the pooled rows covering it are walked
// in pooled-position order, each index that names a position of this row offers its value
// there, and unpool_winner's rule picks among the offers in a scratch row; the output row is
// then written once. Valid because validate() found every index inside its own window.
template <typename T, typename I>
void unpool(const at::Tensor& x, const at::Tensor& indices, const PoolGeometry& g,
            at::Tensor& out) {
  using Acc = at::opmath_type<T>;
  const T* xsrc = x.const_data_ptr<T>();
  const I* isrc = indices.const_data_ptr<I>();
  T* dst = out.mutable_data_ptr<T>();
  const Strides4 sx = strides_of(x), si = strides_of(indices);
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  const Covering rows(g.H, g.kh, g.sh, g.pad_h, 1, g.PH);
  // Compact tap t is row offset tap_h[t], column offset tap_w[t] in its window.
  std::vector<int64_t> tap_h(g.kh * g.kw), tap_w(g.kh * g.kw);
  for (int64_t t = 0; t < g.kh * g.kw; ++t) {
    tap_h[t] = t / g.kw;
    tap_w[t] = t % g.kw;
  }
  for_each_row(out, [&](const OutputRow& r) {
    const int64_t h = r.h, Cr = r.channels, len = g.W * Cr;
    Acc* best = scratch<Acc, 0>(len);
    uint8_t* taken = scratch<uint8_t, 1>(len);
    std::fill(taken, taken + len, uint8_t{0});
    const T* xp = xsrc + r.n * sx.n + r.c0 * sx.c;
    const I* ip = isrc + r.n * si.n + r.c0 * si.c;
    for (int64_t ph = rows.lo[h]; ph < rows.hi[h]; ++ph) {
      const int64_t dh = h - (ph * g.sh - g.pad_h);  // this row's offset in the window
      for (int64_t pw = 0; pw < g.PW; ++pw) {
        for (int64_t c = 0; c < Cr; ++c) {
          const int64_t idx = static_cast<int64_t>(ip[ph * si.h + pw * si.w + c * si.c]);
          int64_t w;
          if constexpr (kCompact) {
            if (tap_h[idx] != dh) continue;
            w = pw * g.sw - g.pad_w + tap_w[idx];
          } else {
            w = idx - h * g.W;
            if (w < 0 || w >= g.W) continue;
          }
          const Acc v = static_cast<Acc>(xp[ph * sx.h + pw * sx.w + c * sx.c]);
          const int64_t k = w * Cr + c;
          if (!taken[k] || (best[k] == best[k] && (v != v || v > best[k]))) {
            taken[k] = 1;
            best[k] = v;
          }
        }
      }
    }
    T* o = dst + r.offset;
    for (int64_t k = 0; k < len; ++k) o[k] = taken[k] ? static_cast<T>(best[k]) : T(0);
  });
}

template <typename T, typename I>
void unpool_backward(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& indices,
                     const PoolGeometry& g, at::Tensor& grad_x) {
  using Acc = at::opmath_type<T>;
  const T* gsrc = grad_out.const_data_ptr<T>();
  const T* xsrc = x.const_data_ptr<T>();
  const I* isrc = indices.const_data_ptr<I>();
  T* dst = grad_x.mutable_data_ptr<T>();
  const Strides4 sg = strides_of(grad_out), sx = strides_of(x), si = strides_of(indices);
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  const Covering rows(g.H, g.kh, g.sh, g.pad_h, 1, g.PH);
  const Covering cols(g.W, g.kw, g.sw, g.pad_w, 1, g.PW);
  for_each_output(grad_x, [&](int64_t n, int64_t c, int64_t ph, int64_t pw, int64_t o) {
    const T* xp = xsrc + n * sx.n + c * sx.c;
    const I* ip = isrc + n * si.n + c * si.c;
    const auto load = [&](int64_t qh, int64_t qw, Acc* value) {
      *value = static_cast<Acc>(xp[qh * sx.h + qw * sx.w]);
      return static_cast<int64_t>(ip[qh * si.h + qw * si.w]);
    };
    const int64_t pos = g.position(static_cast<int64_t>(ip[ph * si.h + pw * si.w]), ph, pw,
                                   kCompact);
    const int64_t h = pos / g.W, w = pos % g.W;
    Acc value;
    const bool wins = unpool_winner<Acc>(g, h, w, rows.lo[h], rows.hi[h], cols.lo[w],
                                         cols.hi[w], kCompact, load, &value) == ph * g.PW + pw;
    dst[o] = wins ? gsrc[n * sg.n + c * sg.c + h * sg.h + w * sg.w] : T(0);
  });
}

// o[pw] = plane[target[pw]] (0 where the target is -1, which the caller then discards);
// returns whether any target was -1.
template <typename T, typename P>
bool gather_targets(T* __restrict__ o, int64_t so_w, const T* __restrict__ plane,
                    const Strides4& sg, int64_t W, const P* __restrict__ target, int64_t PW) {
  P worst = 0;
  for (int64_t pw = 0; pw < PW; ++pw) worst = std::min(worst, target[pw]);
  // A contiguous plane is addressed by the position itself, without a division; unit
  // strides spelled out, so the loops vectorize.
  if (sg.w == 1 && sg.h == W && so_w == 1) {
    for (int64_t pw = 0; pw < PW; ++pw) o[pw] = plane[std::max<P>(target[pw], 0)];
  } else if (sg.w == 1 && sg.h == W) {
    for (int64_t pw = 0; pw < PW; ++pw) o[pw * so_w] = plane[std::max<P>(target[pw], 0)];
  } else {
    for (int64_t pw = 0; pw < PW; ++pw) {
      const int64_t t = std::max<P>(target[pw], 0);
      o[pw * so_w] = plane[t / W * sg.h + t % W * sg.w];
    }
  }
  return worst < 0;
}

// The unpool's backward for disjoint windows (stride >= kernel): no two in-window indices can
// name one position, so each value's gradient is a plain gather at the position its index
// names (vectorized and branch-free: which tap holds a window's maximum is random, and a
// per-value search mispredicted half the time, 7x slower). Flat indices are their own
// positions once found in their window, compact taps are looked up (row_targets, int32:
// needs H * W < 2^31). Returns whether every index lay in its window;
// if not, grad_x is to be discarded and the caller validates.
template <typename T, typename I>
bool unpool_backward_disjoint(const at::Tensor& grad_out, const at::Tensor& indices,
                              const PoolGeometry& g, at::Tensor& grad_x) {
  const T* gsrc = grad_out.const_data_ptr<T>();
  const I* isrc = indices.const_data_ptr<I>();
  T* dst = grad_x.mutable_data_ptr<T>();
  const Strides4 sg = strides_of(grad_out), si = strides_of(indices), so = strides_of(grad_x);
  const int64_t C = indices.size(1), PW = g.PW;
  const DisjointBands b(g);
  const TapTable table(g);
  std::atomic<bool> all_in_window{true};
  cpu::parallel_for<kWidest>(
      0, indices.size(0) * C * g.PH, grain_for(PW), [&](int64_t begin, int64_t end) {
    int32_t* target = scratch<int32_t, 0>(PW);
    bool missed = false;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t ph = row % g.PH, c = row / g.PH % C, n = row / (g.PH * C);
      const int64_t h0 = ph * g.sh - g.pad_h;
      const Window win{g, h0, std::max<int64_t>(h0, 0), std::min(h0 + g.kh, g.H),
                       b.col_lo.data(), b.col_hi.data()};
      row_targets(isrc + n * si.n + c * si.c + ph * si.h, si.w, table, win, ph, target);
      missed |= gather_targets(dst + n * so.n + c * so.c + ph * so.h, so.w,
                               gsrc + n * sg.n + c * sg.c, sg, g.W, target, PW);
    }
    if (missed) all_in_window = false;
  });
  return all_in_window;
}

std::tuple<at::Tensor, at::Tensor> max_pool2d_with_indices_cpu(
    const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode, bool compact) {
  const PoolGeometry g = check_pool(x, kernel_size, stride, padding, dilation, ceil_mode,
                                    compact, "max_pool2d_with_indices");
  at::Tensor out = empty_planes(x, g.PH, g.PW, x.scalar_type());
  at::Tensor indices = empty_planes(x, g.PH, g.PW, compact ? at::kByte : at::kLong);
  // pool_channels_last's int32 marks need H * W < 2^31.
  const bool by_channels = is_channels_last(out) && g.H * g.W < std::numeric_limits<int32_t>::max();
  PYIMG_DISPATCH_POOL(x.scalar_type(), compact, "max_pool2d_with_indices_cpu", [&] {
    if (by_channels) {
      pool_channels_last<scalar_t, index_t>(x, g, out, indices);
    } else {
      pool<scalar_t, index_t>(x, g, out, indices);
    }
  });
  return {out, indices};
}

at::Tensor max_pool2d_with_indices_backward_cpu(const at::Tensor& grad_out,
                                                const at::Tensor& indices,
                                                at::IntArrayRef input_size,
                                                at::IntArrayRef kernel_size,
                                                at::IntArrayRef stride, at::IntArrayRef padding,
                                                at::IntArrayRef dilation, bool compact) {
  const PoolGeometry g = check_pool_backward(grad_out, indices, input_size, kernel_size, stride,
                                             padding, dilation, compact);
  at::Tensor grad_x = empty_planes(grad_out, g.H, g.W, grad_out.scalar_type());
  PYIMG_DISPATCH_POOL(grad_out.scalar_type(), compact, "max_pool2d_with_indices_backward_cpu",
                      [&] { pool_backward<scalar_t, index_t>(grad_out, indices, g, grad_x); });
  return grad_x;
}

IndexCheck validate_cpu(const at::Tensor& indices, const PoolGeometry& g, bool compact) {
  return compact ? validate<uint8_t>(indices, g) : validate<int64_t>(indices, g);
}

at::Tensor max_unpool2d_cpu(const at::Tensor& x, const at::Tensor& indices,
                            at::IntArrayRef kernel_size, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef output_size, bool compact) {
  const PoolGeometry g = check_unpool(x, indices, kernel_size, stride, padding, output_size,
                                      compact, "max_unpool2d");
  at::Tensor out = empty_planes(x, g.H, g.W, x.scalar_type());
  // int32 positions (unpool_disjoint_*) need H * W < 2^31.
  if (g.sh >= g.kh && g.sw >= g.kw && out.numel() > 0 && g.windows_meet_plane() &&
      g.H * g.W < std::numeric_limits<int32_t>::max()) {
    int64_t hits = 0;
    PYIMG_DISPATCH_POOL(x.scalar_type(), compact, "max_unpool2d_cpu", [&] {
      hits = is_channels_last(out)
                 ? unpool_disjoint_channels_last<scalar_t, index_t>(x, indices, g, out)
                 : unpool_disjoint_planes<scalar_t, index_t>(x, indices, g, out);
    });
    if (hits == indices.numel()) return out;
  }
  // Some index is invalid (raise) or outside its window (scatter), or the windows overlap.
  if (validate_cpu(indices, g, compact) == IndexCheck::kOutsideWindow) {
    return unpool_scatter(x, indices, g);
  }
  PYIMG_DISPATCH_POOL(x.scalar_type(), compact, "max_unpool2d_cpu",
                      [&] { unpool<scalar_t, index_t>(x, indices, g, out); });
  return out;
}

at::Tensor max_unpool2d_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                     const at::Tensor& indices, at::IntArrayRef kernel_size,
                                     at::IntArrayRef stride, at::IntArrayRef padding,
                                     bool compact) {
  const PoolGeometry g =
      check_unpool_backward(grad_out, x, indices, kernel_size, stride, padding, compact);
  at::Tensor grad_x = empty_planes(x, x.size(2), x.size(3), x.scalar_type());
  // int32 positions (unpool_backward_disjoint) need H * W < 2^31.
  if (g.sh >= g.kh && g.sw >= g.kw && g.H * g.W < std::numeric_limits<int32_t>::max()) {
    bool gathered = false;
    PYIMG_DISPATCH_POOL(x.scalar_type(), compact, "max_unpool2d_backward_cpu", [&] {
      gathered = unpool_backward_disjoint<scalar_t, index_t>(grad_out, indices, g, grad_x);
    });
    if (gathered) return grad_x;
  }
  // Some index is invalid (raise) or outside its window (scatter), or the windows overlap.
  if (validate_cpu(indices, g, compact) == IndexCheck::kOutsideWindow) {
    return unpool_scatter_backward(grad_out, x, indices, g);
  }
  PYIMG_DISPATCH_POOL(x.scalar_type(), compact, "max_unpool2d_backward_cpu",
                      [&] { unpool_backward<scalar_t, index_t>(grad_out, x, indices, g, grad_x); });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, CPU, m) {
  m.impl("max_pool2d_with_indices", &max_pool2d_with_indices_cpu);
  m.impl("max_pool2d_with_indices_backward", &max_pool2d_with_indices_backward_cpu);
  m.impl("max_unpool2d", &max_unpool2d_cpu);
  m.impl("max_unpool2d_backward", &max_unpool2d_backward_cpu);
}

}  // namespace pyimg
