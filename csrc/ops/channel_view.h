// The per-channel values a fused epilogue reads (a bias, a scale, a PReLU weight, batch
// statistics), as the CPU and the CUDA kernels read them: a value per channel, or none, where
// the epilogue has a value of its own (bias 0, scale 1, the leaky slope). A broadcast view
// (kBroadcast) may also hold one value for every channel, a PReLU weight of one element: its
// reads go through a stride of 0 or 1, which the other views' reads, in the hot loops of the
// epilogues, do without.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>

#include <cstdint>
#include <vector>

namespace pyimg {

template <typename T, bool kBroadcast = false>
struct ChannelView {
  const T* data;   // nullptr: none
  int64_t stride;  // kBroadcast: 1, or 0 when one value serves every channel

  C10_HOST_DEVICE bool defined() const { return data != nullptr; }
  // Channel c's value, of a defined view.
  C10_HOST_DEVICE T operator[](int64_t c) const { return data[kBroadcast ? c * stride : c]; }
  // Channel c's value as Acc, or `absent` without one.
  template <typename Acc>
  C10_HOST_DEVICE Acc value_or(int64_t c, Acc absent) const {
    return data != nullptr ? static_cast<Acc>((*this)[c]) : absent;
  }
};

template <typename T>
using BroadcastView = ChannelView<T, true>;

// t, contiguous, with a value per channel (or, for a broadcast view, one value); an undefined
// t gives the view of none.
template <typename T, bool kBroadcast = false>
ChannelView<T, kBroadcast> channel_view(const at::Tensor& t) {
  if (!t.defined()) return {nullptr, 0};
  return {t.const_data_ptr<T>(), t.numel() > 1 ? 1 : 0};
}

// The values of channels [0, C) in a table, for CPU loops that should read them with plain
// (vector) loads and no branch.
template <typename Acc, typename T, bool kBroadcast>
std::vector<Acc> dense_table(const ChannelView<T, kBroadcast>& v, int64_t C, Acc absent) {
  std::vector<Acc> table(C);
  for (int64_t c = 0; c < C; ++c) table[c] = v.value_or(c, absent);
  return table;
}

}  // namespace pyimg
