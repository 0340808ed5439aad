"""Training losses for image-to-image models: pixel (L1, MSE, Charbonnier), VGG19
perceptual and style, total variation, adversarial, translation (pix2pix, CycleGAN) and
segmentation (cross-entropy, Dice)."""

from torch.nn import L1Loss, MSELoss

from pyimg.losses.adversarial import AdversarialLoss, gradient_penalty
from pyimg.losses.pixel import CharbonnierLoss, TotalVariationLoss
from pyimg.losses.segmentation import DiceLoss, SegmentationCrossEntropyLoss
from pyimg.losses.translation import CycleConsistencyLoss, IdentityLoss, Pix2PixLoss
from pyimg.losses.vgg import PerceptualLoss, StyleLoss, VGG19Features, gram_matrix

__all__ = [
    "AdversarialLoss",
    "CharbonnierLoss",
    "CycleConsistencyLoss",
    "DiceLoss",
    "IdentityLoss",
    "L1Loss",
    "MSELoss",
    "PerceptualLoss",
    "Pix2PixLoss",
    "SegmentationCrossEntropyLoss",
    "StyleLoss",
    "TotalVariationLoss",
    "VGG19Features",
    "gradient_penalty",
    "gram_matrix",
]
