// Schema of conv2d_few_outputs: pyimg's CPU convolution for the last layer of an image
// network (64 channels down to 1-16), where oneDNN runs far below the machine's peak;
// pyimg.inference routes those layers here.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(pyimg, m) {
  // act(conv2d(x, weight, bias, stride=1, padding, dilation=1, groups=1)): x (N, C_in, H, W)
  // float32 or bfloat16 with C_in % 16 == 0, out_channels 1-16; output channels_last in x's
  // dtype. packed_weight: (KH, KW, C_out rounded up to 4, C_in) in x's dtype, the extra
  // channels zero (pyimg/inference/few_outputs.py packs it). bias: C_out float32 values.
  // activation: none, relu, leaky_relu (negative_slope), prelu (prelu_weight: C_out float32
  // values) or tanh.
  m.def(
      "conv2d_few_outputs(Tensor x, Tensor packed_weight, Tensor? bias, int out_channels, "
      "int[] padding, str activation, float negative_slope, Tensor? prelu_weight) -> Tensor");
}
