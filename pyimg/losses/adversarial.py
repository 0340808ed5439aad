"""GAN objectives on discriminator logits: vanilla (Goodfellow et al. 2014), LSGAN (Mao et
al. 2017), hinge (Lim & Ye 2017; Miyato et al. 2018) and WGAN (Arjovsky et al. 2017) with
the gradient penalty of WGAN-GP (Gulrajani et al. 2017)."""

import torch
import torch.nn.functional as F

MODES = ("vanilla", "lsgan", "hinge", "wgan")


class AdversarialLoss:
    """``discriminator(real_logits, fake_logits)`` and ``generator(fake_logits)`` losses of one
    GAN objective, both to minimise:

    - vanilla: D = -log D(x) - log(1 - D(G(z))) as binary cross-entropy on logits; G the
      non-saturating -log D(G(z)) (``saturating=True``: the minimax log(1 - D(G(z))));
    - lsgan: D = ((D(x) - 1)^2 + D(G(z))^2) / 2, G = (D(G(z)) - 1)^2 / 2 (a=0, b=c=1);
    - hinge: D = relu(1 - D(x)) + relu(1 + D(G(z))), G = -D(G(z));
    - wgan: D = D(G(z)) - D(x), G = -D(G(z)); add :func:`gradient_penalty` for WGAN-GP.

    Each term is averaged over its logits.
    """

    def __init__(self, mode: str = "vanilla"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        if self.mode == "vanilla":
            return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                    + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        if self.mode == "lsgan":
            return ((real - 1).square().mean() + fake.square().mean()) / 2
        if self.mode == "hinge":
            return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        return fake.mean() - real.mean()

    def generator(self, fake: torch.Tensor, saturating: bool = False) -> torch.Tensor:
        if saturating and self.mode != "vanilla":
            raise ValueError("the saturating generator loss exists for mode='vanilla' only")
        if self.mode == "vanilla":
            if saturating:  # log(1 - sigmoid(f)) = -softplus(f)
                return -F.softplus(fake).mean()
            return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        if self.mode == "lsgan":
            return (fake - 1).square().mean() / 2
        return -fake.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor,
                     weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP's penalty weight * E[(||grad critic(x_hat)||_2 - 1)^2] at random points x_hat
    on the lines between real and fake samples (lambda = 10 in the paper). ``critic`` is
    any callable from a batch to its logits."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device,
                     dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return weight * (grad.flatten(1).norm(dim=1) - 1).square().mean()
