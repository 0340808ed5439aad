// CPU kernel of prelu_channels_: one in-place pass over a convolution's output.
//
// channels_last walks pixels, each a row of C values against the row of C weights, so the
// inner loop is a vectorizable select; NCHW walks planes of one weight each. bf16 values
// are widened by a shift and only the negative ones, which change, are rounded back (to
// nearest even), so positive values, NaN and infinities keep their bits.
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#include <cstdint>
#include <cstring>

#include "ops/common.h"
#include "ops/cpu/parallel.h"

namespace pyimg {
namespace {

using cpu::grain_for;
using cpu::parallel_for;

void prelu_row_float(float* x, const float* alpha, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = v < 0.f ? v * alpha[i] : v;
  }
}

void prelu_plane_float(float* x, float alpha, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = v < 0.f ? v * alpha : v;
  }
}

inline uint16_t scaled_bf16(uint16_t bits, float alpha) {
  uint32_t wide = uint32_t(bits) << 16;
  float v;
  std::memcpy(&v, &wide, 4);
  if (!(v < 0.f)) return bits;
  v *= alpha;
  uint32_t out;
  std::memcpy(&out, &v, 4);
  out += 0x7FFFu + ((out >> 16) & 1u);
  return uint16_t(out >> 16);
}

void prelu_row_bf16(uint16_t* x, const float* alpha, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = scaled_bf16(x[i], alpha[i]);
}

void prelu_plane_bf16(uint16_t* x, float alpha, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = scaled_bf16(x[i], alpha);
}

// Row and Plane are lambdas, not function pointers, so that their calls inline into each
// instruction set's copy of the task.
template <typename T, typename Row, typename Plane>
void run(T* x, const float* alpha, bool channels_last, int64_t N, int64_t C, int64_t HW,
         Row row, Plane plane) {
  if (channels_last) {
    parallel_for(0, N * HW, grain_for(C), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) row(x + p * C, alpha, C);
    });
  } else {
    parallel_for(0, N * C, grain_for(HW), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) plane(x + p * HW, alpha[p % C], HW);
    });
  }
}

void prelu_channels_cpu(at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(x.dim() == 4, "prelu_channels_ expects a 4-D (N, C, H, W) input, but got ",
              x.dim(), " dimension(s)");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16,
              "prelu_channels_ expects a float32 or bfloat16 input, but got ", x.scalar_type());
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  check_same_device(weight, x, "weight", DeviceWording::kArgumentIsOn);
  TORCH_CHECK(weight.scalar_type() == at::kFloat && (weight.numel() == C || weight.numel() == 1),
              "prelu_channels_: weight must be float32 with ", C, " or 1 element(s), but got ",
              weight.scalar_type(), " of shape ", weight.sizes());
  const bool channels_last = x.is_contiguous(at::MemoryFormat::ChannelsLast);
  TORCH_CHECK(channels_last || x.is_contiguous(), "prelu_channels_ works in place on a "
              "contiguous NCHW or channels_last tensor, but got strides ", x.strides());
  if (x.numel() == 0) return;
  const at::Tensor alpha = weight.reshape({-1}).expand({C}).contiguous();
  const float* a = alpha.data_ptr<float>();
  if (x.scalar_type() == at::kFloat) {
    run(x.data_ptr<float>(), a, channels_last, N, C, HW,
        [](float* p, const float* w, int64_t n) { prelu_row_float(p, w, n); },
        [](float* p, float w, int64_t n) { prelu_plane_float(p, w, n); });
  } else {
    auto* data = reinterpret_cast<uint16_t*>(x.data_ptr<at::BFloat16>());
    run(data, a, channels_last, N, C, HW,
        [](uint16_t* p, const float* w, int64_t n) { prelu_row_bf16(p, w, n); },
        [](uint16_t* p, float w, int64_t n) { prelu_plane_bf16(p, w, n); });
  }
}

}  // namespace
}  // namespace pyimg

TORCH_LIBRARY_IMPL(pyimg, CPU, m) { m.impl("prelu_channels_", &pyimg::prelu_channels_cpu); }
