"""A resumable, seeded, shardable stream of sample keys: the data side of reproducible and
crash-safe training.

The stream is global: epoch e is a permutation of the dataset drawn from (seed, e), epochs
follow each other without padding, and global position g gets the key
``(index, seed, g)``. A dataset draws all of a sample's randomness (crop, flips, noise)
from ``sample_rng(key)``, so a sample depends on the seed and its position only, not on
the number of DataLoader workers, their timing or the number of processes. Rank r of w
takes positions g = r, r + w, r + 2w, ... (DistributedSampler's interleaving), so the w
local batches of one step together hold exactly the global batch one process would read.
Restarting at a position is how a resumed run continues its data where it stopped.
"""

from collections.abc import Iterator

import numpy as np
import torch

SampleKey = tuple[int, int, int]  # (dataset index, run seed, global position)


def sample_rng(key: SampleKey | int) -> np.random.Generator:
    """The random generator of one sample; a plain index (evaluation) gets a fixed one."""
    if isinstance(key, tuple):
        _, seed, position = key
        return np.random.default_rng((seed, position))
    return np.random.default_rng((0, int(key)))


def key_index(key: SampleKey | int) -> int:
    return key[0] if isinstance(key, tuple) else int(key)


class StepSampler(torch.utils.data.Sampler):
    """Endless keys for rank ``rank`` of ``world_size``, from global position ``start``."""

    def __init__(self, length: int, seed: int, start: int = 0, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True):
        if length < 1:
            raise ValueError("cannot sample from an empty dataset")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.length, self.seed, self.shuffle = length, seed, shuffle
        self.start, self.rank, self.world_size = start, rank, world_size

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.length)
        return np.random.default_rng((self.seed, epoch, 1)).permutation(self.length)

    def __iter__(self) -> Iterator[SampleKey]:
        position = self.start + self.rank
        epoch, order = -1, None
        while True:
            if position // self.length != epoch:
                epoch = position // self.length
                order = self._order(epoch)
            yield int(order[position % self.length]), self.seed, position
            position += self.world_size
