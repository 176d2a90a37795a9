import json

import pytest
import torch

from scratchlab.engine import NonFiniteLossError, evaluate_checkpoint, train

METRIC_KEYS = {"AP", "AP50", "AP75", "APs", "APm", "APl"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, synth_data):
    from scratchlab.config import load_config
    from tests.conftest import MINI, TINY

    cfg = load_config(MINI, [*TINY, *[f"data.{k}={v}" for k, v in synth_data.items()]])
    out = tmp_path_factory.mktemp("run")
    final = train(cfg, out)
    return out, final, cfg


def test_run_dir_contract(finished_run):
    out, final, _ = finished_run
    for name in ("config.yaml", "metrics.jsonl", "model_final.pth", "final_metrics.json", "log.txt",
                 "checkpoints/last.pth"):
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*")), "TensorBoard events"
    saved = json.loads((out / "final_metrics.json").read_text())
    assert saved["iteration"] == 6
    for task in ("bbox", "segm"):
        assert set(saved[task]) == METRIC_KEYS
        ap = saved[task]["AP"]
        assert isinstance(ap, float) and 0.0 <= ap <= 100.0
    assert saved == json.loads(json.dumps(final))


def test_metrics_jsonl_has_losses_lr_and_periodic_ap(finished_run):
    out, _, _ = finished_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    loss_rows = [r for r in rows if "loss" in r]
    assert [r["iteration"] for r in loss_rows] == [2, 4, 6]
    assert all({"lr", "loss_mask", "loss_classifier"} <= set(r) for r in loss_rows)
    ap_iters = [r["iteration"] for r in rows if "bbox/AP" in r]
    assert ap_iters == [3, 6], "eval every eval.period iterations and at the end"


def test_cost_is_counted(finished_run):
    _, final, cfg = finished_run
    cost = final["cost"]
    assert cost["images_seen"] == 6 * cfg.solver.ims_per_batch
    assert cost["instances_seen"] > 0 and cost["pixels_seen"] >= cost["images_seen"] * 56 * 56
    assert cost["pretrain"] is None and cost["total"]["images_seen"] == cost["images_seen"]


def test_config_yaml_reloads_and_eval_command_matches(finished_run):
    from scratchlab.config import load_config

    out, final, _ = finished_run
    cfg = load_config(out / "config.yaml")
    res = evaluate_checkpoint(cfg, out / "model_final.pth")
    assert res["bbox"]["AP"] == pytest.approx(final["bbox"]["AP"])


def test_resume_continues_at_the_checkpoint_iteration(tmp_path, tiny_cfg):
    tiny_cfg.eval.period = 0
    short = tiny_cfg.copy()
    short.solver.max_iter = 4  # stop after 4 iterations, with a checkpoint at 4
    short.solver.lr_drops_from_end = [4, 2]
    train(short, tmp_path)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pth", weights_only=True)
    assert ckpt["iteration"] == 4
    (tmp_path / "final_metrics.json").unlink()
    tiny_cfg.solver.max_iter = 6
    final = train(tiny_cfg, tmp_path, resume=True)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "loss" in r] == [2, 4, 6]  # 2, 4 from the first run, 6 resumed
    assert final["iteration"] == 6
    assert "resumed from" in (tmp_path / "log.txt").read_text()


def test_nonfinite_loss_stops_with_checkpoint_and_iteration(tmp_path, tiny_cfg):
    tiny_cfg.solver.base_lr = 1e30
    tiny_cfg.solver.warmup_iters = 0
    tiny_cfg.eval.period = 0
    with pytest.raises(NonFiniteLossError, match=r"iteration \d+") as info:
        train(tiny_cfg, tmp_path)
    assert (tmp_path / "checkpoints" / "last.pth").is_file()
    assert str(tmp_path / "checkpoints" / "last.pth") in str(info.value)
