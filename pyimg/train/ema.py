"""Exponential moving average of a model's weights (Polyak averaging; the "EMA" of timm's
ModelEmaV2 and BasicSR): shadow = decay * shadow + (1 - decay) * weights after each step;
buffers (batch-norm statistics) are copied. Validation and exported weights use it."""

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"ema decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for shadow, live in zip(self.model.state_dict().values(), model.state_dict().values(),
                                strict=True):
            if shadow.is_floating_point():
                shadow.lerp_(live.detach(), 1 - self.decay)
            else:
                shadow.copy_(live)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
