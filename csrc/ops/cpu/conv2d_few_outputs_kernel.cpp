// CPU kernel of conv2d_few_outputs: a direct convolution for the last layer of an image
// network (C_in a multiple of 16 down to C_out <= 16), where oneDNN's blocked convolution
// is far below the machine's peak: 32 -> 4 channels 3x3 took 9.7 ms of one core against
// this kernel's 4.9 (fp32, 360x640; 64 -> 3 9x9: 177 ms against 64).
//
// Vectors run along the input channels of a channels_last row. A block of 4 output pixels
// x 4 output channels keeps 16 accumulators, one per (pixel, channel); every tap adds
// input-channel vectors times weight vectors (4 input loads and 4 weight loads per 16
// FMAs), and at the end a transposing reduction sums each accumulator across its lanes into
// one vector that holds the block in NHWC order. bf16 on CPUs with AVX512-BF16 takes 32
// channels a step with vdpbf16ps (fp32 accumulation), where the pairing of products does
// not matter since every lane is summed anyway. Pixels whose taps leave the row (borders)
// take a per-pixel path. The epilogue (bias, activation, rounding to bf16) runs on the
// reduced vector before the store. Without AVX-512 a scalar loop computes the same.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "ops/cpu/channel_values.h"
#include "ops/cpu/vec512.h"

namespace pyimg {
namespace {

struct Problem {
  int64_t N, H, W, CI, CO, CO4, KH, KW, ph, pw, Ho, Wo;
};

using vec512::Epilogue;

inline float finish_scalar(float acc, const Epilogue& e, int64_t co) {
  return vec512::activate_scalar(e.bias != nullptr ? acc + e.bias[co] : acc, e, co);
}

// The portable path: one output row (n, h), x channels_last, weight (KH, KW, CO4, CI).
template <typename T>
void row_scalar(const T* x, const T* w, T* out, const Problem& p, const Epilogue& e, int64_t n,
                int64_t h) {
  for (int64_t ow = 0; ow < p.Wo; ++ow) {
    for (int64_t co = 0; co < p.CO; ++co) {
      float acc = 0.f;
      for (int64_t i = 0; i < p.KH; ++i) {
        const int64_t ih = h + i - p.ph;
        if (ih < 0 || ih >= p.H) continue;
        for (int64_t j = 0; j < p.KW; ++j) {
          const int64_t iw = ow + j - p.pw;
          if (iw < 0 || iw >= p.W) continue;
          const T* px = x + ((n * p.H + ih) * p.W + iw) * p.CI;
          const T* pw = w + ((i * p.KW + j) * p.CO4 + co) * p.CI;
          for (int64_t ci = 0; ci < p.CI; ++ci) {
            acc += static_cast<float>(px[ci]) * static_cast<float>(pw[ci]);
          }
        }
      }
      out[((n * p.Ho + h) * p.Wo + ow) * p.CO + co] = static_cast<T>(finish_scalar(acc, e, co));
    }
  }
}

#ifdef PYIMG_HAVE_AVX512_KERNELS

using vec512::load16;

// 4 lanes rounded to bf16 (nearest even; NaN stays NaN).
PYIMG_AVX512 inline __m128i round4_to_bf16(__m128 v) {
  __m128i bits = _mm_castps_si128(v);
  const __m128i lsb = _mm_and_si128(_mm_srli_epi32(bits, 16), _mm_set1_epi32(1));
  bits = _mm_add_epi32(bits, _mm_add_epi32(lsb, _mm_set1_epi32(0x7FFF)));
  const __mmask8 nan = _mm_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  bits = _mm_mask_mov_epi32(bits, nan, _mm_set1_epi32(0x7FC00000));
  return _mm_cvtepi32_epi16(_mm_srli_epi32(bits, 16));
}

// One pixel's 4 channels, `count` (1-4) of them kept.
PYIMG_AVX512 inline void store4(float* p, __m128 v, int count) {
  _mm_mask_storeu_ps(p, static_cast<__mmask8>((1u << count) - 1), v);
}

PYIMG_AVX512 inline void store4(c10::BFloat16* p, __m128 v, int count) {
  _mm_mask_storeu_epi16(p, static_cast<__mmask8>((1u << count) - 1), round4_to_bf16(v));
}

// Lane k of the result is the sum of a[k]'s 16 lanes.
PYIMG_AVX512 inline __m512 reduce16(const __m512 a[16]) {
  __m512 g[4];
  for (int t = 0; t < 4; ++t) {
    const __m512* s = a + 4 * t;
    const __m512 s01 =
        _mm512_add_ps(_mm512_unpacklo_ps(s[0], s[1]), _mm512_unpackhi_ps(s[0], s[1]));
    const __m512 s23 =
        _mm512_add_ps(_mm512_unpacklo_ps(s[2], s[3]), _mm512_unpackhi_ps(s[2], s[3]));
    // per 128-bit lane L: the L-part sums of s[0], s[1], s[2], s[3]
    g[t] = _mm512_add_ps(_mm512_shuffle_ps(s01, s23, 0x44), _mm512_shuffle_ps(s01, s23, 0xEE));
  }
  const __m512 v01 = _mm512_add_ps(_mm512_shuffle_f32x4(g[0], g[1], 0x88),
                                   _mm512_shuffle_f32x4(g[0], g[1], 0xDD));
  const __m512 v23 = _mm512_add_ps(_mm512_shuffle_f32x4(g[2], g[3], 0x88),
                                   _mm512_shuffle_f32x4(g[2], g[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(v01, v23, 0x88),
                       _mm512_shuffle_f32x4(v01, v23, 0xDD));
}

// Lanes (pixel q, channel c) = 4 q + c of 4 output channels from co0.
PYIMG_AVX512 inline __m512 channel_lanes(const float* values, int64_t co0, int64_t CO,
                                         float fallback) {
  alignas(16) float four[4];
  for (int c = 0; c < 4; ++c) {
    four[c] = values != nullptr && co0 + c < CO ? values[co0 + c] : fallback;
  }
  return _mm512_broadcast_f32x4(_mm_load_ps(four));
}

// The reduced 4 x 4 block: bias, activation, then each pixel's channels to its place.
template <typename T>
PYIMG_AVX512 void finish_block(const __m512 acc[16], T* out, const Problem& p,
                               const Epilogue& e, int64_t co0) {
  const __m512 r = vec512::activate16(
      _mm512_add_ps(reduce16(acc), channel_lanes(e.bias, co0, p.CO, 0.f)), e.act,
      channel_lanes(e.alpha, co0, p.CO, e.slope));
  const int count = static_cast<int>(std::min<int64_t>(4, p.CO - co0));
  store4(out + co0, _mm512_extractf32x4_ps(r, 0), count);
  store4(out + p.CO + co0, _mm512_extractf32x4_ps(r, 1), count);
  store4(out + 2 * p.CO + co0, _mm512_extractf32x4_ps(r, 2), count);
  store4(out + 3 * p.CO + co0, _mm512_extractf32x4_ps(r, 3), count);
}

// 4 interior pixels from output column ow (every tap inside the row), channels co0..co0+3,
// input rows i0 <= i < i1 of the kernel (the others fall outside the image).
template <typename T>
PYIMG_AVX512 void block_fma(const T* x, const T* w, T* out, const Problem& p, const Epilogue& e,
                            int64_t n, int64_t h, int64_t ow, int64_t co0, int64_t i0,
                            int64_t i1) {
  __m512 acc[16];
  for (int k = 0; k < 16; ++k) acc[k] = _mm512_setzero_ps();
  const int64_t CI = p.CI;
  for (int64_t i = i0; i < i1; ++i) {
    const T* xr = x + ((n * p.H + h + i - p.ph) * p.W + ow - p.pw) * CI;
    for (int64_t j = 0; j < p.KW; ++j) {
      const T* wj = w + ((i * p.KW + j) * p.CO4 + co0) * CI;
      const T* xj = xr + j * CI;
      for (int64_t c = 0; c < CI; c += 16) {
        __m512 xv[4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) xv[q] = load16(xj + q * CI + c);
#pragma GCC unroll 4
        for (int o = 0; o < 4; ++o) {
          const __m512 wv = load16(wj + o * CI + c);
#pragma GCC unroll 4
          for (int q = 0; q < 4; ++q) acc[4 * q + o] = _mm512_fmadd_ps(xv[q], wv, acc[4 * q + o]);
        }
      }
    }
  }
  finish_block(acc, out + ((n * p.Ho + h) * p.Wo + ow) * p.CO, p, e, co0);
}

// The same with 32 bf16 channels a step (CI % 32 == 0).
PYIMG_AVX512_BF16 void block_dot(const c10::BFloat16* x, const c10::BFloat16* w,
                                 c10::BFloat16* out, const Problem& p, const Epilogue& e,
                                 int64_t n, int64_t h, int64_t ow, int64_t co0, int64_t i0,
                                 int64_t i1) {
  __m512 acc[16];
  for (int k = 0; k < 16; ++k) acc[k] = _mm512_setzero_ps();
  const int64_t CI = p.CI;
  for (int64_t i = i0; i < i1; ++i) {
    const c10::BFloat16* xr = x + ((n * p.H + h + i - p.ph) * p.W + ow - p.pw) * CI;
    for (int64_t j = 0; j < p.KW; ++j) {
      const c10::BFloat16* wj = w + ((i * p.KW + j) * p.CO4 + co0) * CI;
      const c10::BFloat16* xj = xr + j * CI;
      for (int64_t c = 0; c < CI; c += 32) {
        __m512bh xv[4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) xv[q] = (__m512bh)_mm512_loadu_si512(xj + q * CI + c);
#pragma GCC unroll 4
        for (int o = 0; o < 4; ++o) {
          const __m512bh wv = (__m512bh)_mm512_loadu_si512(wj + o * CI + c);
#pragma GCC unroll 4
          for (int q = 0; q < 4; ++q) acc[4 * q + o] = _mm512_dpbf16_ps(acc[4 * q + o], xv[q], wv);
        }
      }
    }
  }
  finish_block(acc, out + ((n * p.Ho + h) * p.Wo + ow) * p.CO, p, e, co0);
}

// One pixel, the taps outside the image skipped (borders, and the last < 4 pixels).
template <typename T>
PYIMG_AVX512 void pixel(const T* x, const T* w, T* out, const Problem& p, const Epilogue& e,
                        int64_t n, int64_t h, int64_t ow, int64_t i0, int64_t i1) {
  const int64_t CI = p.CI;
  T* o = out + ((n * p.Ho + h) * p.Wo + ow) * p.CO;
  for (int64_t co = 0; co < p.CO; ++co) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = i0; i < i1; ++i) {
      for (int64_t j = 0; j < p.KW; ++j) {
        const int64_t iw = ow + j - p.pw;
        if (iw < 0 || iw >= p.W) continue;
        const T* xs = x + ((n * p.H + h + i - p.ph) * p.W + iw) * CI;
        const T* ws = w + ((i * p.KW + j) * p.CO4 + co) * CI;
        for (int64_t c = 0; c < CI; c += 16) {
          acc = _mm512_fmadd_ps(load16(xs + c), load16(ws + c), acc);
        }
      }
    }
    o[co] = static_cast<T>(finish_scalar(_mm512_reduce_add_ps(acc), e, co));
  }
}

template <typename T, typename Block>
PYIMG_AVX512 void row_avx512(const T* x, const T* w, T* out, const Problem& p, const Epilogue& e,
                             int64_t n, int64_t h, Block block) {
  const int64_t i0 = std::max<int64_t>(0, p.ph - h);
  const int64_t i1 = std::min<int64_t>(p.KH, p.H + p.ph - h);
  // Output columns whose taps all fall inside the row: [first, last).
  const int64_t first = std::min(p.pw, p.Wo);
  const int64_t last = std::max(first, std::min(p.Wo, p.W - p.KW + 1 + p.pw));
  for (int64_t ow = 0; ow < first; ++ow) pixel(x, w, out, p, e, n, h, ow, i0, i1);
  int64_t ow = first;
  for (; ow + 4 <= last; ow += 4) {
    for (int64_t co0 = 0; co0 < p.CO; co0 += 4) block(x, w, out, p, e, n, h, ow, co0, i0, i1);
  }
  for (; ow < p.Wo; ++ow) pixel(x, w, out, p, e, n, h, ow, i0, i1);
}

#endif  // PYIMG_HAVE_AVX512_KERNELS

template <typename T>
void run(const T* x, const T* w, T* out, const Problem& p, const Epilogue& e) {
  const int64_t rows = p.N * p.Ho;
  auto each_row = [&](auto&& row) {
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) row(r / p.Ho, r % p.Ho);
    });
  };
#ifdef PYIMG_HAVE_AVX512_KERNELS
  if (vec512::cpu_has_avx512()) {
    if constexpr (std::is_same_v<T, c10::BFloat16>) {
      if (vec512::cpu_has_avx512_bf16() && p.CI % 32 == 0) {
        each_row([&](int64_t n, int64_t h) { row_avx512(x, w, out, p, e, n, h, block_dot); });
        return;
      }
    }
    each_row([&](int64_t n, int64_t h) { row_avx512(x, w, out, p, e, n, h, block_fma<T>); });
    return;
  }
#endif
  each_row([&](int64_t n, int64_t h) { row_scalar(x, w, out, p, e, n, h); });
}

at::Tensor conv2d_few_outputs_cpu(const at::Tensor& x, const at::Tensor& packed,
                                  const std::optional<at::Tensor>& bias, int64_t out_channels,
                                  at::IntArrayRef padding, c10::string_view activation,
                                  double negative_slope,
                                  const std::optional<at::Tensor>& prelu_weight) {
  TORCH_CHECK(x.dim() == 4, "conv2d_few_outputs expects a 4-D (N, C, H, W) input, got ",
              x.dim(), " dimension(s)");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16,
              "conv2d_few_outputs expects a float32 or bfloat16 input, got ", x.scalar_type());
  TORCH_CHECK(packed.dim() == 4 && packed.scalar_type() == x.scalar_type() &&
                  packed.is_contiguous(),
              "conv2d_few_outputs: packed_weight must be a contiguous 4-D tensor of the "
              "input's dtype ", x.scalar_type(), ", got ", packed.scalar_type(), " of shape ",
              packed.sizes());
  TORCH_CHECK(padding.size() == 2 && padding[0] >= 0 && padding[1] >= 0,
              "conv2d_few_outputs: padding must be two non-negative values, got ", padding);
  Problem p;
  p.N = x.size(0), p.CI = x.size(1), p.H = x.size(2), p.W = x.size(3);
  p.CO = out_channels, p.CO4 = (out_channels + 3) / 4 * 4;
  p.KH = packed.size(0), p.KW = packed.size(1), p.ph = padding[0], p.pw = padding[1];
  p.Ho = p.H + 2 * p.ph - p.KH + 1, p.Wo = p.W + 2 * p.pw - p.KW + 1;
  TORCH_CHECK(p.CI % 16 == 0 && p.CO >= 1 && p.CO <= 16 && packed.size(2) == p.CO4 &&
                  packed.size(3) == p.CI,
              "conv2d_few_outputs: expected C_in % 16 == 0, 1 <= C_out <= 16 and a packed "
              "weight of shape (KH, KW, C_out rounded up to 4, C_in), got ", p.CI, " -> ",
              p.CO, " channels and ", packed.sizes());
  TORCH_CHECK(p.Ho > 0 && p.Wo > 0, "conv2d_few_outputs: the ", p.KH, "x", p.KW,
              " kernel is larger than the padded ", p.H, "x", p.W, " input");
  const at::Tensor xc = x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor out = at::empty({p.N, p.CO, p.Ho, p.Wo},
                             x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (out.numel() == 0) return out;
  const at::Tensor b = channel_values(bias, p.CO, "conv2d_few_outputs", "bias");
  const at::Tensor a =
      channel_values(prelu_weight, p.CO, "conv2d_few_outputs", "prelu_weight");
  const Epilogue e{parse_activation(activation), static_cast<float>(negative_slope),
                   b.defined() ? b.data_ptr<float>() : nullptr,
                   a.defined() ? a.data_ptr<float>() : nullptr};
  TORCH_CHECK(e.act != Activation::kSigmoid, "conv2d_few_outputs: sigmoid is not fused here");
  TORCH_CHECK((e.act == Activation::kPReLU) == (e.alpha != nullptr),
              "conv2d_few_outputs: prelu_weight is given exactly when activation='prelu'");
  if (x.scalar_type() == at::kFloat) {
    run(xc.data_ptr<float>(), packed.data_ptr<float>(), out.data_ptr<float>(), p, e);
  } else {
    run(xc.data_ptr<c10::BFloat16>(), packed.data_ptr<c10::BFloat16>(),
        out.data_ptr<c10::BFloat16>(), p, e);
  }
  return out;
}

}  // namespace
}  // namespace pyimg

TORCH_LIBRARY_IMPL(pyimg, CPU, m) { m.impl("conv2d_few_outputs", &pyimg::conv2d_few_outputs_cpu); }
