"""Image-translation objectives: pix2pix's cGAN + L1 (Isola et al. 2017) and CycleGAN's
cycle-consistency and identity losses (Zhu et al. 2017)."""

import torch
import torch.nn.functional as F
from torch import nn

from pyimg.losses.adversarial import AdversarialLoss


class Pix2PixLoss:
    """G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G), lambda = 100 (paper Eq. 4), with the
    non-saturating generator loss; the discriminator's objective is halved, as the paper
    does to slow D relative to G."""

    def __init__(self, l1_weight: float = 100.0):
        self.l1_weight = l1_weight
        self.gan = AdversarialLoss("vanilla")

    def generator(self, fake_logits: torch.Tensor, fake: torch.Tensor,
                  target: torch.Tensor) -> torch.Tensor:
        return self.gan.generator(fake_logits) + self.l1_weight * F.l1_loss(fake, target)

    def discriminator(self, real_logits: torch.Tensor,
                      fake_logits: torch.Tensor) -> torch.Tensor:
        return self.gan.discriminator(real_logits, fake_logits) / 2


class CycleConsistencyLoss(nn.Module):
    """lambda * ||F(G(x)) - x||_1, lambda = 10 (CycleGAN Sec. 3.2 and 4); apply it to both
    directions."""

    def __init__(self, weight: float = 10.0):
        super().__init__()
        self.weight = weight

    def forward(self, reconstructed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return self.weight * F.l1_loss(reconstructed, real)


class IdentityLoss(nn.Module):
    """weight * ||G(y) - y||_1 for a generator G: X -> Y fed a sample of Y (CycleGAN Sec. 5.2,
    from Taigman et al. 2017); the paper weighs it 0.5 * lambda_cycle = 5."""

    def __init__(self, weight: float = 5.0):
        super().__init__()
        self.weight = weight

    def forward(self, same: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return self.weight * F.l1_loss(same, real)
