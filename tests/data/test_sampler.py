import pytest

from scratchlab.data.sampler import GroupedTrainingBatchSampler, TrainingBatchSampler


def test_order_is_a_function_of_seed_and_iteration():
    a = TrainingBatchSampler(10, 4, seed=3)
    b = TrainingBatchSampler(10, 4, seed=3, start_iter=5)
    first = [batch for _, batch in zip(range(8), a, strict=False)]
    resumed = [batch for _, batch in zip(range(3), b, strict=False)]
    assert resumed == first[5:8]
    assert TrainingBatchSampler(10, 4, seed=4).batch(0) != a.batch(0)


def test_each_epoch_is_a_permutation():
    s = TrainingBatchSampler(12, 4, seed=0)
    seen = [i for it in range(3) for i, _ in s.batch(it)]
    assert sorted(seen) == list(range(12))


def test_ranks_split_the_global_batch():
    full = TrainingBatchSampler(20, 8, seed=1).batch(2)
    parts = [TrainingBatchSampler(20, 8, seed=1, rank=r, world=4).batch(2) for r in range(4)]
    assert [x for p in parts for x in p] == full


def test_sample_seeds_differ_per_position():
    s = TrainingBatchSampler(5, 5, seed=0)
    seeds = [sd for it in range(4) for _, sd in s.batch(it)]
    assert len(set(seeds)) == len(seeds)


GROUPS = [0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1]  # 8 landscape, 5 portrait


def test_grouped_batches_hold_one_group_except_the_leftover_batch():
    s = GroupedTrainingBatchSampler(GROUPS, 4, seed=0)
    # 8 // 4 + 5 // 4 whole batches, then the leftovers (0 + 1) make no full mixed batch.
    assert s.batches_per_epoch == 3
    for it in range(30):
        assert len({GROUPS[i] for i, _ in s.batch(it)}) == 1, it


def test_leftovers_form_mixed_batches():
    s = GroupedTrainingBatchSampler([0] * 6 + [1] * 6, 4, seed=0)  # 2 + 2 leftovers: one mixed batch
    assert s.batches_per_epoch == 3
    epoch = [sorted(i for i, _ in s.batch(it)) for it in range(3)]
    assert sorted(i for b in epoch for i in b) == list(range(12))
    assert sum(len({i // 6 for i in b}) == 2 for b in epoch) == 1


def test_grouped_order_is_a_function_of_seed_and_iteration():
    a = GroupedTrainingBatchSampler(GROUPS, 4, seed=3)
    resumed = GroupedTrainingBatchSampler(GROUPS, 4, seed=3, start_iter=7)
    first = [b for _, b in zip(range(12), a, strict=False)]
    assert [b for _, b in zip(range(5), resumed, strict=False)] == first[7:12]
    assert GroupedTrainingBatchSampler(GROUPS, 4, seed=3).batch(10) == first[10]  # no history needed
    assert [GroupedTrainingBatchSampler(GROUPS, 4, seed=4).batch(i) for i in range(6)] != first[:6]


def test_grouped_ranks_split_the_global_batch_and_seeds_are_unique():
    full = GroupedTrainingBatchSampler(GROUPS, 4, seed=1)
    for it in range(6):
        parts = [GroupedTrainingBatchSampler(GROUPS, 4, seed=1, rank=r, world=2).batch(it) for r in range(2)]
        assert parts[0] + parts[1] == full.batch(it)
    seeds = [sd for it in range(12) for _, sd in full.batch(it)]
    assert len(set(seeds)) == len(seeds)


def test_grouping_needs_one_full_batch():
    with pytest.raises(ValueError, match="fewer than one batch"):
        GroupedTrainingBatchSampler([0, 1, 0], 4, seed=0)


@pytest.mark.parametrize("grouped", [False, True])
def test_accumulation_cuts_each_global_batch_into_micro_batches(grouped):
    make = (
        (lambda **kw: GroupedTrainingBatchSampler(GROUPS, 4, seed=2, **kw))
        if grouped
        else (lambda **kw: TrainingBatchSampler(13, 4, seed=2, **kw))
    )
    whole = [b for _, b in zip(range(3), make(), strict=False)]
    for world in (1, 2):
        streams = [iter(make(world=world, rank=r, accumulate=2, start_iter=1)) for r in range(world)]
        for it in (1, 2):  # two micro-steps per iteration; within each, rank 0's share then rank 1's
            micro = [next(s) for _ in range(2) for s in streams]
            assert [x for b in micro for x in b] == whole[it]
            assert all(len(b) == 4 // (2 * world) for b in micro)


def test_accumulation_must_divide_the_batch():
    with pytest.raises(ValueError, match="solver.accumulate"):
        TrainingBatchSampler(10, 4, seed=0, world=2, accumulate=4)
