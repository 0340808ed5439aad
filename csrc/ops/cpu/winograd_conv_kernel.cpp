// CPU kernel of conv2d_winograd: 3x3 convolution by F(2x2, 3x3) (Lavin & Gray 2016).
//
// Each 2x2 output tile comes from a 4x4 input patch d: V = B^T d B, then for each of the
// 16 positions xi, M[xi] = V[xi] . U[xi] summed over input channels (U = G g G^T, packed
// once), then Y = A^T M A. The products are 16 per tile and channel pair instead of 36
// for the direct convolution. One task takes one row of output tiles (two output rows) of
// one image; it walks the row in blocks of up to 12 tiles: the block's transformed inputs V
// (16 x tiles x C_in) and products M (16 x tiles x C_out) stay in the core's L2 cache. The
// products are 16 small matrix products per block, each a register block of 12 tiles x 32
// output channels (24 accumulators) fed by broadcasts of V and vector loads of U. Input
// transforms are vector adds over 16 channels at a time, shared between neighbouring tiles;
// patches that reach outside the image read zeros. The output transform, bias, residual sum and activation are one pass
// per output vector before the store. bf16 inputs and outputs are converted at the loads
// and stores; the arithmetic is fp32. Without AVX-512 a scalar direct convolution
// computes the same.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "ops/cpu/channel_values.h"
#include "ops/cpu/vec512.h"

namespace pyimg {
namespace {

using vec512::Epilogue;

constexpr int kTiles = 12;  // tiles a block, and rows of the product's register block

struct Problem {
  int64_t N, H, W, CI, CO, ph, pw, Ho, Wo, tiles_h, tiles_w;
};

inline float finish_scalar(float v, const Epilogue& e, int64_t co, const float* residual) {
  if (e.bias != nullptr) v += e.bias[co];
  if (residual != nullptr) v += *residual;
  return vec512::activate_scalar(v, e, co);
}

// The portable path: output rows 2 tr and 2 tr + 1 of image n by direct convolution, from
// the plain weight g[co][ci][3][3] recovered at the call (scalar, for CPUs without AVX-512).
template <typename T>
void tile_row_scalar(const T* x, const float* g, const T* residual, T* out, const Problem& p,
                     const Epilogue& e, int64_t n, int64_t tr) {
  for (int64_t oh = 2 * tr; oh < std::min(2 * tr + 2, p.Ho); ++oh) {
    for (int64_t ow = 0; ow < p.Wo; ++ow) {
      for (int64_t co = 0; co < p.CO; ++co) {
        float acc = 0.f;
        for (int64_t i = 0; i < 3; ++i) {
          const int64_t ih = oh + i - p.ph;
          if (ih < 0 || ih >= p.H) continue;
          for (int64_t j = 0; j < 3; ++j) {
            const int64_t iw = ow + j - p.pw;
            if (iw < 0 || iw >= p.W) continue;
            const T* px = x + ((n * p.H + ih) * p.W + iw) * p.CI;
            for (int64_t ci = 0; ci < p.CI; ++ci) {
              acc += static_cast<float>(px[ci]) * g[((co * p.CI + ci) * 3 + i) * 3 + j];
            }
          }
        }
        const int64_t at = ((n * p.Ho + oh) * p.Wo + ow) * p.CO + co;
        const float r = residual != nullptr ? static_cast<float>(residual[at]) : 0.f;
        out[at] = static_cast<T>(finish_scalar(acc, e, co, residual != nullptr ? &r : nullptr));
      }
    }
  }
}

#ifdef PYIMG_HAVE_AVX512_KERNELS

// V[xi][t][c..c+15] for the `tiles` tiles of a block whose patches start at input row ih
// and columns iw0, iw0 + 2, ...; 16 channels from c. Neighbouring patches share two of
// their four columns, so B^T d is computed once per column (4 loads, 4 adds) and each tile
// combines four columns: 8 loads and 24 adds a tile instead of 16 and 32.
template <typename T>
PYIMG_AVX512 void input_transform(const T* x, const Problem& p, int64_t n, int64_t ih,
                                  int64_t iw0, int tiles, int64_t c, float* V) {
  __m512 columns[2 * kTiles + 2][4];  // columns[j][i] = (B^T d)[i][j]
  const bool rows_inside = ih >= 0 && ih + 3 < p.H;
  for (int j = 0; j < 2 * tiles + 2; ++j) {
    const int64_t w = iw0 + j;
    __m512 d[4];
    for (int i = 0; i < 4; ++i) {
      const int64_t h = ih + i;
      const bool inside = (rows_inside || (h >= 0 && h < p.H)) && w >= 0 && w < p.W;
      d[i] = inside ? vec512::load16(x + ((n * p.H + h) * p.W + w) * p.CI + c)
                    : _mm512_setzero_ps();
    }
    columns[j][0] = _mm512_sub_ps(d[0], d[2]);
    columns[j][1] = _mm512_add_ps(d[1], d[2]);
    columns[j][2] = _mm512_sub_ps(d[2], d[1]);
    columns[j][3] = _mm512_sub_ps(d[1], d[3]);
  }
  const int64_t xi_stride = tiles * p.CI;
  for (int t = 0; t < tiles; ++t) {
    const __m512* a = columns[2 * t];
    const __m512* b = columns[2 * t + 1];
    const __m512* e = columns[2 * t + 2];
    const __m512* f = columns[2 * t + 3];
    float* v = V + t * p.CI + c;
    for (int i = 0; i < 4; ++i) {  // (B^T d) B
      _mm512_storeu_ps(v + (4 * i + 0) * xi_stride, _mm512_sub_ps(a[i], e[i]));
      _mm512_storeu_ps(v + (4 * i + 1) * xi_stride, _mm512_add_ps(b[i], e[i]));
      _mm512_storeu_ps(v + (4 * i + 2) * xi_stride, _mm512_sub_ps(e[i], b[i]));
      _mm512_storeu_ps(v + (4 * i + 3) * xi_stride, _mm512_sub_ps(b[i], f[i]));
    }
  }
}

template <int TILES, int NV>
PYIMG_AVX512 void product(const float* V, const float* U, float* M, int64_t CI, int64_t CO,
                          int64_t o0) {
  __m512 acc[TILES][NV];
#pragma GCC unroll 12
  for (int t = 0; t < TILES; ++t) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[t][v] = _mm512_setzero_ps();
  }
  for (int64_t c = 0; c < CI; ++c) {
    __m512 u[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) u[v] = _mm512_loadu_ps(U + c * CO + o0 + 16 * v);
#pragma GCC unroll 12
    for (int t = 0; t < TILES; ++t) {
      const __m512 b = _mm512_set1_ps(V[t * CI + c]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[t][v] = _mm512_fmadd_ps(b, u[v], acc[t][v]);
    }
  }
#pragma GCC unroll 12
  for (int t = 0; t < TILES; ++t) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(M + t * CO + o0 + 16 * v, acc[t][v]);
  }
}

template <int TILES>
PYIMG_AVX512 void products(const float* V, const float* U, float* M, const Problem& p) {
  const int64_t v_stride = TILES * p.CI, m_stride = TILES * p.CO, u_stride = p.CI * p.CO;
  for (int xi = 0; xi < 16; ++xi) {
    int64_t o0 = 0;
    for (; o0 + 32 <= p.CO; o0 += 32) {
      product<TILES, 2>(V + xi * v_stride, U + xi * u_stride, M + xi * m_stride, p.CI, p.CO,
                        o0);
    }
    if (o0 < p.CO) {
      product<TILES, 1>(V + xi * v_stride, U + xi * u_stride, M + xi * m_stride, p.CI, p.CO,
                        o0);
    }
  }
}

using Products = void (*)(const float*, const float*, float*, const Problem&);

// Entry tiles - 1: the block function for that many tiles.
template <int... K>
constexpr std::array<Products, sizeof...(K)> products_table(std::integer_sequence<int, K...>) {
  return {&products<K + 1>...};
}

// Y = A^T M A for tile t, 16 output channels from o, then bias, residual and activation,
// stored to the pixels of the tile inside the output.
template <typename T>
PYIMG_AVX512 void output_transform(const float* M, int64_t m_stride, const T* residual,
                                   T* out, const Problem& p, const Epilogue& e, int64_t n,
                                   int64_t oh, int64_t ow, int64_t o) {
  __m512 m[16];
  for (int xi = 0; xi < 16; ++xi) m[xi] = _mm512_loadu_ps(M + xi * m_stride + o);
  __m512 s[2][4];  // A^T M
  for (int j = 0; j < 4; ++j) {
    s[0][j] = _mm512_add_ps(_mm512_add_ps(m[j], m[4 + j]), m[8 + j]);
    s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m[4 + j], m[8 + j]), m[12 + j]);
  }
  const __m512 bias = e.bias != nullptr ? _mm512_loadu_ps(e.bias + o) : _mm512_setzero_ps();
  const __m512 slope = e.alpha != nullptr ? _mm512_loadu_ps(e.alpha + o)
                                          : _mm512_set1_ps(e.slope);
  for (int i = 0; i < 2 && oh + i < p.Ho; ++i) {
    __m512 y[2];  // (A^T M) A
    y[0] = _mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), s[i][2]);
    y[1] = _mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]), s[i][3]);
    for (int j = 0; j < 2 && ow + j < p.Wo; ++j) {
      const int64_t at = ((n * p.Ho + oh + i) * p.Wo + ow + j) * p.CO + o;
      __m512 v = _mm512_add_ps(y[j], bias);
      if (residual != nullptr) v = _mm512_add_ps(v, vec512::load16(residual + at));
      vec512::store16(out + at, vec512::activate16(v, e.act, slope));
    }
  }
}

// Output tile row tr of image n; V and M are this task's scratch.
template <typename T>
PYIMG_AVX512 void tile_row(const T* x, const float* U, const T* residual, T* out,
                           const Problem& p, const Epilogue& e, int64_t n, int64_t tr,
                           float* V, float* M) {
  static constexpr auto products =
      products_table(std::make_integer_sequence<int, kTiles>{});
  for (int64_t tc0 = 0; tc0 < p.tiles_w; tc0 += kTiles) {
    const int tiles = static_cast<int>(std::min<int64_t>(kTiles, p.tiles_w - tc0));
    for (int64_t c = 0; c < p.CI; c += 16) {
      input_transform(x, p, n, 2 * tr - p.ph, 2 * tc0 - p.pw, tiles, c, V);
    }
    products[tiles - 1](V, U, M, p);
    for (int t = 0; t < tiles; ++t) {
      for (int64_t o = 0; o < p.CO; o += 16) {
        output_transform(M + t * p.CO, tiles * p.CO, residual, out, p, e, n, 2 * tr,
                         2 * (tc0 + t), o);
      }
    }
  }
}

#endif  // PYIMG_HAVE_AVX512_KERNELS

// g[co][ci][3][3] back from U = G g G^T (to within U's rounding): G's rows 0 and 3 are
// unit vectors and row 1 is (1, 1, 1) / 2.
std::vector<float> plain_weight(const float* U, int64_t CI, int64_t CO) {
  std::vector<float> g(CO * CI * 9);
  for (int64_t co = 0; co < CO; ++co) {
    for (int64_t ci = 0; ci < CI; ++ci) {
      float* f = g.data() + (co * CI + ci) * 9;
      auto u = [&](int a, int b) { return U[((a * 4 + b) * CI + ci) * CO + co]; };
      f[0] = u(0, 0), f[2] = u(0, 3), f[6] = u(3, 0), f[8] = u(3, 3);
      f[1] = 2 * u(0, 1) - f[0] - f[2];
      f[7] = 2 * u(3, 1) - f[6] - f[8];
      f[3] = 2 * u(1, 0) - f[0] - f[6];
      f[5] = 2 * u(1, 3) - f[2] - f[8];
      f[4] = 4 * u(1, 1) - f[0] - f[1] - f[2] - f[3] - f[5] - f[6] - f[7] - f[8];
    }
  }
  return g;
}

template <typename T>
void run(const T* x, const float* U, const T* residual, T* out, const Problem& p,
         const Epilogue& e) {
  const int64_t rows = p.N * p.tiles_h;
#ifdef PYIMG_HAVE_AVX512_KERNELS
  if (vec512::cpu_has_avx512()) {
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> V(16 * kTiles * p.CI), M(16 * kTiles * p.CO);
      for (int64_t r = begin; r < end; ++r) {
        tile_row(x, U, residual, out, p, e, r / p.tiles_h, r % p.tiles_h, V.data(), M.data());
      }
    });
    return;
  }
#endif
  const std::vector<float> g = plain_weight(U, p.CI, p.CO);
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      tile_row_scalar(x, g.data(), residual, out, p, e, r / p.tiles_h, r % p.tiles_h);
    }
  });
}

at::Tensor conv2d_winograd_cpu(const at::Tensor& x, const at::Tensor& packed,
                               const std::optional<at::Tensor>& bias, at::IntArrayRef padding,
                               c10::string_view activation, double negative_slope,
                               const std::optional<at::Tensor>& prelu_weight,
                               const std::optional<at::Tensor>& residual) {
  TORCH_CHECK(x.dim() == 4, "conv2d_winograd expects a 4-D (N, C, H, W) input, got ", x.dim(),
              " dimension(s)");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16,
              "conv2d_winograd expects a float32 or bfloat16 input, got ", x.scalar_type());
  TORCH_CHECK(packed.dim() == 3 && packed.size(0) == 16 && packed.size(1) == x.size(1) &&
                  packed.scalar_type() == at::kFloat && packed.is_contiguous(),
              "conv2d_winograd: packed_weight must be a contiguous float32 (16, C_in=",
              x.size(1), ", C_out) tensor, got ", packed.scalar_type(), " of shape ",
              packed.sizes());
  TORCH_CHECK(padding.size() == 2 && padding[0] >= 0 && padding[1] >= 0,
              "conv2d_winograd: padding must be two non-negative values, got ", padding);
  Problem p;
  p.N = x.size(0), p.CI = x.size(1), p.H = x.size(2), p.W = x.size(3), p.CO = packed.size(2);
  p.ph = padding[0], p.pw = padding[1];
  p.Ho = p.H + 2 * p.ph - 2, p.Wo = p.W + 2 * p.pw - 2;
  TORCH_CHECK(p.CI % 16 == 0 && p.CO % 16 == 0, "conv2d_winograd: C_in and C_out must be "
              "multiples of 16, got ", p.CI, " and ", p.CO);
  TORCH_CHECK(p.Ho > 0 && p.Wo > 0, "conv2d_winograd: the 3x3 kernel is larger than the "
              "padded ", p.H, "x", p.W, " input");
  p.tiles_h = (p.Ho + 1) / 2, p.tiles_w = (p.Wo + 1) / 2;
  const auto cl = at::MemoryFormat::ChannelsLast;
  const at::Tensor xc = x.contiguous(cl);
  at::Tensor out = at::empty({p.N, p.CO, p.Ho, p.Wo}, x.options().memory_format(cl));
  at::Tensor res;
  if (residual.has_value()) {
    TORCH_CHECK(residual->sizes() == out.sizes() && residual->scalar_type() == x.scalar_type(),
                "conv2d_winograd: residual must have the output's shape ", out.sizes(),
                " and the input's dtype, got ", residual->scalar_type(), " of shape ",
                residual->sizes());
    res = residual->contiguous(cl);
  }
  if (out.numel() == 0) return out;
  const at::Tensor b = channel_values(bias, p.CO, "conv2d_winograd", "bias");
  const at::Tensor a = channel_values(prelu_weight, p.CO, "conv2d_winograd", "prelu_weight");
  const Epilogue e{parse_activation(activation), static_cast<float>(negative_slope),
                   b.defined() ? b.data_ptr<float>() : nullptr,
                   a.defined() ? a.data_ptr<float>() : nullptr};
  TORCH_CHECK(e.act != Activation::kSigmoid, "conv2d_winograd: sigmoid is not fused here");
  TORCH_CHECK(!res.defined() || e.act == Activation::kNone || e.act == Activation::kReLU,
              "conv2d_winograd: only none or relu follow a residual sum");
  TORCH_CHECK((e.act == Activation::kPReLU) == (e.alpha != nullptr),
              "conv2d_winograd: prelu_weight is given exactly when activation='prelu'");
  const float* U = packed.data_ptr<float>();
  if (x.scalar_type() == at::kFloat) {
    run(xc.data_ptr<float>(), U, res.defined() ? res.data_ptr<float>() : nullptr,
        out.data_ptr<float>(), p, e);
  } else {
    using BF = c10::BFloat16;
    run(xc.data_ptr<BF>(), U, res.defined() ? res.data_ptr<BF>() : nullptr,
        out.data_ptr<BF>(), p, e);
  }
  return out;
}

}  // namespace
}  // namespace pyimg

TORCH_LIBRARY_IMPL(pyimg, CPU, m) { m.impl("conv2d_winograd", &pyimg::conv2d_winograd_cpu); }
