"""Several processes through ``torchrun``: the process group from the launcher's
environment (gloo on the CPU, NCCL on CUDA), DDP wrapping and rank-0-only side effects."""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_world(device_kind: str) -> World:
    """Join the process group when torchrun started us (WORLD_SIZE > 1), else one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return World(rank, world_size, local_rank)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def wrap(model: nn.Module, world: World, device: torch.device, sync_batchnorm: bool) -> nn.Module:
    """``model`` for training: DDP across the processes (with SyncBatchNorm when asked), or
    itself in one process. Models without trainable parameters stay unwrapped."""
    if not world.distributed or not any(p.requires_grad for p in model.parameters()):
        return model
    if sync_batchnorm:
        if device.type != "cuda":
            raise ValueError("sync_batchnorm=true needs CUDA devices: torch's SyncBatchNorm "
                             "runs on GPUs only (on the CPU each process keeps its own batch "
                             "statistics)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP / torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def all_reduce_mean(values: dict[str, float], world: World) -> dict[str, float]:
    """The mean of each logged number over the processes."""
    if not world.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: v / world.world_size for k, v in zip(keys, tensor.tolist(), strict=True)}
