"""Adversarial, pix2pix and CycleGAN losses on hand-computed cases."""

import math

import pytest
import torch

from pyimg import losses

LOG2 = math.log(2)


def t(*values):
    return torch.tensor(values)


@pytest.mark.parametrize("mode, real, fake, d_loss, g_loss", [
    ("vanilla", t(0.0), t(0.0), 2 * LOG2, LOG2),
    ("lsgan", t(2.0), t(-1.0), ((2 - 1) ** 2 + 1) / 2, (-1 - 1) ** 2 / 2),
    ("hinge", t(0.5, 2.0), t(0.5, -3.0), (0.5 + 0) / 2 + (1.5 + 0) / 2, -(0.5 - 3) / 2),
    ("wgan", t(1.0, 3.0), t(-1.0, 0.0), -0.5 - 2.0, 0.5),
])
def test_adversarial_losses(mode, real, fake, d_loss, g_loss):
    loss = losses.AdversarialLoss(mode)
    assert loss.discriminator(real, fake).item() == pytest.approx(d_loss)
    assert loss.generator(fake).item() == pytest.approx(g_loss)


def test_vanilla_generator_forms():
    gan = losses.AdversarialLoss("vanilla")
    fake = t(-2.0, 1.0)
    d = torch.sigmoid(fake)
    assert gan.generator(fake).item() == pytest.approx(-torch.log(d).mean().item())
    assert gan.generator(fake, saturating=True).item() == pytest.approx(
        torch.log(1 - d).mean().item())
    with pytest.raises(ValueError, match="vanilla"):
        losses.AdversarialLoss("hinge").generator(fake, saturating=True)
    with pytest.raises(ValueError, match="mode"):
        losses.AdversarialLoss("wasserstein")


def test_gradient_penalty_of_a_linear_critic():
    # critic(x) = <w, x> has gradient w everywhere: penalty = 10 (||w|| - 1)^2.
    w = torch.tensor([3.0, 0.0, 4.0, 0.0]).view(1, 1, 2, 2)
    critic = lambda x: (x * w).sum(dim=(1, 2, 3))
    real, fake = torch.rand(5, 1, 2, 2), torch.rand(5, 1, 2, 2)
    assert losses.gradient_penalty(critic, real, fake).item() == pytest.approx(10 * 16)


def test_gradient_penalty_trains_the_critic():
    critic = torch.nn.Linear(4, 1)
    penalty = losses.gradient_penalty(critic, torch.rand(3, 4), torch.rand(3, 4))
    penalty.backward()
    assert critic.weight.grad.abs().sum() > 0


def test_pix2pix_loss():
    loss = losses.Pix2PixLoss()
    target = torch.zeros(1, 3, 2, 2)
    g = loss.generator(t(0.0), target + 0.1, target)
    assert g.item() == pytest.approx(LOG2 + 100 * 0.1)
    assert loss.discriminator(t(0.0), t(0.0)).item() == pytest.approx(LOG2)


def test_cycle_and_identity_losses():
    real = torch.zeros(2, 3, 4, 4)
    assert losses.CycleConsistencyLoss()(real + 0.5, real).item() == pytest.approx(5.0)
    assert losses.IdentityLoss()(real - 0.5, real).item() == pytest.approx(2.5)
