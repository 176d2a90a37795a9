"""engine.writers: a run's metric history, JSON lines and TensorBoard alike."""

from scratchlab.engine.writers import MetricWriters


def test_a_run_from_iteration_0_starts_its_own_tensorboard_history(tmp_path):
    earlier = tmp_path / "events.out.tfevents.1700000000.host.1.0"
    earlier.write_bytes(b"an earlier run's events")
    MetricWriters(tmp_path, max_iter=10, start_iter=4).close()  # a resumed run keeps them (purge_step)
    assert earlier.exists()
    MetricWriters(tmp_path, max_iter=10, start_iter=0).close()
    assert not earlier.exists() and len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
