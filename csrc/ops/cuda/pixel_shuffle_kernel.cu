// CUDA kernels of pixel_shuffle, pixel_unshuffle and the fused backward.
//
// Each thread produces kVec consecutive elements of one output row (16 bytes) and writes them
// with a single vector store; the input side is gathered through its strides, so non-contiguous
// and channels_last inputs need no copy. Consecutive threads cover consecutive output bytes, so
// the stores are fully coalesced; the gathers of a warp fall in a few contiguous input
// segments (r rows for NCHW, r*r-strided channels of one pixel for channels_last) and are
// served by L1. The layout and activation are run-time switches that are uniform across the
// grid, which keeps the number of instantiations (and the build time) small.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>

#include "ops/cuda/grid.cuh"
#include "ops/pixel_shuffle.h"
#include "ops/strides.h"

namespace pyimg {
namespace {

template <typename T>
constexpr int vec_width() {
  return 16 / static_cast<int>(sizeof(T));
}

template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) Pack {
  T v[kVec];
};

// Row geometry of the output: rows of row_len contiguous elements, split into kVec-wide chunks.
struct Rows {
  int64_t row_len;
  int64_t chunks_per_row;
  int64_t total_chunks;
  bool vector_store;  // every chunk is whole and 16-byte aligned

  struct Chunk {
    int64_t row, first;  // output row, and index in it of the chunk's first element
    int count;           // elements in the chunk: kVec, or fewer at the end of a row
  };

  template <int kVec>
  __device__ Chunk chunk(int64_t t) const {
    const int64_t row = t / chunks_per_row;
    const int64_t first = (t - row * chunks_per_row) * kVec;
    return {row, first, static_cast<int>(min(int64_t{kVec}, row_len - first))};
  }
};

template <typename T>
Rows rows_of(const at::Tensor& out, bool channels_last) {
  constexpr int kVec = vec_width<T>();
  const int64_t row_len = channels_last ? out.size(1) : out.size(3);
  const int64_t chunks = (row_len + kVec - 1) / kVec;
  const bool aligned = reinterpret_cast<std::uintptr_t>(out.const_data_ptr()) % 16 == 0;
  return {row_len, chunks, out.numel() / row_len * chunks, aligned && row_len % kVec == 0};
}

template <typename T, int kVec>
__device__ __forceinline__ void store_chunk(T* out, const T (&v)[kVec], int count,
                                            bool vector_store) {
  if (vector_store) {
    *reinterpret_cast<Pack<T, kVec>*>(out) = *reinterpret_cast<const Pack<T, kVec>*>(v);
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      if (k < count) out[k] = v[k];
    }
  }
}

// small (N, Co*r*r, H, W) -> large (N, Co, H*r, W*r); fused: act(x + bias[c]).
template <typename T, bool kFused>
__global__ void __launch_bounds__(kThreads)
    shuffle_kernel(T* __restrict__ out, const T* __restrict__ x, Strides4 s, int64_t Co,
                   int64_t Ho, int64_t Wo, int64_t r, bool channels_last, Rows rows,
                   EpilogueView<T, at::opmath_type<T>> e) {
  using Acc = at::opmath_type<T>;
  constexpr int kVec = vec_width<T>();
  const int64_t rr = r * r;
  const auto value = [&e](T v, int64_t c, int64_t co) -> T {
    if constexpr (kFused) {
      return static_cast<T>(activate<Acc>(e.act, static_cast<Acc>(v) + e.bias_at(c), e.alpha(co)));
    } else {
      return v;
    }
  };
  PYIMG_GRID_STRIDE_LOOP(t, rows.total_chunks) {
    const auto [row, k0, count] = rows.chunk<kVec>(t);
    T v[kVec];
    if (channels_last) {
      const int64_t wo = row % Wo, ho = (row / Wo) % Ho, n = row / (Wo * Ho);
      const int64_t ij = (ho % r) * r + wo % r;
      const T* in = x + n * s.n + (ho / r) * s.h + (wo / r) * s.w + ij * s.c;
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        const int64_t co = k0 + k;
        if (k < count) v[k] = value(in[co * rr * s.c], co * rr + ij, co);
      }
    } else {
      const int64_t ho = row % Ho, co = (row / Ho) % Co, n = row / (Ho * Co);
      const int64_t c0 = co * rr + (ho % r) * r;
      const T* in = x + n * s.n + c0 * s.c + (ho / r) * s.h;
      int64_t w = k0 / r, j = k0 % r;
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        if (k < count) v[k] = value(in[j * s.c + w * s.w], c0 + j, co);
        if (++j == r) {
          j = 0;
          ++w;
        }
      }
    }
    store_chunk<T, kVec>(out + row * rows.row_len + k0, v, count, rows.vector_store);
  }
}

// large (N, Co, H*r, W*r) -> small (N, Co*r*r, H, W); fused: g * act'(x + bias[c]), the
// gradient of pixel_shuffle's pre-activation, with x the forward's small input.
template <typename T, bool kFused>
__global__ void __launch_bounds__(kThreads)
    unshuffle_kernel(T* __restrict__ out, const T* __restrict__ large, Strides4 L,
                     const T* __restrict__ x, Strides4 s, int64_t C, int64_t H, int64_t W,
                     int64_t r, bool channels_last, Rows rows,
                     EpilogueView<T, at::opmath_type<T>> e) {
  using Acc = at::opmath_type<T>;
  constexpr int kVec = vec_width<T>();
  const int64_t rr = r * r;
  const auto value = [&e](T g, const T* xp, int64_t c, int64_t co) -> T {
    if constexpr (kFused) {
      const Acc z = static_cast<Acc>(*xp) + e.bias_at(c);
      return static_cast<T>(static_cast<Acc>(g) * activation_grad<Acc>(e.act, z, e.alpha(co)));
    } else {
      return g;
    }
  };
  PYIMG_GRID_STRIDE_LOOP(t, rows.total_chunks) {
    const auto [row, k0, count] = rows.chunk<kVec>(t);
    T v[kVec];
    if (channels_last) {
      const int64_t w = row % W, h = (row / W) % H, n = row / (W * H);
      const T* in = large + n * L.n + h * r * L.h + w * r * L.w;
      const T* xp = kFused ? x + n * s.n + h * s.h + w * s.w : nullptr;
      int64_t c = k0, co = c / rr, i = (c % rr) / r, j = c % r;
#pragma unroll
      for (int k = 0; k < kVec; ++k, ++c) {
        if (k < count) {
          v[k] = value(in[co * L.c + i * L.h + j * L.w], kFused ? xp + c * s.c : nullptr, c, co);
        }
        if (++j == r) {
          j = 0;
          if (++i == r) {
            i = 0;
            ++co;
          }
        }
      }
    } else {
      const int64_t h = row % H, c = (row / H) % C, n = row / (H * C);
      const int64_t co = c / rr, i = (c % rr) / r, j = c % r;
      const T* in = large + n * L.n + co * L.c + (h * r + i) * L.h + j * L.w;
      const T* xp = kFused ? x + n * s.n + c * s.c + h * s.h : nullptr;
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        const int64_t w = k0 + k;
        if (k < count) v[k] = value(in[w * r * L.w], kFused ? xp + w * s.w : nullptr, c, co);
      }
    }
    store_chunk<T, kVec>(out + row * rows.row_len + k0, v, count, rows.vector_store);
  }
}

template <typename T, bool kFused>
void launch_shuffle(const at::Tensor& x, int64_t r, const FusedEpilogue& epilogue,
                    at::Tensor& out) {
  const bool cl = is_channels_last(out);
  const Rows rows = rows_of<T>(out, cl);
  shuffle_kernel<T, kFused>
      <<<grid_size(rows.total_chunks), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          out.mutable_data_ptr<T>(), x.const_data_ptr<T>(), strides_of(x), out.size(1),
          out.size(2), out.size(3), r, cl, rows, view_of<T, at::opmath_type<T>>(epilogue));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T, bool kFused>
void launch_unshuffle(const at::Tensor& large, const at::Tensor& x, int64_t r,
                      const FusedEpilogue& epilogue, at::Tensor& out) {
  const bool cl = is_channels_last(out);
  const Rows rows = rows_of<T>(out, cl);
  unshuffle_kernel<T, kFused>
      <<<grid_size(rows.total_chunks), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          out.mutable_data_ptr<T>(), large.const_data_ptr<T>(), strides_of(large),
          kFused ? x.const_data_ptr<T>() : nullptr, kFused ? strides_of(x) : Strides4{0, 0, 0, 0},
          out.size(1), out.size(2), out.size(3), r, cl, rows,
          view_of<T, at::opmath_type<T>>(epilogue));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor pixel_shuffle_cuda(const at::Tensor& x, int64_t r,
                              const std::optional<at::Tensor>& bias, c10::string_view activation,
                              const std::optional<at::Tensor>& weight, double negative_slope) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto [epilogue, out] = prepare_shuffle(x, r, bias, activation, weight, negative_slope);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pixel_shuffle_cuda",
                                  [&] {
                                    if (epilogue.is_identity()) {
                                      launch_shuffle<scalar_t, false>(x, r, epilogue, out);
                                    } else {
                                      launch_shuffle<scalar_t, true>(x, r, epilogue, out);
                                    }
                                  });
  return out;
}

at::Tensor pixel_unshuffle_cuda(const at::Tensor& x, int64_t r) {
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = prepare_unshuffle(x, r);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "pixel_unshuffle_cuda",
      [&] { launch_unshuffle<scalar_t, false>(x, x, r, FusedEpilogue{}, out); });
  return out;
}

at::Tensor pixel_shuffle_backward_cuda(const at::Tensor& grad_out, const at::Tensor& x, int64_t r,
                                       const std::optional<at::Tensor>& bias,
                                       c10::string_view activation,
                                       const std::optional<at::Tensor>& weight,
                                       double negative_slope) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto [epilogue, out] =
      prepare_shuffle_backward(grad_out, x, r, bias, activation, weight, negative_slope);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "pixel_shuffle_backward_cuda",
      [&] { launch_unshuffle<scalar_t, true>(grad_out, x, r, epilogue, out); });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, CUDA, m) {
  m.impl("pixel_shuffle", &pixel_shuffle_cuda);
  m.impl("pixel_unshuffle", &pixel_unshuffle_cuda);
  m.impl("pixel_shuffle_backward", &pixel_shuffle_backward_cuda);
}

}  // namespace pyimg
