// CUDA kernels of max_pool2d_with_indices, max_unpool2d and their backwards.
//
// One thread per output element, in the output's memory order (consecutive threads write
// consecutive addresses, so stores coalesce); inputs are gathered through their strides.
// Every kernel is a gather: each output element is written once, by one thread, from a fixed
// sequence of reads, so results are deterministic and there is no zero-fill pass and no
// atomic on data. Unpool checks its indices on the device, with no host sync: an index naming
// no position of the plane trips a device-side assert (as stock's kernels do), and flat
// indices outside their own window, which the gather cannot see, are fixed up by a second
// kernel that does nothing unless the first one flagged such an index.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/zeros.h>
#include <c10/macros/Macros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <type_traits>

#include "ops/common.h"
#include "ops/cuda/grid.cuh"
#include "ops/max_pool.h"
#include "ops/strides.h"

namespace pyimg {
namespace {

// (n, c, h, w) of offset o in a contiguous (N, C, H, W) tensor of either memory format.
struct Coords {
  int64_t n, c, h, w;
};

__device__ __forceinline__ Coords coords_of(int64_t o, int64_t C, int64_t H, int64_t W,
                                            bool channels_last) {
  if (channels_last) {
    const int64_t c = o % C, w = (o / C) % W, h = (o / (C * W)) % H;
    return {o / (C * W * H), c, h, w};
  }
  const int64_t w = o % W, h = (o / W) % H, c = (o / (W * H)) % C;
  return {o / (W * H * C), c, h, w};
}

// Stock's rule: taps in row-major order, the first of equal maxima, the last NaN.
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    pool_kernel(T* __restrict__ out, I* __restrict__ indices, const T* __restrict__ x,
                Strides4 s, PoolGeometry g, int64_t C, int64_t total, bool channels_last) {
  using Acc = at::opmath_type<T>;
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  PYIMG_GRID_STRIDE_LOOP(o, total) {
    const Coords p = coords_of(o, C, g.PH, g.PW, channels_last);
    const T* plane = x + p.n * s.n + p.c * s.c;
    const int64_t h0 = p.h * g.sh - g.pad_h, w0 = p.w * g.sw - g.pad_w;
    int64_t ki0 = 0, kj0 = 0;
    while (h0 + ki0 * g.dh < 0) ++ki0;
    while (w0 + kj0 * g.dw < 0) ++kj0;
    Acc best = -INFINITY;
    int64_t best_ki = ki0, best_kj = kj0;
    for (int64_t ki = ki0; ki < g.kh && h0 + ki * g.dh < g.H; ++ki) {
      for (int64_t kj = kj0; kj < g.kw && w0 + kj * g.dw < g.W; ++kj) {
        const Acc v = static_cast<Acc>(plane[(h0 + ki * g.dh) * s.h + (w0 + kj * g.dw) * s.w]);
        if (v > best || v != v) {
          best = v;
          best_ki = ki;
          best_kj = kj;
        }
      }
    }
    out[o] = static_cast<T>(best);
    indices[o] = kCompact ? static_cast<I>(best_ki * g.kw + best_kj)
                          : static_cast<I>((h0 + best_ki * g.dh) * g.W + w0 + best_kj * g.dw);
  }
}

// Sum, in pooled-position order, of the gradients of the windows whose index names (h, w).
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    pool_backward_kernel(T* __restrict__ grad_x, const T* __restrict__ grad_out, Strides4 sg,
                         const I* __restrict__ indices, Strides4 si, PoolGeometry g, int64_t C,
                         int64_t total, bool channels_last) {
  using Acc = at::opmath_type<T>;
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  PYIMG_GRID_STRIDE_LOOP(o, total) {
    const Coords p = coords_of(o, C, g.H, g.W, channels_last);
    int64_t lo_h, hi_h, lo_w, hi_w;
    covering(p.h, g.kh, g.sh, g.pad_h, g.dh, g.PH, &lo_h, &hi_h);
    covering(p.w, g.kw, g.sw, g.pad_w, g.dw, g.PW, &lo_w, &hi_w);
    const T* gp = grad_out + p.n * sg.n + p.c * sg.c;
    const I* ip = indices + p.n * si.n + p.c * si.c;
    const int64_t pos = p.h * g.W + p.w;
    Acc sum = Acc(0);
    for (int64_t ph = lo_h; ph < hi_h; ++ph) {
      for (int64_t pw = lo_w; pw < hi_w; ++pw) {
        const int64_t idx = static_cast<int64_t>(ip[ph * si.h + pw * si.w]);
        if (g.position(idx, ph, pw, kCompact) == pos) {
          sum += static_cast<Acc>(gp[ph * sg.h + pw * sg.w]);
        }
      }
    }
    grad_x[o] = static_cast<T>(sum);
  }
}

template <typename T, typename I>
struct PooledLoad {
  const T* x;
  const I* indices;
  int64_t xh, xw, ih, iw;
  __device__ int64_t operator()(int64_t ph, int64_t pw, at::opmath_type<T>* value) const {
    *value = static_cast<at::opmath_type<T>>(x[ph * xh + pw * xw]);
    return static_cast<int64_t>(indices[ph * ih + pw * iw]);
  }
};

template <typename T, typename I>
__device__ __forceinline__ PooledLoad<T, I> pooled_load(const T* x, Strides4 sx, const I* indices,
                                                        Strides4 si, int64_t n, int64_t c) {
  return {x + n * sx.n + c * sx.c, indices + n * si.n + c * si.c, sx.h, sx.w, si.h, si.w};
}

// The position index idx of pooled element (ph, pw) names, checked: naming no position of
// the plane trips the device-side assert; a flat index outside its window raises *outside.
__device__ __forceinline__ int64_t checked_position(const PoolGeometry& g, int64_t idx,
                                                   int64_t ph, int64_t pw, bool compact,
                                                   int* outside) {
  const int64_t pos = g.position(idx, ph, pw, compact);
  CUDA_KERNEL_ASSERT_MSG(pos >= 0, "max_unpool2d: found an invalid max index");
  if (!compact && pos >= 0 && !g.in_window(pos, ph, pw)) *outside = 1;
  return pos;
}

// PooledLoad that checks every index it loads.
template <typename T, typename I>
struct CheckedLoad {
  PooledLoad<T, I> load;
  PoolGeometry g;
  int* outside;
  __device__ int64_t operator()(int64_t ph, int64_t pw, at::opmath_type<T>* value) const {
    const int64_t idx = load(ph, pw, value);
    checked_position(g, idx, ph, pw, std::is_same_v<I, uint8_t>, outside);
    return idx;
  }
};

// kVec consecutive output elements per thread, stored as one 16-byte vector when kVec > 1
// (the caller sees that the contiguous dimension is a multiple of kVec).
template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) Pack {
  T v[kVec];
};

template <typename T, typename I, int kVec>
__global__ void __launch_bounds__(kThreads)
    unpool_kernel(T* __restrict__ out, const T* __restrict__ x, Strides4 sx,
                  const I* __restrict__ indices, Strides4 si, PoolGeometry g, int64_t C,
                  int64_t packs, bool channels_last, int* outside) {
  using Acc = at::opmath_type<T>;
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  PYIMG_GRID_STRIDE_LOOP(v, packs) {
    Pack<T, kVec> pack;
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      const Coords p = coords_of(v * kVec + j, C, g.H, g.W, channels_last);
      int64_t lo_h, hi_h, lo_w, hi_w;
      covering(p.h, g.kh, g.sh, g.pad_h, 1, g.PH, &lo_h, &hi_h);
      covering(p.w, g.kw, g.sw, g.pad_w, 1, g.PW, &lo_w, &hi_w);
      const CheckedLoad<T, I> load{pooled_load(x, sx, indices, si, p.n, p.c), g, outside};
      Acc value;
      unpool_winner<Acc>(g, p.h, p.w, lo_h, hi_h, lo_w, hi_w, kCompact, load, &value);
      pack.v[j] = static_cast<T>(value);
    }
    reinterpret_cast<Pack<T, kVec>*>(out)[v] = pack;
  }
}

// After unpool_kernel: each pooled element whose flat index leaves its window finds the
// winner of the position it names over the whole pooled plane (unpool_winner's rule), and
// writes there if it is that winner. Exits at once unless *outside is set or check_all asks
// for a pass over every index (windows that miss the plane, which no gather thread reads).
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    unpool_fixup_kernel(T* __restrict__ out, Strides4 so, const T* __restrict__ x, Strides4 sx,
                        const I* __restrict__ indices, Strides4 si, PoolGeometry g, int64_t C,
                        int64_t total, const int* outside, bool check_all) {
  using Acc = at::opmath_type<T>;
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  if (!check_all && *outside == 0) return;
  PYIMG_GRID_STRIDE_LOOP(e, total) {
    const Coords p = coords_of(e, C, g.PH, g.PW, false);
    const auto load = pooled_load(x, sx, indices, si, p.n, p.c);
    Acc own;
    int unused = 0;
    const int64_t pos = checked_position(g, load(p.h, p.w, &own), p.h, p.w, kCompact, &unused);
    if (pos < 0 || kCompact || g.in_window(pos, p.h, p.w)) continue;
    const int64_t h = pos / g.W, w = pos % g.W;
    Acc value;
    if (unpool_winner<Acc>(g, h, w, 0, g.PH, 0, g.PW, kCompact, load, &value) ==
        p.h * g.PW + p.w) {
      out[p.n * so.n + p.c * so.c + h * so.h + w * so.w] = static_cast<T>(value);
    }
  }
}

// Each pooled element gets the gradient at the position its index names if it wins there.
// With full_plane false the competitors are the windows covering that position (exact when
// every index lies in its window; an index that does not raises *outside); with full_plane
// true, every pooled element of the plane, run only when *outside is set.
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    unpool_backward_kernel(T* __restrict__ grad_x, const T* __restrict__ grad_out, Strides4 sg,
                           const T* __restrict__ x, Strides4 sx, const I* __restrict__ indices,
                           Strides4 si, PoolGeometry g, int64_t C, int64_t total,
                           bool channels_last, int* outside, bool full_plane) {
  using Acc = at::opmath_type<T>;
  constexpr bool kCompact = std::is_same_v<I, uint8_t>;
  if (full_plane && *outside == 0) return;
  PYIMG_GRID_STRIDE_LOOP(o, total) {
    const Coords p = coords_of(o, C, g.PH, g.PW, channels_last);
    const auto load = pooled_load(x, sx, indices, si, p.n, p.c);
    Acc own;
    const int64_t pos = checked_position(g, load(p.h, p.w, &own), p.h, p.w, kCompact, outside);
    const int64_t h = pos / g.W, w = pos % g.W;
    int64_t lo_h = 0, hi_h = g.PH, lo_w = 0, hi_w = g.PW;
    if (!full_plane) {
      covering(h, g.kh, g.sh, g.pad_h, 1, g.PH, &lo_h, &hi_h);
      covering(w, g.kw, g.sw, g.pad_w, 1, g.PW, &lo_w, &hi_w);
    }
    Acc value;
    const bool wins = pos >= 0 && unpool_winner<Acc>(g, h, w, lo_h, hi_h, lo_w, hi_w, kCompact,
                                                     load, &value) == p.h * g.PW + p.w;
    grad_x[o] = wins ? grad_out[p.n * sg.n + p.c * sg.c + h * sg.h + w * sg.w] : T(0);
  }
}

// The flag the unpool kernels raise on a flat index outside its window.
at::Tensor outside_flag(const at::Tensor& like) {
  return at::zeros({1}, like.options().dtype(at::kInt));
}

std::tuple<at::Tensor, at::Tensor> max_pool2d_with_indices_cuda(
    const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode, bool compact) {
  const PoolGeometry g = check_pool(x, kernel_size, stride, padding, dilation, ceil_mode,
                                    compact, "max_pool2d_with_indices");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = empty_planes(x, g.PH, g.PW, x.scalar_type());
  at::Tensor indices = empty_planes(x, g.PH, g.PW, compact ? at::kByte : at::kLong);
  const int64_t total = out.numel();
  if (total == 0) return {out, indices};
  PYIMG_DISPATCH_POOL(x.scalar_type(), compact, "max_pool2d_with_indices_cuda", [&] {
    pool_kernel<scalar_t, index_t>
        <<<grid_size(total), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            out.mutable_data_ptr<scalar_t>(), indices.mutable_data_ptr<index_t>(),
            x.const_data_ptr<scalar_t>(), strides_of(x), g, x.size(1), total,
            is_channels_last(out));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out, indices};
}

at::Tensor max_pool2d_with_indices_backward_cuda(const at::Tensor& grad_out,
                                                 const at::Tensor& indices,
                                                 at::IntArrayRef input_size,
                                                 at::IntArrayRef kernel_size,
                                                 at::IntArrayRef stride, at::IntArrayRef padding,
                                                 at::IntArrayRef dilation, bool compact) {
  const PoolGeometry g = check_pool_backward(grad_out, indices, input_size, kernel_size, stride,
                                             padding, dilation, compact);
  const c10::cuda::CUDAGuard guard(grad_out.device());
  at::Tensor grad_x = empty_planes(grad_out, g.H, g.W, grad_out.scalar_type());
  const int64_t total = grad_x.numel();
  if (total == 0) return grad_x;
  PYIMG_DISPATCH_POOL(grad_out.scalar_type(), compact, "max_pool2d_with_indices_backward_cuda",
                      [&] {
                        pool_backward_kernel<scalar_t, index_t>
                            <<<grid_size(total), kThreads, 0,
                               c10::cuda::getCurrentCUDAStream()>>>(
                                grad_x.mutable_data_ptr<scalar_t>(),
                                grad_out.const_data_ptr<scalar_t>(), strides_of(grad_out),
                                indices.const_data_ptr<index_t>(), strides_of(indices), g,
                                grad_out.size(1), total, is_channels_last(grad_x));
                        C10_CUDA_KERNEL_LAUNCH_CHECK();
                      });
  return grad_x;
}

// Output elements per thread: 16 bytes' worth when the contiguous dimension (C for
// channels_last, else W) holds whole vectors of them.
template <typename T>
int vector_width(const at::Tensor& out) {
  const int64_t inner = is_channels_last(out) ? out.size(1) : out.size(3);
  constexpr int kVec = 16 / sizeof(T);
  return kVec > 1 && inner % kVec == 0 &&
                 reinterpret_cast<uintptr_t>(out.const_data_ptr()) % 16 == 0
             ? kVec
             : 1;
}

at::Tensor max_unpool2d_cuda(const at::Tensor& x, const at::Tensor& indices,
                             at::IntArrayRef kernel_size, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef output_size, bool compact) {
  const PoolGeometry g = check_unpool(x, indices, kernel_size, stride, padding, output_size,
                                      compact, "max_unpool2d");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = empty_planes(x, g.H, g.W, x.scalar_type());
  if (x.numel() == 0) return out.zero_();
  TORCH_CHECK(out.numel() > 0, "max_unpool2d: found an invalid max index (the output plane is ",
              g.H, "x", g.W, ")");
  const at::Tensor outside = outside_flag(x);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  PYIMG_DISPATCH_POOL(x.scalar_type(), compact, "max_unpool2d_cuda", [&] {
    const auto launch = [&](auto vec) {
      constexpr int kVec = decltype(vec)::value;
      const int64_t packs = out.numel() / kVec;
      unpool_kernel<scalar_t, index_t, kVec><<<grid_size(packs), kThreads, 0, stream>>>(
          out.mutable_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), strides_of(x),
          indices.const_data_ptr<index_t>(), strides_of(indices), g, x.size(1), packs,
          is_channels_last(out), outside.mutable_data_ptr<int>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (vector_width<scalar_t>(out) > 1) {
      launch(std::integral_constant<int, 16 / sizeof(scalar_t)>{});
    } else {
      launch(std::integral_constant<int, 1>{});
    }
    unpool_fixup_kernel<scalar_t, index_t><<<grid_size(x.numel()), kThreads, 0, stream>>>(
        out.mutable_data_ptr<scalar_t>(), strides_of(out), x.const_data_ptr<scalar_t>(),
        strides_of(x), indices.const_data_ptr<index_t>(), strides_of(indices), g, x.size(1),
        x.numel(), outside.const_data_ptr<int>(), !g.windows_meet_plane());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor max_unpool2d_backward_cuda(const at::Tensor& grad_out, const at::Tensor& x,
                                      const at::Tensor& indices, at::IntArrayRef kernel_size,
                                      at::IntArrayRef stride, at::IntArrayRef padding,
                                      bool compact) {
  const PoolGeometry g =
      check_unpool_backward(grad_out, x, indices, kernel_size, stride, padding, compact);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor grad_x = empty_planes(x, x.size(2), x.size(3), x.scalar_type());
  const int64_t total = grad_x.numel();
  if (total == 0) return grad_x;
  const at::Tensor outside = outside_flag(x);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  PYIMG_DISPATCH_POOL(x.scalar_type(), compact, "max_unpool2d_backward_cuda", [&] {
    // The covering-windows pass, then the whole-plane pass that runs only if it was needed.
    for (const bool full_plane : {false, true}) {
      unpool_backward_kernel<scalar_t, index_t><<<grid_size(total), kThreads, 0, stream>>>(
          grad_x.mutable_data_ptr<scalar_t>(), grad_out.const_data_ptr<scalar_t>(),
          strides_of(grad_out), x.const_data_ptr<scalar_t>(), strides_of(x),
          indices.const_data_ptr<index_t>(), strides_of(indices), g, x.size(1), total,
          is_channels_last(grad_x), outside.mutable_data_ptr<int>(), full_plane);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, CUDA, m) {
  m.impl("max_pool2d_with_indices", &max_pool2d_with_indices_cuda);
  m.impl("max_pool2d_with_indices_backward", &max_pool2d_with_indices_backward_cuda);
  m.impl("max_unpool2d", &max_unpool2d_cuda);
  m.impl("max_unpool2d_backward", &max_unpool2d_backward_cuda);
}

}  // namespace pyimg
