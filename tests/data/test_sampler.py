"""The sample-key stream: seeded, resumable at any position, sharded like
DistributedSampler so that ranks together read the one-process global batch."""

import itertools

import pytest
import torch

from pyimg.data import StepSampler, sample_rng
from pyimg.data.sampler import key_index


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_epochs_are_permutations_and_seeded():
    keys = take(StepSampler(7, seed=3), 21)
    for epoch in range(3):
        assert sorted(k[0] for k in keys[7 * epoch:7 * epoch + 7]) == list(range(7))
    assert [k[2] for k in keys] == list(range(21))
    assert take(StepSampler(7, seed=3), 21) == keys
    assert take(StepSampler(7, seed=4), 21) != keys


def test_resuming_at_a_position_continues_the_stream():
    full = take(StepSampler(5, seed=1), 40)
    assert take(StepSampler(5, seed=1, start=13), 27) == full[13:]


@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_together_read_the_global_batch(world_size):
    batch = 8
    single = take(StepSampler(11, seed=0, start=3 * batch), 5 * batch)
    local = batch // world_size
    shards = [take(StepSampler(11, seed=0, start=3 * batch, rank=r, world_size=world_size),
                   5 * local) for r in range(world_size)]
    for step in range(5):
        together = sorted(k for shard in shards for k in shard[step * local:(step + 1) * local])
        assert together == sorted(single[step * batch:(step + 1) * batch])


def test_sample_rng_depends_on_seed_and_position_only():
    a = sample_rng((3, 0, 17)).random(4)
    assert (sample_rng((5, 0, 17)).random(4) == a).all()  # the index does not matter
    assert not (sample_rng((3, 0, 18)).random(4) == a).any()
    assert not (sample_rng((3, 1, 17)).random(4) == a).any()
    assert (sample_rng(2).random(2) == sample_rng(2).random(2)).all()
    assert key_index((4, 1, 2)) == 4 and key_index(6) == 6


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        StepSampler(0, seed=0)
    with pytest.raises(ValueError, match="rank"):
        StepSampler(3, seed=0, rank=2, world_size=2)


class _Echo(torch.utils.data.Dataset):
    def __len__(self):
        return 9

    def __getitem__(self, key):
        return torch.from_numpy(sample_rng(key).random(3))


def test_loader_batches_do_not_depend_on_worker_count():
    def batches(workers):
        loader = torch.utils.data.DataLoader(_Echo(), batch_size=4,
                                             sampler=StepSampler(9, seed=2),
                                             num_workers=workers)
        return [b for b, _ in zip(loader, range(5), strict=False)]

    for a, b in zip(batches(0), batches(2), strict=True):
        assert torch.equal(a, b)
