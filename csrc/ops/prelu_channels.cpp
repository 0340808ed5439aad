// Schema of prelu_channels_, the in-place per-channel PReLU that follows a oneDNN
// convolution whose fused post-ops cannot express it (pyimg.inference).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(pyimg, m) {
  // x = x < 0 ? weight[c] * x : x for each channel c, in place; weight has C or 1 values
  // (float32). x is contiguous NCHW or channels_last. Returns nothing, so that
  // torch.compile can functionalize it (it does not take custom ops returning an alias).
  m.def("prelu_channels_(Tensor(a!) x, Tensor weight) -> ()");
}
