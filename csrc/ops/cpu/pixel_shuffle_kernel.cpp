// CPU kernels of pixel_shuffle, pixel_unshuffle and the fused backward.
//
// One task writes whole output rows (for channels_last, a whole image row of W*C values; for
// pixel_unshuffle's NCHW output, the r rows that one input row de-interleaves into), so index
// arithmetic is paid once a row, stores are sequential, and the inputs, read through their
// strides, need no copy. The fused activation runs as a second pass over the
// row while it is still in L1, with the activation fixed at compile time so the loop
// vectorizes.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

#include "ops/cpu/parallel.h"
#include "ops/pixel_shuffle.h"
#include "ops/strides.h"

namespace pyimg {
namespace {

using cpu::grain_for;

// Stops at AVX2: its AVX-512 copy ran no faster on AMD Zen 4 ((1, 48, 270, 480) r4, one
// thread: 1.30-1.57 ms against 1.34-1.64 ms), and this file's many instantiations make
// each copy cost about a minute of compile time.
constexpr cpu::Capability kWidest = cpu::Capability::kAvx2;

// Calls f(std::integral_constant<Activation, act>) so the activation is a compile-time constant.
template <typename F>
void with_activation(Activation act, F&& f) {
  using A = Activation;
  switch (act) {
    case A::kReLU: return f(std::integral_constant<A, A::kReLU>{});
    case A::kLeakyReLU: return f(std::integral_constant<A, A::kLeakyReLU>{});
    case A::kPReLU: return f(std::integral_constant<A, A::kPReLU>{});
    case A::kTanh: return f(std::integral_constant<A, A::kTanh>{});
    case A::kSigmoid: return f(std::integral_constant<A, A::kSigmoid>{});
    default: return f(std::integral_constant<A, A::kNone>{});
  }
}

// o[w * R + j] = f(row_j[w * sw], j) with row_j = in + j * sc: r input rows interleaved into
// one output row. R is fixed at compile time for the common factors so the loop vectorizes.
template <int R, typename T, typename F>
void interleave_fixed(T* o, const T* in, int64_t sc, int64_t sw, int64_t W, const F& f) {
  const T* rows[R];
  for (int j = 0; j < R; ++j) rows[j] = in + j * sc;
  if (sw == 1) {
    for (int64_t w = 0; w < W; ++w) {
      for (int j = 0; j < R; ++j) o[w * R + j] = f(rows[j][w], j);
    }
  } else {
    for (int64_t w = 0; w < W; ++w) {
      for (int j = 0; j < R; ++j) o[w * R + j] = f(rows[j][w * sw], j);
    }
  }
}

template <typename T, typename F>
void interleave(T* o, const T* in, int64_t sc, int64_t sw, int64_t W, int64_t r, const F& f) {
  switch (r) {
    case 1: return interleave_fixed<1>(o, in, sc, sw, W, f);
    case 2: return interleave_fixed<2>(o, in, sc, sw, W, f);
    case 3: return interleave_fixed<3>(o, in, sc, sw, W, f);
    case 4: return interleave_fixed<4>(o, in, sc, sw, W, f);
    default:
      for (int64_t j = 0; j < r; ++j) {
        for (int64_t w = 0; w < W; ++w) o[w * r + j] = f(in[j * sc + w * sw], j);
      }
  }
}

// o[j * oc + w] = f(in[(w * R + j) * sw], j, w) for j < R: one input row de-interleaved into R
// output rows oc apart, the mirror of interleave.
template <int R, typename T, typename F>
void deinterleave_fixed(T* o, int64_t oc, const T* in, int64_t sw, int64_t W, const F& f) {
  T* rows[R];
  for (int j = 0; j < R; ++j) rows[j] = o + j * oc;
  if (sw == 1) {
    for (int64_t w = 0; w < W; ++w) {
      for (int j = 0; j < R; ++j) rows[j][w] = f(in[w * R + j], j, w);
    }
  } else {
    for (int64_t w = 0; w < W; ++w) {
      for (int j = 0; j < R; ++j) rows[j][w] = f(in[(w * R + j) * sw], j, w);
    }
  }
}

template <typename T, typename F>
void deinterleave(T* o, int64_t oc, const T* in, int64_t sw, int64_t W, int64_t r, const F& f) {
  switch (r) {
    case 1: return deinterleave_fixed<1>(o, oc, in, sw, W, f);
    case 2: return deinterleave_fixed<2>(o, oc, in, sw, W, f);
    case 3: return deinterleave_fixed<3>(o, oc, in, sw, W, f);
    case 4: return deinterleave_fixed<4>(o, oc, in, sw, W, f);
    default:
      for (int64_t j = 0; j < r; ++j) {
        for (int64_t w = 0; w < W; ++w) o[j * oc + w] = f(in[(w * r + j) * sw], j, w);
      }
  }
}

// One channels_last output row from a row of input pixels whose channels are dense:
// o[(w * R + j) * Co + co] = f(in[w * sw + co * R * R + i * R + j]). R, and Co when it is
// small (1 or 3: grey and RGB images), fixed at compile time so the gather unrolls.
template <int R, int kCo, typename T, typename F>
void cl_row_fixed(T* o, const T* in, int64_t sw, int64_t W, int64_t Co, int64_t i, const F& f) {
  const int64_t channels = kCo > 0 ? kCo : Co;
  for (int64_t w = 0; w < W; ++w) {
    const T* p = in + w * sw + i * R;
    for (int j = 0; j < R; ++j, o += channels) {
      for (int64_t co = 0; co < channels; ++co) {
        o[co] = f(p + co * R * R + j, co * R * R + i * R + j, co);
      }
    }
  }
}

template <int R, typename T, typename F>
void cl_row_fixed_r(T* o, const T* in, int64_t sw, int64_t W, int64_t Co, int64_t i, const F& f) {
  switch (Co) {
    case 1: return cl_row_fixed<R, 1>(o, in, sw, W, Co, i, f);
    case 3: return cl_row_fixed<R, 3>(o, in, sw, W, Co, i, f);
    default: return cl_row_fixed<R, 0>(o, in, sw, W, Co, i, f);
  }
}

template <typename T, typename F>
void cl_row_dense(T* o, const T* in, int64_t sw, int64_t W, int64_t Co, int64_t r, int64_t i,
                  const F& f) {
  switch (r) {
    case 2: return cl_row_fixed_r<2>(o, in, sw, W, Co, i, f);
    case 3: return cl_row_fixed_r<3>(o, in, sw, W, Co, i, f);
    case 4: return cl_row_fixed_r<4>(o, in, sw, W, Co, i, f);
    default:
      for (int64_t w = 0; w < W; ++w) {
        for (int64_t j = 0; j < r; ++j, o += Co) {
          const int64_t c0 = i * r + j;
          for (int64_t co = 0; co < Co; ++co) {
            o[co] = f(in + w * sw + co * r * r + c0, co * r * r + c0, co);
          }
        }
      }
  }
}

// small (N, Co*r*r, H, W) -> large (N, Co, H*r, W*r): out = act(x + bias[c]).
template <typename T, bool kFused>
void shuffle(const at::Tensor& x, int64_t r, const FusedEpilogue& epilogue, at::Tensor& out) {
  using Acc = at::opmath_type<T>;
  const auto e = view_of<T, Acc>(epilogue);
  const T* src = x.const_data_ptr<T>();
  T* dst = out.mutable_data_ptr<T>();
  const Strides4 s = strides_of(x);
  const int64_t Co = out.size(1), Ho = out.size(2), Wo = out.size(3), W = Wo / r, rr = r * r;

  with_activation(e.act, [&](auto act_constant) {
    constexpr Activation act = decltype(act_constant)::value;
    if (is_channels_last(out)) {
      cpu::parallel_for<kWidest>(
          0, out.size(0) * Ho, grain_for(Wo * Co), [&](int64_t begin, int64_t end) {
        // The epilogue's per-channel values, unpacked once per task into branch-free tables.
        std::vector<Acc> bias(kFused ? Co * rr : 0), alpha(kFused ? Co : 0);
        for (int64_t c = 0; c < static_cast<int64_t>(bias.size()); ++c) bias[c] = e.bias_at(c);
        for (int64_t co = 0; co < static_cast<int64_t>(alpha.size()); ++co) alpha[co] = e.alpha(co);
        const auto value = [&](const T* p, int64_t c, int64_t co) {
          if constexpr (kFused) {
            const Acc z = static_cast<Acc>(*p) + bias[c];
            return static_cast<T>(activate<Acc>(act, z, alpha[co]));
          } else {
            return *p;
          }
        };
        for (int64_t row = begin; row < end; ++row) {
          const int64_t ho = row % Ho, n = row / Ho, i = ho % r;
          const T* in = src + n * s.n + (ho / r) * s.h;
          T* o = dst + row * Wo * Co;
          if (s.c == 1) {
            cl_row_dense(o, in, s.w, W, Co, r, i, value);
          } else {
            for (int64_t w = 0; w < W; ++w) {
              for (int64_t j = 0; j < r; ++j, o += Co) {
                const int64_t c0 = i * r + j;
                for (int64_t co = 0; co < Co; ++co) {
                  o[co] = value(in + w * s.w + (co * rr + c0) * s.c, co * rr + c0, co);
                }
              }
            }
          }
        }
      });
      return;
    }
    cpu::parallel_for<kWidest>(
        0, out.size(0) * Co * Ho, grain_for(Wo), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t ho = row % Ho, co = (row / Ho) % Co, n = row / (Ho * Co);
        const int64_t c0 = co * rr + (ho % r) * r;
        const T* in = src + n * s.n + c0 * s.c + (ho / r) * s.h;
        T* o = dst + row * Wo;
        if constexpr (kFused) {
          const Acc alpha = e.alpha(co);
          if (e.bias.defined()) {
            const T* bias = e.bias.data + c0;
            interleave(o, in, s.c, s.w, W, r, [alpha, bias](T v, int64_t j) {
              const Acc z = static_cast<Acc>(v) + static_cast<Acc>(bias[j]);
              return static_cast<T>(activate<Acc>(act, z, alpha));
            });
          } else {
            interleave(o, in, s.c, s.w, W, r, [alpha](T v, int64_t) {
              return static_cast<T>(activate<Acc>(act, static_cast<Acc>(v), alpha));
            });
          }
        } else {
          interleave(o, in, s.c, s.w, W, r, [](T v, int64_t) { return v; });
        }
      }
    });
  });
}

// large (N, Co, H*r, W*r) -> small (N, Co*r*r, H, W). Fused: out = g * act'(x + bias[c]),
// the gradient of pixel_shuffle's pre-activation, with x the forward's small input.
template <typename T, bool kFused>
void unshuffle(const at::Tensor& large, const at::Tensor& x, int64_t r,
               const FusedEpilogue& epilogue, at::Tensor& out) {
  using Acc = at::opmath_type<T>;
  const auto e = view_of<T, Acc>(epilogue);
  const T* src = large.const_data_ptr<T>();
  const T* xs = kFused ? x.const_data_ptr<T>() : nullptr;
  T* dst = out.mutable_data_ptr<T>();
  const Strides4 L = strides_of(large);
  const Strides4 s = kFused ? strides_of(x) : Strides4{0, 0, 0, 0};
  const int64_t C = out.size(1), H = out.size(2), W = out.size(3), rr = r * r;

  with_activation(e.act, [&](auto act_constant) {
    constexpr Activation act = decltype(act_constant)::value;
    const auto value = [&e](T g, T xv, int64_t c, int64_t co) -> T {
      if constexpr (kFused) {
        const Acc z = static_cast<Acc>(xv) + e.bias_at(c);
        return static_cast<T>(static_cast<Acc>(g) * activation_grad<Acc>(act, z, e.alpha(co)));
      } else {
        return g;
      }
    };
    if (is_channels_last(out)) {
      cpu::parallel_for<kWidest>(
          0, out.size(0) * H, grain_for(W * C), [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          const int64_t h = row % H, n = row / H;
          T* o = dst + row * W * C;
          for (int64_t w = 0; w < W; ++w, o += C) {
            const T* in = src + n * L.n + h * r * L.h + w * r * L.w;
            const T* xp = kFused ? xs + n * s.n + h * s.h + w * s.w : nullptr;
            int64_t c = 0;
            for (int64_t co = 0; co < C / rr; ++co) {
              for (int64_t i = 0; i < r; ++i) {
                for (int64_t j = 0; j < r; ++j, ++c) {
                  const T g = in[co * L.c + i * L.h + j * L.w];
                  o[c] = value(g, kFused ? xp[c * s.c] : g, c, co);
                }
              }
            }
          }
        }
      });
      return;
    }
    // A task row is an input row (n, co, hl), de-interleaved into the output rows
    // (n, co * rr + i * r + j, h) for j < r, with h = hl / r, i = hl % r: every output row
    // written once, the input read once in order, and the indices advanced, not divided.
    const int64_t Co = C / rr, Hl = H * r, plane = H * W;
    cpu::parallel_for<kWidest>(
        0, out.size(0) * Co * Hl, grain_for(W * r), [&](int64_t begin, int64_t end) {
      int64_t hl = begin % Hl, co = begin / Hl % Co, n = begin / (Hl * Co);
      int64_t h = hl / r, i = hl % r;
      for (int64_t row = begin; row < end; ++row) {
        const int64_t c0 = co * rr + i * r;
        const T* in = src + n * L.n + co * L.c + hl * L.h;
        T* o = dst + ((n * C + c0) * H + h) * W;
        if constexpr (kFused) {
          const T* xp = xs + n * s.n + c0 * s.c + h * s.h;
          deinterleave(o, plane, in, L.w, W, r, [&](T g, int64_t j, int64_t w) {
            return value(g, xp[j * s.c + w * s.w], c0 + j, co);
          });
        } else {
          deinterleave(o, plane, in, L.w, W, r, [](T g, int64_t, int64_t) { return g; });
        }
        if (++i == r) {
          i = 0;
          ++h;
        }
        if (++hl == Hl) {
          hl = h = 0;
          if (++co == Co) {
            co = 0;
            ++n;
          }
        }
      }
    });
  });
}

at::Tensor pixel_shuffle_cpu(const at::Tensor& x, int64_t r, const std::optional<at::Tensor>& bias,
                             c10::string_view activation, const std::optional<at::Tensor>& weight,
                             double negative_slope) {
  auto [epilogue, out] = prepare_shuffle(x, r, bias, activation, weight, negative_slope);
  if (out.numel() == 0) return out;
  // libm's scalar tanh and exp cost more than a second pass of ATen's vectorized ones.
  const Activation transcendental = epilogue.act;
  const bool second_pass =
      transcendental == Activation::kTanh || transcendental == Activation::kSigmoid;
  if (second_pass) epilogue.act = Activation::kNone;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pixel_shuffle_cpu",
                                  [&] {
                                    if (epilogue.is_identity()) {
                                      shuffle<scalar_t, false>(x, r, epilogue, out);
                                    } else {
                                      shuffle<scalar_t, true>(x, r, epilogue, out);
                                    }
                                  });
  if (second_pass) transcendental == Activation::kTanh ? out.tanh_() : out.sigmoid_();
  return out;
}

at::Tensor pixel_unshuffle_cpu(const at::Tensor& x, int64_t r) {
  at::Tensor out = prepare_unshuffle(x, r);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pixel_unshuffle_cpu",
                                  [&] { unshuffle<scalar_t, false>(x, x, r, FusedEpilogue{}, out); });
  return out;
}

at::Tensor pixel_shuffle_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x, int64_t r,
                                      const std::optional<at::Tensor>& bias,
                                      c10::string_view activation,
                                      const std::optional<at::Tensor>& weight,
                                      double negative_slope) {
  auto [epilogue, out] =
      prepare_shuffle_backward(grad_out, x, r, bias, activation, weight, negative_slope);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(),
                                  "pixel_shuffle_backward_cpu",
                                  [&] { unshuffle<scalar_t, true>(grad_out, x, r, epilogue, out); });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, CPU, m) {
  m.impl("pixel_shuffle", &pixel_shuffle_cpu);
  m.impl("pixel_unshuffle", &pixel_unshuffle_cpu);
  m.impl("pixel_shuffle_backward", &pixel_shuffle_backward_cpu);
}

}  // namespace pyimg
