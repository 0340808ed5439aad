// CUDA kernel of depthwise_conv2d: direct convolution, one thread per output element, the
// epilogue fused into the store.
//
// Threads walk the output in memory order (a grid-stride loop), so neighbouring threads read
// neighbouring inputs and write neighbouring outputs: along W for NCHW, along channels for
// channels_last. Each thread sums its KH * KW taps in a fixed order: deterministic. The weight
// is taps-major (C_out contiguous), so in channels_last a warp's weight reads coalesce too.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/grid.cuh"
#include "ops/depthwise_conv.h"

namespace pyimg {
namespace {

template <typename T, bool kChannelsLast>
__global__ void depthwise_kernel(T* __restrict__ out, const T* __restrict__ x,
                                 const at::opmath_type<T>* __restrict__ taps,
                                 const T* __restrict__ residual, DepthwiseGeometry g,
                                 int64_t numel, DepthwiseEpilogue<at::opmath_type<T>> epilogue) {
  using Acc = at::opmath_type<T>;
  PYIMG_GRID_STRIDE_LOOP(i, numel) {
    int64_t n, co, oh, ow;
    if (kChannelsLast) {
      co = i % g.C_out;
      ow = i / g.C_out % g.OW;
      oh = i / (g.C_out * g.OW) % g.OH;
      n = i / (g.C_out * g.OW * g.OH);
    } else {
      ow = i % g.OW;
      oh = i / g.OW % g.OH;
      co = i / (g.OW * g.OH) % g.C_out;
      n = i / (g.OW * g.OH * g.C_out);
    }
    const int64_t ci = co / g.multiplier;
    // Element (n, ci, ih, iw) of x, contiguous in its layout, is x[base + ih * sh_ + iw * sw_].
    const int64_t base = kChannelsLast ? n * g.H * g.W * g.C + ci : (n * g.C + ci) * g.H * g.W;
    const int64_t row_stride = kChannelsLast ? g.W * g.C : g.W;
    const int64_t col_stride = kChannelsLast ? g.C : 1;
    Acc acc = Acc(0);
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.sh - g.pad_top + kh * g.dh;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t iw = ow * g.sw - g.pad_left + kw * g.dw;
        if (iw < 0 || iw >= g.W) continue;
        acc += taps[(kh * g.KW + kw) * g.C_out + co] *
               static_cast<Acc>(x[base + ih * row_stride + iw * col_stride]);
      }
    }
    const Acc r = residual != nullptr ? static_cast<Acc>(residual[i]) : Acc(0);
    out[i] = static_cast<T>(epilogue.apply(acc, co, r));
  }
}

void depthwise_conv2d_cuda(const DepthwiseCall& call) {
  const c10::cuda::CUDAGuard guard(call.x.device());
  const int64_t numel = call.out.numel();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, call.x.scalar_type(),
                                  "depthwise_conv2d_cuda", [&] {
    using Acc = at::opmath_type<scalar_t>;
    const scalar_t* res =
        call.residual.defined() ? call.residual.const_data_ptr<scalar_t>() : nullptr;
    const auto launch = [&](auto kernel) {
      kernel<<<grid_size(numel), kThreads, 0, stream>>>(
          call.out.mutable_data_ptr<scalar_t>(), call.x.const_data_ptr<scalar_t>(),
          call.taps.const_data_ptr<Acc>(), res, call.g, numel, epilogue_of<Acc>(call));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (call.channels_last) {
      launch(depthwise_kernel<scalar_t, true>);
    } else {
      launch(depthwise_kernel<scalar_t, false>);
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, CUDA, m) {
  m.impl("depthwise_conv2d", &depthwise_conv2d_impl<depthwise_conv2d_cuda>);
}

}  // namespace pyimg
