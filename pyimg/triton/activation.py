"""Activations for Triton epilogues, as in csrc/ops/activation.h. Codes follow
pyimg._activation.ACTIVATIONS: 0 none, 1 relu, 2 leaky_relu, 3 prelu, 4 tanh, 5 sigmoid."""

import triton
import triton.language as tl

NONE: tl.constexpr = tl.constexpr(0)
RELU: tl.constexpr = tl.constexpr(1)
LEAKY_RELU: tl.constexpr = tl.constexpr(2)
PRELU: tl.constexpr = tl.constexpr(3)
TANH: tl.constexpr = tl.constexpr(4)
SIGMOID: tl.constexpr = tl.constexpr(5)


@triton.jit
def _tanh(z):
    # Triton's core language has no tanh. exp() form for |z| >= 0.125, where it is accurate;
    # below, the Taylor series to z^9 (error < 1e-11), avoiding 1 - e^{-2|z|} cancelling.
    a = tl.abs(z)
    e = tl.exp(-2.0 * a)
    big = (1.0 - e) / (1.0 + e)
    z2 = z * z
    small = a * (1.0 + z2 * (-1.0 / 3 + z2 * (2.0 / 15 + z2 * (-17.0 / 315 + z2 * (62.0 / 2835)))))
    t = tl.where(a < 0.125, small, big)
    return tl.where(z < 0, -t, t)


@triton.jit
def activate(z, alpha, ACT: tl.constexpr):
    # z < 0 tested so that NaN passes through, as in ATen.
    if ACT == RELU:
        z = tl.where(z < 0, 0.0, z)
    elif ACT == LEAKY_RELU or ACT == PRELU:
        z = tl.where(z < 0, alpha * z, z)
    elif ACT == TANH:
        z = _tanh(z)
    elif ACT == SIGMOID:
        z = 1.0 / (1.0 + tl.exp(-z))
    return z


@triton.jit
def activation_grad(z, alpha, ACT: tl.constexpr):
    """d activate / dz as ATen's backward kernels: at z == 0 relu gives 0 and leaky alpha; at a
    NaN z relu passes the gradient (1) and leaky / PReLU give alpha."""
    if ACT == RELU:
        d = tl.where(z <= 0, 0.0, 1.0)
    elif ACT == LEAKY_RELU or ACT == PRELU:
        d = tl.where(z > 0, 1.0, alpha)
    elif ACT == TANH:
        t = _tanh(z)
        d = 1.0 - t * t
    elif ACT == SIGMOID:
        s = 1.0 / (1.0 + tl.exp(-z))
        d = s * (1.0 - s)
    else:
        d = tl.full(z.shape, 1.0, z.dtype)
    return d
