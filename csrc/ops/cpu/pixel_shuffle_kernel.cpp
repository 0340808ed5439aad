// CPU kernels of pixel_shuffle, pixel_unshuffle and the fused backward.
// Each output row is written contiguously by one task; inputs are read through their strides,
// so non-contiguous and channels_last inputs need no copy.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "ops/pixel_shuffle.h"

namespace pyimg {
namespace {

struct Strides4 {
  int64_t n, c, h, w;
};

Strides4 strides_of(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

// Enough rows per task that each task moves at least ~32K elements.
int64_t grain_rows(int64_t row_length) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(row_length, 1)); }

bool is_channels_last(const at::Tensor& out) {
  return output_memory_format(out) == at::MemoryFormat::ChannelsLast;
}

// small (N, Co*r*r, H, W) -> large (N, Co, H*r, W*r): out = act(x + bias[c]).
template <typename T, bool kFused>
void shuffle(const at::Tensor& x, int64_t r, const FusedEpilogue& epilogue, at::Tensor& out) {
  using Acc = at::opmath_type<T>;
  const auto e = view_of<T, Acc>(epilogue);
  const auto value = [&e](T v, int64_t c, int64_t co) -> T {
    if constexpr (kFused) {
      return static_cast<T>(activate<Acc>(e.act, static_cast<Acc>(v) + e.bias_at(c), e.alpha(co)));
    } else {
      return v;
    }
  };
  const T* src = x.const_data_ptr<T>();
  T* dst = out.mutable_data_ptr<T>();
  const Strides4 s = strides_of(x);
  const int64_t Co = out.size(1), Ho = out.size(2), Wo = out.size(3), W = Wo / r, rr = r * r;

  if (is_channels_last(out)) {
    at::parallel_for(0, out.size(0) * Ho * Wo, grain_rows(Co), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t wo = row % Wo, ho = (row / Wo) % Ho, n = row / (Wo * Ho);
        const int64_t ij = (ho % r) * r + wo % r;
        const T* in = src + n * s.n + (ho / r) * s.h + (wo / r) * s.w + ij * s.c;
        T* o = dst + row * Co;
        for (int64_t co = 0; co < Co; ++co) o[co] = value(in[co * rr * s.c], co * rr + ij, co);
      }
    });
    return;
  }
  at::parallel_for(0, out.size(0) * Co * Ho, grain_rows(Wo), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t ho = row % Ho, co = (row / Ho) % Co, n = row / (Ho * Co);
      T* o = dst + row * Wo;
      for (int64_t j = 0; j < r; ++j) {
        const int64_t c = co * rr + (ho % r) * r + j;
        const T* in = src + n * s.n + c * s.c + (ho / r) * s.h;
        for (int64_t w = 0; w < W; ++w) o[w * r + j] = value(in[w * s.w], c, co);
      }
    }
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
  const auto value = [&](T g, const T* xp, int64_t c, int64_t co) -> T {
    if constexpr (kFused) {
      const Acc z = static_cast<Acc>(*xp) + e.bias_at(c);
      return static_cast<T>(static_cast<Acc>(g) * activation_grad<Acc>(e.act, z, e.alpha(co)));
    } else {
      return g;
    }
  };

  if (is_channels_last(out)) {
    at::parallel_for(0, out.size(0) * H * W, grain_rows(C), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t w = row % W, h = (row / W) % H, n = row / (W * H);
        const T* in = src + n * L.n + h * r * L.h + w * r * L.w;
        const T* xp = kFused ? xs + n * s.n + h * s.h + w * s.w : nullptr;
        T* o = dst + row * C;
        int64_t c = 0;
        for (int64_t co = 0; co < C / rr; ++co) {
          for (int64_t i = 0; i < r; ++i) {
            for (int64_t j = 0; j < r; ++j, ++c) {
              o[c] = value(in[co * L.c + i * L.h + j * L.w], kFused ? xp + c * s.c : nullptr, c, co);
            }
          }
        }
      }
    });
    return;
  }
  at::parallel_for(0, out.size(0) * C * H, grain_rows(W), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t h = row % H, c = (row / H) % C, n = row / (H * C);
      const int64_t co = c / rr, i = (c % rr) / r, j = c % r;
      const T* in = src + n * L.n + co * L.c + (h * r + i) * L.h + j * L.w;
      const T* xp = kFused ? xs + n * s.n + c * s.c + h * s.h : nullptr;
      T* o = dst + row * W;
      for (int64_t w = 0; w < W; ++w) {
        o[w] = value(in[w * r * L.w], kFused ? xp + w * s.w : nullptr, c, co);
      }
    }
  });
}

at::Tensor pixel_shuffle_cpu(const at::Tensor& x, int64_t r, const std::optional<at::Tensor>& bias,
                             c10::string_view activation, const std::optional<at::Tensor>& weight,
                             double negative_slope) {
  check_small_tensor(x, r, "pixel_shuffle");
  const FusedEpilogue epilogue = check_epilogue(x, r, bias, activation, weight, negative_slope);
  at::Tensor out = empty_large(x, r);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pixel_shuffle_cpu",
                                  [&] {
                                    if (epilogue.is_identity()) {
                                      shuffle<scalar_t, false>(x, r, epilogue, out);
                                    } else {
                                      shuffle<scalar_t, true>(x, r, epilogue, out);
                                    }
                                  });
  return out;
}

at::Tensor pixel_unshuffle_cpu(const at::Tensor& x, int64_t r) {
  check_large_tensor(x, r, "pixel_unshuffle");
  at::Tensor out = empty_small(x, r);
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
  check_small_tensor(x, r, "pixel_shuffle_backward");
  check_grad_out(grad_out, x, r);
  const FusedEpilogue epilogue = check_epilogue(x, r, bias, activation, weight, negative_slope);
  at::Tensor out = empty_like_input(x);
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
