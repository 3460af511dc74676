"""The resumable data order."""
import itertools

from dac_diveq.training.sampler import StepSampler


def _first(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_ranks_take_interleaved_indices_that_cover_the_stream_once():
    ranks = [_first(StepSampler(rank=r, world_size=3), 4) for r in range(3)]
    assert ranks == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]


def test_a_resumed_sampler_continues_where_the_uninterrupted_one_is():
    batch_size, step, world = 2, 3, 2
    for rank in range(world):
        uninterrupted = _first(StepSampler(rank=rank, world_size=world), 10)
        resumed = _first(StepSampler(start=step * batch_size, rank=rank, world_size=world), 4)
        assert resumed == uninterrupted[step * batch_size: step * batch_size + 4]


def test_length_counts_the_indices_left_for_one_rank():
    assert len(StepSampler(start=2, rank=0, world_size=2, length=10)) == 3
    assert list(StepSampler(start=2, rank=1, world_size=2, length=10)) == [5, 7, 9]
