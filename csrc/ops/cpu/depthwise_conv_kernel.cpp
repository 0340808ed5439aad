// CPU kernel of depthwise_conv2d: direct convolution with the epilogue fused into the store.
//
// NCHW: one output row (n, co, oh) per work unit, accumulated in a row buffer tap by tap; each
// tap's valid output columns are computed once, so the inner loop is a branch-free
// multiply-add along the row (contiguous for stride 1) that the compiler vectorizes.
// channels_last: one output pixel per step, accumulated across all channels at once with the
// weights stored taps-major (C_out contiguous), so the inner loop runs along channels.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "ops/cpu/parallel.h"
#include "ops/depthwise_conv.h"

namespace pyimg {
namespace {

using cpu::grain_for;
using cpu::parallel_for;

// Output columns [lo, hi) whose input column ow * sw + offset lies in [0, W).
struct ColumnRange {
  int64_t lo, hi;
};

ColumnRange valid_columns(int64_t offset, int64_t sw, int64_t W, int64_t OW) {
  const int64_t lo = offset >= 0 ? 0 : (-offset + sw - 1) / sw;
  const int64_t hi = W - 1 - offset >= 0 ? std::min(OW, (W - 1 - offset) / sw + 1) : 0;
  return {lo, std::max(lo, hi)};
}

// The epilogue's per-channel values, dense (bias 0, scale 1, shift 0 where absent: exact no-ops
// in floating point), so the store loops below run without a branch per element.
template <typename Acc>
struct ChannelTables {
  std::vector<Acc> bias, scale, shift, alpha;

  explicit ChannelTables(const DepthwiseCall& call) {
    const DepthwiseEpilogue<Acc> e = epilogue_of<Acc>(call);
    const int64_t C = call.g.C_out;
    bias = dense_table(e.bias, C, Acc(0));
    scale = dense_table(e.scale, C, Acc(1));
    shift = dense_table(e.shift, C, Acc(0));
    alpha = dense_table(e.alpha, C, Acc(0));
  }
};

enum class Residual { kNone, kBefore, kAfter };

// dst[k] = epilogue(acc[k]) for k < len: channel co for every k (a row, kPerElement false) or
// channel k (a channels_last pixel, kPerElement true).
template <Activation kAct, Residual kRes, bool kPerElement, typename T, typename Acc>
void store(T* __restrict__ dst, const Acc* __restrict__ acc, const T* __restrict__ res,
           int64_t len, int64_t co, const ChannelTables<Acc>& tables) {
  const Acc* __restrict__ b = tables.bias.data() + (kPerElement ? 0 : co);
  const Acc* __restrict__ s = tables.scale.data() + (kPerElement ? 0 : co);
  const Acc* __restrict__ t = tables.shift.data() + (kPerElement ? 0 : co);
  const Acc* __restrict__ a = tables.alpha.data() + (kPerElement ? 0 : co);
  for (int64_t k = 0; k < len; ++k) {
    const int64_t c = kPerElement ? k : 0;
    Acc u = (acc[k] + b[c]) * s[c] + t[c];
    if constexpr (kRes == Residual::kBefore) u += static_cast<Acc>(res[k]);
    u = activate(kAct, u, a[c]);
    if constexpr (kRes == Residual::kAfter) u += static_cast<Acc>(res[k]);
    dst[k] = static_cast<T>(u);
  }
}

// store<...> for the call's activation and residual, as a callable.
template <bool kPerElement, typename T, typename Acc>
auto store_for(const DepthwiseCall& call) {
  using Fn = void (*)(T*, const Acc*, const T*, int64_t, int64_t, const ChannelTables<Acc>&);
  const auto with_act = [&](auto res) -> Fn {
    constexpr Residual kRes = decltype(res)::value;
    switch (call.act) {
      case Activation::kReLU:
        return &store<Activation::kReLU, kRes, kPerElement, T, Acc>;
      case Activation::kLeakyReLU:
      case Activation::kPReLU:
        return &store<Activation::kPReLU, kRes, kPerElement, T, Acc>;
      default:
        return &store<Activation::kNone, kRes, kPerElement, T, Acc>;
    }
  };
  if (!call.residual.defined()) {
    return with_act(std::integral_constant<Residual, Residual::kNone>{});
  }
  if (call.add_before_activation) {
    return with_act(std::integral_constant<Residual, Residual::kBefore>{});
  }
  return with_act(std::integral_constant<Residual, Residual::kAfter>{});
}

// A call's inputs and its output with the epilogue that writes it, for a kernel storing rows
// of one channel (kPerElement false) or channels_last pixels (true).
template <typename T, bool kPerElement>
struct Operands {
  using Acc = at::opmath_type<T>;

  const T* x;
  const Acc* taps;
  const T* residual;
  T* out;
  ChannelTables<Acc> tables;
  void (*store_fn)(T*, const Acc*, const T*, int64_t, int64_t, const ChannelTables<Acc>&);

  explicit Operands(const DepthwiseCall& call)
      : x(call.x.const_data_ptr<T>()),
        taps(call.taps.const_data_ptr<Acc>()),
        residual(call.residual.defined() ? call.residual.const_data_ptr<T>() : nullptr),
        out(call.out.mutable_data_ptr<T>()),
        tables(call),
        store_fn(store_for<kPerElement, T, Acc>(call)) {}

  // Output elements [offset, offset + len) from their conv sums acc.
  void store(int64_t offset, const Acc* acc, int64_t len, int64_t co) const {
    store_fn(out + offset, acc, residual != nullptr ? residual + offset : nullptr, len, co,
             tables);
  }
};

template <typename T>
void depthwise_rows(const DepthwiseCall& call) {
  using Acc = at::opmath_type<T>;
  const DepthwiseGeometry g = call.g;
  const Operands<T, false> op(call);
  const T* x = op.x;
  const Acc* taps = op.taps;
  std::vector<ColumnRange> columns(g.KW);
  for (int64_t kw = 0; kw < g.KW; ++kw) {
    columns[kw] = valid_columns(kw * g.dw - g.pad_left, g.sw, g.W, g.OW);
  }
  const int64_t units = g.N * g.C_out * g.OH;
  parallel_for(0, units, grain_for(g.OW * g.KH * g.KW), [&](int64_t begin, int64_t end) {
    std::vector<Acc> buffer(g.OW);
    Acc* __restrict__ acc = buffer.data();
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t oh = unit % g.OH, co = unit / g.OH % g.C_out, n = unit / (g.OH * g.C_out);
      const T* plane = x + (n * g.C + co / g.multiplier) * g.H * g.W;
      std::fill(acc, acc + g.OW, Acc(0));
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t ih = oh * g.sh - g.pad_top + kh * g.dh;
        if (ih < 0 || ih >= g.H) continue;
        const T* row = plane + ih * g.W;
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const Acc w = taps[(kh * g.KW + kw) * g.C_out + co];
          const T* __restrict__ src = row + kw * g.dw - g.pad_left;
          const ColumnRange c = columns[kw];
          if (g.sw == 1) {
            for (int64_t ow = c.lo; ow < c.hi; ++ow) acc[ow] += w * static_cast<Acc>(src[ow]);
          } else {
            for (int64_t ow = c.lo; ow < c.hi; ++ow) {
              acc[ow] += w * static_cast<Acc>(src[ow * g.sw]);
            }
          }
        }
      }
      op.store(unit * g.OW, acc, g.OW, co);
    }
  });
}

template <typename T>
void depthwise_channels_last(const DepthwiseCall& call) {
  using Acc = at::opmath_type<T>;
  const DepthwiseGeometry g = call.g;
  const Operands<T, true> op(call);
  const T* x = op.x;
  const Acc* taps = op.taps;
  const int64_t pixels = g.N * g.OH * g.OW, C_out = g.C_out, m = g.multiplier;
  parallel_for(0, pixels, grain_for(C_out * g.KH * g.KW), [&](int64_t begin, int64_t end) {
    std::vector<Acc> buffer(C_out);
    Acc* __restrict__ acc = buffer.data();
    for (int64_t p = begin; p < end; ++p) {
      const int64_t ow = p % g.OW, oh = p / g.OW % g.OH, n = p / (g.OW * g.OH);
      std::fill(acc, acc + C_out, Acc(0));
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t ih = oh * g.sh - g.pad_top + kh * g.dh;
        if (ih < 0 || ih >= g.H) continue;
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t iw = ow * g.sw - g.pad_left + kw * g.dw;
          if (iw < 0 || iw >= g.W) continue;
          const T* __restrict__ px = x + ((n * g.H + ih) * g.W + iw) * g.C;
          const Acc* __restrict__ w = taps + (kh * g.KW + kw) * C_out;
          if (m == 1) {
            for (int64_t c = 0; c < C_out; ++c) acc[c] += w[c] * static_cast<Acc>(px[c]);
          } else {
            for (int64_t c = 0; c < C_out; ++c) acc[c] += w[c] * static_cast<Acc>(px[c / m]);
          }
        }
      }
      op.store(p * C_out, acc, C_out, 0);
    }
  });
}

void depthwise_conv2d_cpu(const DepthwiseCall& call) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, call.x.scalar_type(),
                                  "depthwise_conv2d_cpu", [&] {
                                    if (call.channels_last) {
                                      depthwise_channels_last<scalar_t>(call);
                                    } else {
                                      depthwise_rows<scalar_t>(call);
                                    }
                                  });
}

}  // namespace

TORCH_LIBRARY_IMPL(pyimg, CPU, m) {
  m.impl("depthwise_conv2d", &depthwise_conv2d_impl<depthwise_conv2d_cpu>);
}

}  // namespace pyimg
