// CUDA kernels of batch_norm_stats, bn_prelu and bn_prelu_backward, and of training's update of
// the running statistics (update_running_stats, batch_norm.h).
//
// Reductions run in two launches with no atomics, so results are deterministic: a partial
// kernel on a (channel tiles, S) grid, where each block reduces one span of every channel of
// its tile (Welford per thread, then Chan et al.'s pairwise combination over a fixed tree in
// shared memory), and a finalize kernel, one thread per channel, that combines the S partials
// in order. Block shape follows the layout so that loads coalesce: 256 threads along the values
// of one channel for NCHW, 32 channels x 8 pixels for channels_last. The elementwise passes are
// grid-stride loops over the output in memory order.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <utility>

#include "ops/activation.h"
#include "ops/batch_norm.h"
#include "ops/common.h"
#include "ops/cuda/grid.cuh"

namespace pyimg {
namespace {

constexpr int64_t kValuesPerBlock = 16384;  // values of one channel a partial block covers
constexpr int64_t kMaxSpans = 256;

// Where the values of channel c live: value j (in N, H, W order) of an input contiguous in its
// layout.
struct Layout {
  int64_t C, HW, M;  // M = N * HW values per channel
  bool channels_last;

  __device__ int64_t offset(int64_t c, int64_t j) const {
    return channels_last ? j * C + c : (j / HW * C + c) * HW + j % HW;
  }
  __device__ int64_t channel_at(int64_t i) const {
    return channels_last ? i % C : i / HW % C;
  }
};

struct Grid {
  dim3 blocks, threads;
  int64_t spans, span;
};

Grid reduction_grid(const Layout& l) {
  const int tile = l.channels_last ? 32 : 1;
  const int64_t spans =
      std::clamp<int64_t>((l.M + kValuesPerBlock - 1) / kValuesPerBlock, 1, kMaxSpans);
  const int64_t span = (l.M + spans - 1) / spans;
  return {dim3(static_cast<unsigned>((l.C + tile - 1) / tile), static_cast<unsigned>(spans)),
          dim3(tile, kThreads / tile), spans, span};
}

template <typename Acc>
struct Moments {
  Acc n, mean, m2;

  __device__ void add(Acc v) {
    n += Acc(1);
    const Acc d = v - mean;
    mean += d / n;
    m2 += d * (v - mean);
  }
  // Chan, Golub & LeVeque's pairwise update.
  __device__ void merge(const Moments& o) {
    const Acc total = n + o.n;
    if (total == Acc(0)) return;
    const Acc delta = o.mean - mean;
    mean += delta * o.n / total;
    m2 += o.m2 + delta * delta * n * o.n / total;
    n = total;
  }
};

template <typename Acc>
struct Sums {
  Acc dz, dz_xc, negz;

  __device__ void merge(const Sums& o) {
    dz += o.dz;
    dz_xc += o.dz_xc;
    negz += o.negz;
  }
};

// Combines the blockDim.y values of each threadIdx.x column, in a fixed tree; row 0 ends with
// the result.
template <typename R>
__device__ R block_combine(R r, R* shared) {
  const int tx = threadIdx.x, ty = threadIdx.y, tile = blockDim.x;
  shared[ty * tile + tx] = r;
  __syncthreads();
  for (int stride = blockDim.y / 2; stride > 0; stride /= 2) {
    if (ty < stride) {
      R a = shared[ty * tile + tx];
      a.merge(shared[(ty + stride) * tile + tx]);
      shared[ty * tile + tx] = a;
    }
    __syncthreads();
  }
  return shared[tx];
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    stats_partial_kernel(const T* __restrict__ x, Layout l, int64_t span,
                         Moments<at::opmath_type<T>>* __restrict__ partial) {
  using Acc = at::opmath_type<T>;
  __shared__ Moments<Acc> shared[kThreads];
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  const int64_t begin = int64_t{blockIdx.y} * span, end = min(l.M, begin + span);
  Moments<Acc> m{0, 0, 0};
  if (c < l.C) {
    for (int64_t j = begin + threadIdx.y; j < end; j += blockDim.y) {
      m.add(static_cast<Acc>(x[l.offset(c, j)]));
    }
  }
  m = block_combine(m, shared);
  if (threadIdx.y == 0 && c < l.C) partial[blockIdx.y * l.C + c] = m;
}

template <typename Acc>
__global__ void stats_finalize_kernel(const Moments<Acc>* __restrict__ partial, int64_t C,
                                      int64_t spans, Acc* __restrict__ mean, Acc* __restrict__ var) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= C) return;
  Moments<Acc> m{0, 0, 0};
  for (int64_t s = 0; s < spans; ++s) m.merge(partial[s * C + c]);
  mean[c] = m.mean;
  var[c] = m.m2 / m.n;
}

// RunningStatsStep per channel: var becomes invstd; rm, rv null for none.
template <typename Acc>
__global__ void update_running_stats_kernel(const Acc* __restrict__ mean, Acc* __restrict__ var,
                                            Acc* rm, int64_t rm_stride, Acc* rv,
                                            int64_t rv_stride, int64_t C,
                                            RunningStatsStep<Acc> step) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const Acc batch_var = var[c];
  if (rm != nullptr) rm[c * rm_stride] = step.mean(mean[c], rm[c * rm_stride]);
  if (rv != nullptr) rv[c * rv_stride] = step.var(batch_var, rv[c * rv_stride]);
  var[c] = step.invstd(batch_var);
}

template <typename Acc>
__device__ Acc z_of(Acc x, const BatchNormView<Acc>& v, int64_t c) {
  return (x - v.mean[c]) * v.scale(c) + v.shift(c);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(T* __restrict__ out, const T* __restrict__ x, const T* __restrict__ residual,
                   Layout l, int64_t total, BatchNormView<at::opmath_type<T>> v) {
  using Acc = at::opmath_type<T>;
  PYIMG_GRID_STRIDE_LOOP(i, total) {
    const int64_t c = l.channel_at(i);
    Acc y = activate<Acc>(v.activation(), z_of(static_cast<Acc>(x[i]), v, c), v.slope(c));
    if (residual != nullptr) y += static_cast<Acc>(residual[i]);
    out[i] = static_cast<T>(y);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    grad_partial_kernel(const T* __restrict__ g, const T* __restrict__ x, Layout l, int64_t span,
                        BatchNormView<at::opmath_type<T>> v,
                        Sums<at::opmath_type<T>>* __restrict__ partial) {
  using Acc = at::opmath_type<T>;
  __shared__ Sums<Acc> shared[kThreads];
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  const int64_t begin = int64_t{blockIdx.y} * span, end = min(l.M, begin + span);
  Sums<Acc> s{0, 0, 0};
  if (c < l.C) {
    const Acc alpha = v.slope(c);
    for (int64_t j = begin + threadIdx.y; j < end; j += blockDim.y) {
      const int64_t o = l.offset(c, j);
      const Acc gv = static_cast<Acc>(g[o]), xc = static_cast<Acc>(x[o]) - v.mean[c];
      const Acc z = xc * v.scale(c) + v.shift(c);
      const Acc dz = gv * activation_grad<Acc>(v.activation(), z, alpha);
      s.dz += dz;
      s.dz_xc += dz * xc;
      s.negz += z > Acc(0) ? Acc(0) : gv * z;  // NaN kept, as ATen's PReLU weight gradient
    }
  }
  s = block_combine(s, shared);
  if (threadIdx.y == 0 && c < l.C) partial[blockIdx.y * l.C + c] = s;
}

// The per-channel sums, and the coefficients of grad_x = scale * dz + b * (x - mean) + d
// (Ioffe & Szegedy's backward through the batch statistics; b = d = 0 in eval).
template <typename Acc>
__global__ void grad_finalize_kernel(const Sums<Acc>* __restrict__ partial, int64_t C,
                                     int64_t spans, Acc M, bool training, bool prelu,
                                     BatchNormView<Acc> v, Acc* __restrict__ sum_dz,
                                     Acc* __restrict__ sum_dz_xhat, Acc* __restrict__ sum_negz,
                                     Acc* __restrict__ coeff_b, Acc* __restrict__ coeff_d) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= C) return;
  Sums<Acc> s{0, 0, 0};
  for (int64_t k = 0; k < spans; ++k) s.merge(partial[k * C + c]);
  const Acc invstd = v.invstd[c], scale = v.scale(c);
  sum_dz[c] = s.dz;
  sum_dz_xhat[c] = s.dz_xc * invstd;
  sum_negz[c] = prelu ? s.negz : Acc(0);
  coeff_b[c] = training ? -scale * invstd * invstd * s.dz_xc / M : Acc(0);
  coeff_d[c] = training ? -scale * s.dz / M : Acc(0);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    grad_x_kernel(T* __restrict__ out, const T* __restrict__ g, const T* __restrict__ x,
                  Layout l, int64_t total, BatchNormView<at::opmath_type<T>> v,
                  const at::opmath_type<T>* __restrict__ coeff_b,
                  const at::opmath_type<T>* __restrict__ coeff_d, bool training) {
  using Acc = at::opmath_type<T>;
  PYIMG_GRID_STRIDE_LOOP(i, total) {
    const int64_t c = l.channel_at(i);
    const Acc xc = static_cast<Acc>(x[i]) - v.mean[c];
    const Acc scale = v.scale(c);
    const Acc dz = static_cast<Acc>(g[i]) *
                   activation_grad<Acc>(v.activation(), xc * scale + v.shift(c), v.slope(c));
    // In eval the statistics are constants: scale * dz, also at a NaN x (0 * NaN is NaN).
    out[i] = static_cast<T>(training ? scale * dz + coeff_b[c] * xc + coeff_d[c] : scale * dz);
  }
}

Layout layout_of(const at::Tensor& x) {
  const int64_t HW = x.size(2) * x.size(3);
  return {x.size(1), HW, x.size(0) * HW, is_channels_last(x)};
}

// Scratch for S partial records of C channels, each R bytes, as a byte tensor.
template <typename R>
R* scratch(at::Tensor& buffer, const at::Tensor& x, int64_t count) {
  buffer = at::empty({count * static_cast<int64_t>(sizeof(R))}, x.options().dtype(at::kByte));
  return reinterpret_cast<R*>(buffer.mutable_data_ptr());
}

std::tuple<at::Tensor, at::Tensor> batch_norm_stats_cuda(const at::Tensor& input) {
  auto [x, mean, var] = prepare_stats(input);
  if (x.numel() == 0) return {mean, var};
  const c10::cuda::CUDAGuard guard(x.device());
  const Layout l = layout_of(x);
  const Grid grid = reduction_grid(l);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor buffer;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "batch_norm_stats",
                                  [&] {
    using Acc = at::opmath_type<scalar_t>;
    auto* partial = scratch<Moments<Acc>>(buffer, x, grid.spans * l.C);
    stats_partial_kernel<scalar_t><<<grid.blocks, grid.threads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), l, grid.span, partial);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    stats_finalize_kernel<Acc><<<grid_size(l.C), kThreads, 0, stream>>>(
        partial, l.C, grid.spans, mean.mutable_data_ptr<Acc>(), var.mutable_data_ptr<Acc>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {mean, var};
}

at::Tensor bn_prelu_cuda(const at::Tensor& input, const at::Tensor& mean, const at::Tensor& invstd,
                         const std::optional<at::Tensor>& weight,
                         const std::optional<at::Tensor>& bias,
                         const std::optional<at::Tensor>& prelu_weight,
                         const std::optional<at::Tensor>& residual, bool /*training*/,
                         bool relu) {
  auto [x, res, out, params] =
      prepare_bn_prelu(input, mean, invstd, weight, bias, prelu_weight, residual, relu);
  if (out.numel() == 0) return out;
  const c10::cuda::CUDAGuard guard(x.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bn_prelu", [&] {
    using Acc = at::opmath_type<scalar_t>;
    forward_kernel<scalar_t><<<grid_size(out.numel()), kThreads, 0,
                               c10::cuda::getCurrentCUDAStream()>>>(
        out.mutable_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
        res.defined() ? res.const_data_ptr<scalar_t>() : nullptr, layout_of(x), out.numel(),
        batch_norm_view<Acc>(params));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> bn_prelu_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& input, const at::Tensor& mean,
    const at::Tensor& invstd, const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& prelu_weight,
    bool training, bool relu) {
  auto [x, grad, params, grad_x, sum_dz, sum_dz_xhat, sum_negz] = prepare_bn_prelu_backward(
      grad_out, input, mean, invstd, weight, bias, prelu_weight, relu);
  if (x.numel() == 0) return {grad_x, sum_dz, sum_dz_xhat, sum_negz};
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor coeffs = at::empty({2, x.size(1)}, sum_dz.options());
  const Layout l = layout_of(x);
  const Grid grid = reduction_grid(l);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor buffer;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bn_prelu_backward",
                                  [&] {
    using Acc = at::opmath_type<scalar_t>;
    const BatchNormView<Acc> v = batch_norm_view<Acc>(params);
    auto* partial = scratch<Sums<Acc>>(buffer, x, grid.spans * l.C);
    grad_partial_kernel<scalar_t><<<grid.blocks, grid.threads, 0, stream>>>(
        grad.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), l, grid.span, v, partial);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    Acc* coeff = coeffs.mutable_data_ptr<Acc>();
    grad_finalize_kernel<Acc><<<grid_size(l.C), kThreads, 0, stream>>>(
        partial, l.C, grid.spans, static_cast<Acc>(l.M), training, params.alpha.defined(), v,
        sum_dz.mutable_data_ptr<Acc>(), sum_dz_xhat.mutable_data_ptr<Acc>(),
        sum_negz.mutable_data_ptr<Acc>(), coeff, coeff + l.C);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    grad_x_kernel<scalar_t><<<grid_size(x.numel()), kThreads, 0, stream>>>(
        grad_x.mutable_data_ptr<scalar_t>(), grad.const_data_ptr<scalar_t>(),
        x.const_data_ptr<scalar_t>(), l, x.numel(), v, coeff, coeff + l.C, training);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_x, sum_dz, sum_dz_xhat, sum_negz};
}

}  // namespace

void update_running_stats_cuda(const std::optional<at::Tensor>& running_mean,
                               const std::optional<at::Tensor>& running_var,
                               const at::Tensor& mean, at::Tensor& var, int64_t count,
                               double momentum, double eps) {
  const c10::cuda::CUDAGuard guard(mean.device());
  AT_DISPATCH_FLOATING_TYPES(mean.scalar_type(), "update_running_stats", [&] {
    // The statistics' values and stride (none, or an empty batch, count 0: not updated), their
    // version counters bumped as an in-place ATen op's.
    const auto written = [count](const std::optional<at::Tensor>& t) {
      if (!t.has_value() || count == 0) return std::pair<scalar_t*, int64_t>{nullptr, 0};
      t->unsafeGetTensorImpl()->bump_version();
      return std::pair{t->mutable_data_ptr<scalar_t>(), t->stride(0)};
    };
    const auto [rm, rm_stride] = written(running_mean);
    const auto [rv, rv_stride] = written(running_var);
    const int64_t C = mean.numel();
    update_running_stats_kernel<scalar_t>
        <<<grid_size(C), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            mean.const_data_ptr<scalar_t>(), var.mutable_data_ptr<scalar_t>(), rm, rm_stride, rv,
            rv_stride, C, RunningStatsStep<scalar_t>(momentum, count, eps));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

TORCH_LIBRARY_IMPL(pyimg, CUDA, m) {
  m.impl("batch_norm_stats", &batch_norm_stats_cuda);
  m.impl("bn_prelu", &bn_prelu_cuda);
  m.impl("bn_prelu_backward", &bn_prelu_backward_cuda);
}

}  // namespace pyimg
