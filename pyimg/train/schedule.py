"""Learning-rate schedules as factors of the base rate per step: constant, step (multiply
by ``gamma`` at each milestone), cosine (to ``min_factor`` at the last step; Loshchilov &
Hutter 2017) and linear decay (constant, then linearly to zero from ``decay_start``, as
pix2pix and CycleGAN train), each after an optional linear warmup of ``warmup`` steps."""

import math

import torch

SCHEDULES = ("constant", "step", "cosine", "linear")


class LRFactor:
    """Step -> learning-rate factor. A plain object, so LambdaLR keeps it out of its state
    (it is rebuilt from the config) and a resumed run recomputes the same factors."""

    def __init__(self, total_steps: int, name: str = "constant", warmup: int = 0,
                 milestones=(), gamma: float = 0.1, min_factor: float = 0.0,
                 decay_start: int | None = None):
        if name not in SCHEDULES:
            raise ValueError(f"schedule.name must be one of {SCHEDULES}, got {name!r}")
        self.total, self.name, self.warmup = total_steps, name, warmup
        self.milestones, self.gamma, self.min_factor = sorted(milestones), gamma, min_factor
        self.decay_start = total_steps // 2 if decay_start is None else decay_start

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.name == "step":
            return self.gamma ** sum(step >= m for m in self.milestones)
        if self.name == "cosine":
            progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
            return self.min_factor + (1 - self.min_factor) * (1 + math.cos(math.pi * progress)) / 2
        if self.name == "linear":
            if step < self.decay_start:
                return 1.0
            return max(0.0, 1 - (step - self.decay_start) / max(1, self.total - self.decay_start))
        return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                    config: dict) -> torch.optim.lr_scheduler.LambdaLR:
    options = dict(config)
    known = {"name", "warmup", "milestones", "gamma", "min_factor", "decay_start"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown schedule settings {sorted(unknown)}; known: {sorted(known)}")
    # LambdaLR saves __dict__ of callable objects; a state of plain numbers stays loadable
    # with weights_only.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LRFactor(total_steps, **options))
