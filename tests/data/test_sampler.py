from scratchlab.data.sampler import TrainingBatchSampler


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
