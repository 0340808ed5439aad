"""What a task's training step works through: moving batches to the device, autocast, and
optimizer steps with gradient scaling (fp16) and clipping."""

import contextlib

import torch
from torch import nn

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Fit:
    def __init__(self, device: torch.device, amp: str | None, channels_last: bool,
                 models: dict[str, nn.Module], groups: dict[str, list[str]],
                 optimizers: dict[str, torch.optim.Optimizer], clip_grad: float | None):
        if amp is not None and amp not in AMP_DTYPES:
            raise ValueError(f"amp must be null, 'bf16' or 'fp16', got {amp!r}")
        self.device, self.amp, self.channels_last = device, amp, channels_last
        self.models, self.groups = models, groups
        self.optimizers, self.clip_grad = optimizers, clip_grad
        # A scaler per optimizer: fp16 gradients underflow without one; bf16 needs none.
        self.scalers = {name: torch.amp.GradScaler(device.type, enabled=amp == "fp16")
                        for name in optimizers}

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AMP_DTYPES[self.amp])

    def step(self, name: str, loss: torch.Tensor) -> None:
        """Backward ``loss`` into the gradients of optimizer ``name``'s models (cleared
        first) and step it, scaled and clipped as configured."""
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.clip_grad is not None:
            scaler.unscale_(optimizer)
            parameters = [p for m in self.groups[name] for p in self.models[m].parameters()]
            nn.utils.clip_grad_norm_(parameters, self.clip_grad)
        scaler.step(optimizer)
        scaler.update()
