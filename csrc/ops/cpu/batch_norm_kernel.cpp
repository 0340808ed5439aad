// CPU kernels of batch_norm_stats, bn_prelu and bn_prelu_backward.
//
// Reductions split each channel into runs of about kChunk values (part of one NCHW plane, or a
// block of channels_last pixels), reduce each run while it sits in cache (two passes: mean,
// then squared deviations, which is as stable as Welford without a division per element), and
// combine the runs' partial results in a fixed order with Chan et al.'s pairwise formula. The
// run boundaries depend on the shape only, never on the thread count: results are
// deterministic. The elementwise passes read per-channel tables built once per call.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ops/activation.h"
#include "ops/batch_norm.h"
#include "ops/common.h"
#include "ops/cpu/parallel.h"

namespace pyimg {
namespace {

using cpu::grain_for;
using cpu::parallel_for;

constexpr int64_t kChunk = 4096;

// Sum of f(i) for i < len in kLanes independent accumulators, so the loop vectorizes without
// reassociating floating-point math (the order is fixed, so the result is deterministic).
template <typename Acc, typename F>
Acc sum_of(int64_t len, const F& f) {
  constexpr int kLanes = 16;
  Acc lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes) {
#pragma GCC unroll 16
    for (int j = 0; j < kLanes; ++j) lanes[j] += f(i + j);
  }
  Acc total = 0;
  for (; i < len; ++i) total += f(i);
  for (int j = 0; j < kLanes; ++j) total += lanes[j];
  return total;
}

// The runs of a 4-D input. NCHW: run (s, c) with s = n * per_image + k is values
// [k * len, (k + 1) * len) of plane (n, c). channels_last: run (s, c) is channel c of pixels
// [s * len, (s + 1) * len), stride C.
struct Runs {
  bool channels_last;
  int64_t N, C, HW, len, per_image, count;
};

Runs runs_of(const at::Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  if (is_channels_last(x)) {
    const int64_t len = std::max<int64_t>(16, kChunk / C);
    return {true, N, C, HW, len, 0, (N * HW + len - 1) / len};
  }
  const int64_t per_image = (HW + kChunk - 1) / kChunk;
  return {false, N, C, HW, kChunk, per_image, N * per_image};
}

// Calls f(kUnit, s, c, offset, length) for every run, whose values are at offset + i * stride
// (stride 1 when kUnit, else C). channels_last tasks take every channel of a pixel block, so
// the block is read from memory once.
template <typename F>
void for_each_run(const Runs& r, const F& f) {
  if (r.channels_last) {
    const int64_t pixels = r.N * r.HW;
    parallel_for(0, r.count, grain_for(r.len * r.C),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t s = begin; s < end; ++s) {
                         const int64_t p0 = s * r.len, len = std::min(r.len, pixels - p0);
                         for (int64_t c = 0; c < r.C; ++c) {
                           f(std::false_type{}, s, c, p0 * r.C + c, len);
                         }
                       }
                     });
    return;
  }
  parallel_for(0, r.count * r.C, grain_for(r.len),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t t = begin; t < end; ++t) {
                       const int64_t s = t / r.C, c = t % r.C;
                       const int64_t n = s / r.per_image, p0 = (s % r.per_image) * r.len;
                       f(std::true_type{}, s, c, (n * r.C + c) * r.HW + p0,
                         std::min(r.len, r.HW - p0));
                     }
                   });
}

template <bool kUnit, typename T>
struct Strided {
  const T* p;
  int64_t stride;
  T operator[](int64_t i) const { return kUnit ? p[i] : p[i * stride]; }
};

template <typename T>
void stats(const at::Tensor& x, at::Tensor& mean_out, at::Tensor& var_out) {
  using Acc = at::opmath_type<T>;
  const Runs r = runs_of(x);
  const T* src = x.const_data_ptr<T>();
  std::vector<Acc> means(r.count * r.C), m2s(r.count * r.C);
  std::vector<int64_t> counts(r.count);
  for_each_run(r, [&](auto unit, int64_t s, int64_t c, int64_t offset, int64_t len) {
    const Strided<decltype(unit)::value, T> v{src + offset, r.C};
    const Acc mean = sum_of<Acc>(len, [&](int64_t i) { return static_cast<Acc>(v[i]); }) / len;
    means[s * r.C + c] = mean;
    m2s[s * r.C + c] = sum_of<Acc>(len, [&](int64_t i) {
      const Acc d = static_cast<Acc>(v[i]) - mean;
      return d * d;
    });
    if (c == 0) counts[s] = len;
  });
  Acc* mean_out_p = mean_out.mutable_data_ptr<Acc>();
  Acc* var_out_p = var_out.mutable_data_ptr<Acc>();
  parallel_for(0, r.C, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      // Chan, Golub & LeVeque's update, one run at a time, in double.
      double n = 0, mean = 0, m2 = 0;
      for (int64_t s = 0; s < r.count; ++s) {
        const double nb = static_cast<double>(counts[s]), total = n + nb;
        const double delta = means[s * r.C + c] - mean;
        mean += delta * nb / total;
        m2 += m2s[s * r.C + c] + delta * delta * n * nb / total;
        n = total;
      }
      mean_out_p[c] = static_cast<Acc>(mean);
      var_out_p[c] = static_cast<Acc>(m2 / n);
    }
  });
}

// Per-channel constants of the elementwise passes: z = (x - mean) * scale + shift, PReLU with
// alpha; the backward's grad_x = scale * dz + b * (x - mean) + d. nan_step is the gradient's
// step at a NaN z: 1 for a ReLU (ATen passes the gradient there), 0 for a PReLU (alpha).
template <typename Acc>
struct Coeffs {
  Acc mean, scale, shift, alpha, b, d, nan_step;

  Acc z(Acc x) const { return (x - mean) * scale + shift; }
};

// The same, one array per constant, so a loop over the channels of a channels_last pixel
// reads each with contiguous (vector) loads.
template <typename Acc>
struct Tables {
  std::vector<Acc> mean, scale, shift, alpha, b, d;
  Acc nan_step;

  Tables(const BatchNormView<Acc>& v, int64_t C)
      : mean(C), scale(C), shift(C), alpha(C), b(C, Acc(0)), d(C, Acc(0)),
        nan_step(v.relu ? Acc(1) : Acc(0)) {
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = v.mean[c];
      scale[c] = v.scale(c);
      shift[c] = v.shift(c);
      alpha[c] = v.slope(c);
    }
  }
  Coeffs<Acc> at(int64_t c) const {
    return {mean[c], scale[c], shift[c], alpha[c], b[c], d[c], nan_step};
  }
};

// out[i] = f(i, coeffs of i's channel) over a tensor in x's layout: NCHW by planes, whose
// coefficients are copied to a local first (so the compiler keeps them in registers), and
// channels_last by pixel rows. ivdep: out never overlaps the inputs f reads.
template <typename T, typename Acc, typename F>
void for_each_element(const at::Tensor& x, const Tables<Acc>& t, T* out, const F& f) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  if (is_channels_last(x)) {
    parallel_for(0, N * HW, grain_for(C), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        T* o = out + p * C;
#pragma GCC ivdep
        for (int64_t c = 0; c < C; ++c) o[c] = f(p * C + c, t.at(c));
      }
    });
    return;
  }
  parallel_for(0, N * C, grain_for(HW), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const Coeffs<Acc> k = t.at(plane % C);
      const int64_t base = plane * HW;
#pragma GCC ivdep
      for (int64_t i = base; i < base + HW; ++i) out[i] = f(i, k);
    }
  });
}

// kAct: kPReLU (the identity with alpha 1) or kReLU, which maps -inf to 0 where a PReLU of
// slope 0 gives 0 * -inf.
template <typename T, bool kResidual, Activation kAct>
void forward(const at::Tensor& x, const BatchNormParams& params, const at::Tensor& residual,
             at::Tensor& out) {
  using Acc = at::opmath_type<T>;
  const Tables<Acc> t(batch_norm_view<Acc>(params), x.size(1));
  const T* xs = x.const_data_ptr<T>();
  const T* res = kResidual ? residual.const_data_ptr<T>() : nullptr;
  for_each_element(x, t, out.mutable_data_ptr<T>(), [&](int64_t i, const Coeffs<Acc>& k) {
    Acc y = activate<Acc>(kAct, k.z(static_cast<Acc>(xs[i])), k.alpha);
    if constexpr (kResidual) y += static_cast<Acc>(res[i]);
    return static_cast<T>(y);
  });
}

// The steps of the PReLU gradient, from z's bits: gcc compiled every floating-point form of
// these selects (?:, bool to float, std::min) into a branch, mispredicted on every other
// element, and the backward ran 10x slower. Read as a signed integer, a positive z lies in
// [1, +inf's bits]; a NaN's magnitude lies above +inf's bits (either sign: x86 arithmetic makes
// negative NaNs).
template <typename Acc>
struct ZBits {
  using Bits = std::conditional_t<sizeof(Acc) == 8, std::int64_t, std::int32_t>;
  static constexpr Bits kInf = std::bit_cast<Bits>(std::numeric_limits<Acc>::infinity());

  Bits bits;
  explicit ZBits(Acc z) : bits(std::bit_cast<Bits>(z)) {}
  // 1 for z > 0; 0 for z <= 0 (as ATen's PReLU gradient at 0) and for NaN.
  Bits positive() const { return (bits > 0) & (bits <= kInf); }
  Bits nan() const { return (bits & std::numeric_limits<Bits>::max()) > kInf; }
};

// g * activation_grad(prelu or relu, z, alpha).
template <typename Acc>
Acc dz_of(Acc g, Acc z, const Coeffs<Acc>& k) {
  const ZBits<Acc> b(z);
  const Acc step = static_cast<Acc>(b.positive()) + k.nan_step * static_cast<Acc>(b.nan());
  return g * (k.alpha + (Acc(1) - k.alpha) * step);
}

// g * min(z, 0), NaN kept: the gradient of the PReLU weight. z's bits are cleared where it is
// positive (z * (1 - step) would make 0 * inf).
template <typename Acc>
Acc negz_of(Acc g, Acc z) {
  const ZBits<Acc> b(z);
  return g * std::bit_cast<Acc>(b.bits & (b.positive() - 1));
}

template <typename T>
void backward(const at::Tensor& grad, const at::Tensor& x, const BatchNormParams& params,
              bool training, at::Tensor& grad_x, at::Tensor& sum_dz, at::Tensor& sum_dz_xhat,
              at::Tensor& sum_negz) {
  using Acc = at::opmath_type<T>;
  const int64_t C = x.size(1);
  Tables<Acc> t(batch_norm_view<Acc>(params), C);
  const T* gs = grad.const_data_ptr<T>();
  const T* xs = x.const_data_ptr<T>();
  const bool prelu = params.alpha.defined();

  // Per run: sum dz, sum dz * (x - mean), sum g * min(z, 0).
  const Runs r = runs_of(x);
  std::vector<Acc> partial(3 * r.count * C);
  for_each_run(r, [&](auto unit, int64_t s, int64_t c, int64_t offset, int64_t len) {
    constexpr bool kUnit = decltype(unit)::value;
    const Strided<kUnit, T> g{gs + offset, C}, v{xs + offset, C};
    const Coeffs<Acc> k = t.at(c);
    Acc* out = partial.data() + 3 * (s * C + c);
    out[0] = sum_of<Acc>(len, [&](int64_t i) {
      return dz_of(static_cast<Acc>(g[i]), k.z(static_cast<Acc>(v[i])), k);
    });
    out[1] = sum_of<Acc>(len, [&](int64_t i) {
      const Acc xv = static_cast<Acc>(v[i]);
      return dz_of(static_cast<Acc>(g[i]), k.z(xv), k) * (xv - k.mean);
    });
    out[2] = !prelu ? Acc(0) : sum_of<Acc>(len, [&](int64_t i) {
      return negz_of(static_cast<Acc>(g[i]), k.z(static_cast<Acc>(v[i])));
    });
  });

  // grad_x = scale * dz + b * (x - mean) + d: Ioffe & Szegedy's backward through the batch
  // statistics when training; in eval, where the statistics are constants, scale * dz (also
  // at a NaN x, where b * (x - mean) would be NaN).
  const double M = static_cast<double>(x.numel() / C);
  const Acc* invstd = params.invstd.const_data_ptr<Acc>();
  Acc* sums[3] = {sum_dz.mutable_data_ptr<Acc>(), sum_dz_xhat.mutable_data_ptr<Acc>(),
                  sum_negz.mutable_data_ptr<Acc>()};
  for (int64_t c = 0; c < C; ++c) {
    double total[3] = {0, 0, 0};
    for (int64_t s = 0; s < r.count; ++s) {
      for (int k = 0; k < 3; ++k) total[k] += partial[3 * (s * C + c) + k];
    }
    total[1] *= invstd[c];
    for (int k = 0; k < 3; ++k) sums[k][c] = static_cast<Acc>(total[k]);
    if (training) {
      t.b[c] = static_cast<Acc>(-t.scale[c] * invstd[c] * total[1] / M);
      t.d[c] = static_cast<Acc>(-t.scale[c] * total[0] / M);
    }
  }
  T* out = grad_x.mutable_data_ptr<T>();
  if (!training) {
    for_each_element(x, t, out, [&](int64_t i, const Coeffs<Acc>& k) {
      return static_cast<T>(k.scale * dz_of(static_cast<Acc>(gs[i]), k.z(static_cast<Acc>(xs[i])), k));
    });
    return;
  }
  for_each_element(x, t, out, [&](int64_t i, const Coeffs<Acc>& k) {
    const Acc xv = static_cast<Acc>(xs[i]);
    const Acc d = dz_of(static_cast<Acc>(gs[i]), k.z(xv), k);
    return static_cast<T>(k.scale * d + k.b * (xv - k.mean) + k.d);
  });
}

std::tuple<at::Tensor, at::Tensor> batch_norm_stats_cpu(const at::Tensor& input) {
  auto [x, mean, var] = prepare_stats(input);
  if (x.numel() == 0) return {mean, var};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "batch_norm_stats",
                                  [&] { stats<scalar_t>(x, mean, var); });
  return {mean, var};
}

at::Tensor bn_prelu_cpu(const at::Tensor& input, const at::Tensor& mean, const at::Tensor& invstd,
                        const std::optional<at::Tensor>& weight,
                        const std::optional<at::Tensor>& bias,
                        const std::optional<at::Tensor>& prelu_weight,
                        const std::optional<at::Tensor>& residual, bool /*training*/,
                        bool relu) {
  auto [x, res, out, params] =
      prepare_bn_prelu(input, mean, invstd, weight, bias, prelu_weight, residual, relu);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bn_prelu", [&] {
    constexpr Activation kReLU = Activation::kReLU, kPReLU = Activation::kPReLU;
    if (res.defined()) {
      (relu ? forward<scalar_t, true, kReLU> : forward<scalar_t, true, kPReLU>)(x, params, res,
                                                                                out);
    } else {
      (relu ? forward<scalar_t, false, kReLU> : forward<scalar_t, false, kPReLU>)(x, params, res,
                                                                                  out);
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> bn_prelu_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& input, const at::Tensor& mean,
    const at::Tensor& invstd, const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& prelu_weight,
    bool training, bool relu) {
  auto [x, grad, params, grad_x, sum_dz, sum_dz_xhat, sum_negz] = prepare_bn_prelu_backward(
      grad_out, input, mean, invstd, weight, bias, prelu_weight, relu);
  if (x.numel() == 0) return {grad_x, sum_dz, sum_dz_xhat, sum_negz};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bn_prelu_backward",
                                  [&] {
                                    backward<scalar_t>(grad, x, params, training, grad_x, sum_dz,
                                                       sum_dz_xhat, sum_negz);
                                  });
  return {grad_x, sum_dz, sum_dz_xhat, sum_negz};
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, CPU, m) {
  m.impl("batch_norm_stats", &batch_norm_stats_cpu);
  m.impl("bn_prelu", &bn_prelu_cpu);
  m.impl("bn_prelu_backward", &bn_prelu_backward_cpu);
}

}  // namespace pyimg
