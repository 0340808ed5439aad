"""Pieces the adversarial tasks share: [0, 1] <-> [-1, 1] for tanh generators, a frozen
VGG19 for perceptual losses, and CycleGAN's pool of generated images."""

import torch

from pyimg.losses import VGG19Features


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] to the [-1, 1] of a tanh generator."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) / 2


def vgg19(config: dict, device: torch.device) -> VGG19Features:
    """The recipe's ``vgg19_weights`` file (or $PYIMG_VGG19_WEIGHTS), frozen, on ``device``."""
    return VGG19Features.from_file(config.get("vgg19_weights")).to(device)


class ImagePool:
    """A history of ``size`` generated images the discriminator also sees (Shrivastava et
    al. 2017; CycleGAN uses 50): each new image is returned as is until the pool fills,
    then with probability 1/2 swapped for a stored one, which it replaces. Draws from
    torch's global generator, which checkpoints save."""

    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1).item() < 0.5:
                index = int(torch.randint(0, self.size, (1,)).item())
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"images": [im.cpu() for im in self.images]}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.images = [im.to(device) for im in state["images"]]
