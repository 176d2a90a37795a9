"""utils.runtime: `data.num_workers: auto` resolved for the machine, devices by name, console logging."""

import sys

import pytest
import torch

from scratchlab.config import load_config
from scratchlab.utils.runtime import MAX_AUTO_WORKERS, device_named, loader_workers, usable_cores
from tests.conftest import MINI


@pytest.mark.parametrize(
    ("cores", "local_ranks", "workers"),
    [
        (1, 1, 0),
        (2, 1, 1),
        (4, 1, 3),
        (16, 1, MAX_AUTO_WORKERS),
        (16, 8, 1),
        (8, 8, 0),
        (64, 4, MAX_AUTO_WORKERS),
    ],
)
def test_auto_leaves_each_rank_one_core_for_its_model(cores, local_ranks, workers):
    assert loader_workers("auto", cores, local_ranks) == workers


def test_auto_reads_the_affinity_mask_and_local_world_size(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert loader_workers("auto") == min(MAX_AUTO_WORKERS, usable_cores() - 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(usable_cores()))
    assert loader_workers("auto") == 0


def test_a_count_is_taken_as_written_and_auto_is_the_default():
    assert loader_workers(3, cores=1) == 3 and loader_workers("0") == 0
    assert load_config(MINI).data.num_workers == "auto"
    assert load_config(MINI, ["data.num_workers=2"]).data.num_workers == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_refused_by_name():
    with pytest.raises(ValueError, match="device 'cuda:1': CUDA is not available on this machine"):
        device_named("cuda:1")
    assert device_named("auto") == torch.device("cpu") == device_named("cpu")


def test_console_log_follows_sys_stderr_when_it_is_swapped(monkeypatch):
    import io
    import logging

    from scratchlab.utils.runtime import setup_logging

    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging()
    log = logging.getLogger("scratchlab")
    log.info("one")
    first.close()  # a test's capture, a notebook cell's stream: gone, and the handler must not hold it
    monkeypatch.setattr(sys, "stderr", second)
    log.info("two")
    assert second.getvalue().endswith("] two\n") and "Logging error" not in second.getvalue()
