// AVX-512 pieces pyimg's inference convolutions share (conv2d_few_outputs,
// conv2d_winograd): 16-lane loads and stores of float and bf16, the fused epilogue (bias,
// activation) and its scalar twin, and the CPU check. Each function carries its own target
// attribute, so this compiles without -mavx512f and runs only where cpu_has_avx512().
#pragma once

#include <c10/util/BFloat16.h>

#include <cmath>
#include <cstdint>

#include "ops/activation.h"
#include "ops/cpu/parallel.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PYIMG_HAVE_AVX512_KERNELS 1
#define PYIMG_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define PYIMG_AVX512_BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16")))
#endif

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which it then
// reports as uninitialized where they are inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace pyimg {
namespace vec512 {

struct Epilogue {
  Activation act;
  float slope;         // leaky_relu's
  const float* bias;   // per output channel, or nullptr
  const float* alpha;  // prelu's per output channel, or nullptr
};

inline float activate_scalar(float v, const Epilogue& e, int64_t co) {
  switch (e.act) {
    case Activation::kReLU: return v < 0.f ? 0.f : v;
    case Activation::kLeakyReLU: return v < 0.f ? v * e.slope : v;
    case Activation::kPReLU: return v < 0.f ? v * e.alpha[co] : v;
    case Activation::kTanh: return std::tanh(v);
    default: return v;
  }
}

#ifdef PYIMG_HAVE_AVX512_KERNELS

// Whether the kernels may use AVX-512 (cpu::capability(), so PYIMG_CPU_CAPABILITY governs
// these kernels too).
inline bool cpu_has_avx512() { return cpu::capability() == cpu::Capability::kAvx512; }

inline bool cpu_has_avx512_bf16() {
  static const bool has = cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
  return has;
}

// tanh as Eigen's rational approximation (13/6 on [-7.905, 7.905], identity below 4e-4):
// within 4e-7 relative of tanh over all floats.
PYIMG_AVX512 inline __m512 tanh16(__m512 x) {
  const __m512 limit = _mm512_set1_ps(7.90531110763549805f);
  const __m512 c = _mm512_max_ps(_mm512_min_ps(x, limit),
                                 _mm512_sub_ps(_mm512_setzero_ps(), limit));
  const __m512 x2 = _mm512_mul_ps(c, c);
  __m512 num = _mm512_set1_ps(-2.76076847742355e-16f);
  num = _mm512_fmadd_ps(x2, num, _mm512_set1_ps(2.00018790482477e-13f));
  num = _mm512_fmadd_ps(x2, num, _mm512_set1_ps(-8.60467152213735e-11f));
  num = _mm512_fmadd_ps(x2, num, _mm512_set1_ps(5.12229709037114e-08f));
  num = _mm512_fmadd_ps(x2, num, _mm512_set1_ps(1.48572235717979e-05f));
  num = _mm512_fmadd_ps(x2, num, _mm512_set1_ps(6.37261928875436e-04f));
  num = _mm512_fmadd_ps(x2, num, _mm512_set1_ps(4.89352455891786e-03f));
  num = _mm512_mul_ps(c, num);
  __m512 den = _mm512_set1_ps(1.19825839466702e-06f);
  den = _mm512_fmadd_ps(x2, den, _mm512_set1_ps(1.18534705686654e-04f));
  den = _mm512_fmadd_ps(x2, den, _mm512_set1_ps(2.26843463243900e-03f));
  den = _mm512_fmadd_ps(x2, den, _mm512_set1_ps(4.89352518554385e-03f));
  const __m512 r = _mm512_div_ps(num, den);
  const __mmask16 tiny =
      _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(0.0004f), _CMP_LT_OQ);
  // x itself where tiny, and NaN (which the clamp above would have turned into a number)
  const __mmask16 keep = tiny | _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_mask_blend_ps(keep, r, x);
}

// The activation of v; slope holds each lane's negative slope (leaky_relu, prelu).
PYIMG_AVX512 inline __m512 activate16(__m512 v, Activation act, __m512 slope) {
  switch (act) {
    case Activation::kReLU: return _mm512_max_ps(v, _mm512_setzero_ps());
    case Activation::kLeakyReLU:
    case Activation::kPReLU: {
      const __mmask16 negative = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
      return _mm512_mask_mul_ps(v, negative, v, slope);
    }
    case Activation::kTanh: return tanh16(v);
    default: return v;
  }
}

PYIMG_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }

PYIMG_AVX512 inline __m512 load16(const c10::BFloat16* p) {
  const __m512i wide =
      _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

// Round to nearest even; NaN stays NaN.
PYIMG_AVX512 inline __m256i round_to_bf16(__m512 v) {
  __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  bits = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  bits = _mm512_mask_mov_epi32(bits, nan, _mm512_set1_epi32(0x7FC00000));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(bits, 16));
}

PYIMG_AVX512 inline void store16(float* p, __m512 v) { _mm512_storeu_ps(p, v); }

PYIMG_AVX512 inline void store16(c10::BFloat16* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), round_to_bf16(v));
}

// The first `count` (0-16) lanes of v.
PYIMG_AVX512 inline void store16(float* p, __m512 v, int count) {
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << count) - 1), v);
}

PYIMG_AVX512 inline void store16(c10::BFloat16* p, __m512 v, int count) {
  _mm256_mask_storeu_epi16(p, static_cast<__mmask16>((1u << count) - 1), round_to_bf16(v));
}

#else

inline bool cpu_has_avx512() { return false; }
inline bool cpu_has_avx512_bf16() { return false; }

#endif  // PYIMG_HAVE_AVX512_KERNELS

}  // namespace vec512
}  // namespace pyimg
