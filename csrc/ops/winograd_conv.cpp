// Schema of conv2d_winograd: pyimg's CPU 3x3 convolution by Winograd's minimal filtering
// F(2x2, 3x3) (Lavin & Gray, CVPR 2016, "Fast Algorithms for Convolutional Neural
// Networks"): 16 multiplications per 2x2 output tile and channel pair instead of 36, for
// the 3x3 convolutions that dominate super-resolution networks. pyimg.inference routes
// 3x3 stride-1 convolutions with C_in and C_out multiples of 16 here.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(pyimg, m) {
  // act(conv2d(x, weight, bias, stride=1, padding, dilation=1) [+ residual]) for a 3x3
  // weight: x (N, C_in, H, W) float32 or bfloat16, C_in and C_out multiples of 16; output
  // channels_last in x's dtype. packed_weight: (16, C_in, C_out) float32, G g G^T of each
  // (C_out, C_in) 3x3 filter g (pyimg/inference/winograd.py packs it). bias: C_out float32
  // values. residual (the output's shape and dtype) is added before the activation, which
  // is then none or relu; without it: none, relu, leaky_relu (negative_slope), prelu
  // (prelu_weight: C_out float32 values) or tanh.
  m.def(
      "conv2d_winograd(Tensor x, Tensor packed_weight, Tensor? bias, int[] padding, "
      "str activation, float negative_slope, Tensor? prelu_weight, Tensor? residual) -> Tensor");
}
