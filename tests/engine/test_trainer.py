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
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "model_final.pth",
        "final_metrics.json",
        "log.txt",
        "checkpoints/last.pth",
    ):
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*")), "TensorBoard events"
    saved = json.loads((out / "final_metrics.json").read_text())
    assert saved["iteration"] == 6
    for task in ("bbox", "segm"):
        assert set(saved[task]) == METRIC_KEYS
        ap = saved[task]["AP"]
        assert isinstance(ap, float) and 0.0 <= ap <= 100.0
    assert saved == json.loads(json.dumps(final))


def test_each_checkpoint_is_written_once(finished_run):
    out, _, cfg = finished_run
    assert cfg.checkpoint.period == 2  # saves at 2, 4 and the end (6), each once
    previous = torch.load(out / "checkpoints" / "previous.pth", weights_only=True)
    assert previous["iteration"] == 4


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
    # Exactly the run's own final evaluation: a fresh model must hold nothing the trained one learned
    # outside its state dict (RoIAlign scales, anchors).
    assert (res["bbox"], res["segm"]) == (final["bbox"], final["segm"])


def test_eval_command_finds_the_runs_own_final_detections(tmp_path, tiny_cfg):
    """``scratchlab eval`` on model_final.pth builds a fresh model: it must find exactly the detections of the
    run's final evaluation, even when training saw other image sizes (40 px, padded to 64) than testing
    (64 px): nothing the trained model holds may have been set outside its state dict by its first call."""
    tiny_cfg.input.min_size_train = [40]
    tiny_cfg.model.roi_box_head.score_thresh = 0.0
    tiny_cfg.solver.max_iter, tiny_cfg.eval.period = 2, 0
    train(tiny_cfg, tmp_path)
    evaluate_checkpoint(tiny_cfg, tmp_path / "model_final.pth", detections=tmp_path / "again.json")
    run = json.loads((tmp_path / "inference" / "detections_0000002.json").read_text())
    again = json.loads((tmp_path / "again.json").read_text())
    assert run and again == run


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


def test_a_run_resumed_from_a_checkpoint_ends_with_the_uninterrupted_runs_weights(
    tmp_path, tiny_cfg, monkeypatch
):
    """Exact resume: a copy of the iteration-2 checkpoint, resumed in another folder, trains iterations 3-6
    (an evaluation at 3 included) into the same bits. Seed 1 on this set: its first batch once made
    torchvision infer RoIAlign scales a level off, kept outside the state dict (models.fpn_roi_align)."""
    from scratchlab.engine import checkpoint
    from tests.conftest import copy_checkpoints, differing_tensors

    tiny_cfg.seed = 1
    tiny_cfg.device = "cpu"
    resumed = tmp_path / "resumed"
    copy_checkpoints(
        monkeypatch, checkpoint, lambda state, _: resumed / "checkpoints" if state["iteration"] == 2 else None
    )
    train(tiny_cfg, tmp_path / "whole")
    train(tiny_cfg, resumed, resume=True)
    assert "resumed from" in (resumed / "log.txt").read_text()
    whole, again = (
        torch.load(d / "model_final.pth", weights_only=True)["model"] for d in (tmp_path / "whole", resumed)
    )
    assert differing_tensors(whole, again) == []


def test_a_run_started_over_in_the_same_folder_replaces_its_metrics(tmp_path, tiny_cfg):
    tiny_cfg.eval.period = 0
    train(tiny_cfg, tmp_path)
    first = (tmp_path / "metrics.jsonl").read_text()
    train(tiny_cfg, tmp_path)  # no --resume: a new run, not a continuation of the first one's curve
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == first.count("\n")
    assert "holds an earlier run: starting it over" in (tmp_path / "log.txt").read_text()


def test_a_run_started_over_leaves_no_earlier_checkpoint_to_resume(tmp_path, tiny_cfg, monkeypatch):
    from scratchlab.engine import trainer as trainer_module
    from scratchlab.engine.checkpoint import load_latest

    tiny_cfg.eval.period = 0
    train(tiny_cfg, tmp_path)

    def stopped(*args, **kwargs):
        raise RuntimeError("stopped before the first checkpoint")

    monkeypatch.setattr(trainer_module, "build_train_loader", stopped)
    with pytest.raises(RuntimeError, match="before the first checkpoint"):
        train(tiny_cfg, tmp_path)  # started over, then stopped before saving anything
    assert load_latest(tmp_path / "checkpoints") is None  # so --resume cannot continue the earlier run


def test_resuming_a_finished_run_logs_its_final_evaluation_once(tmp_path, tiny_cfg):
    tiny_cfg.eval.period = 0
    train(tiny_cfg, tmp_path, resume=True)  # nothing to resume yet: a new run, and the log says so
    assert "--resume: no checkpoint in" in (tmp_path / "log.txt").read_text()
    first = (tmp_path / "metrics.jsonl").read_text()
    train(tiny_cfg, tmp_path, resume=True)  # nothing left to train: only the final evaluation runs again
    assert (tmp_path / "metrics.jsonl").read_text() == first
    assert (tmp_path / "log.txt").read_text().count("--resume: no checkpoint") == 1


def test_nonfinite_loss_stops_with_checkpoint_and_iteration(tmp_path, tiny_cfg):
    tiny_cfg.solver.base_lr = 1e30
    tiny_cfg.solver.warmup_iters = 0
    tiny_cfg.eval.period = 0
    with pytest.raises(NonFiniteLossError, match=r"iteration \d+") as info:
        train(tiny_cfg, tmp_path)
    assert (tmp_path / "checkpoints" / "last.pth").is_file()
    assert str(tmp_path / "checkpoints" / "last.pth") in str(info.value)


def test_plots_are_written_when_training_finishes(finished_run):
    out, _, _ = finished_run
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == ["ap.png", "loss.png", "lr.png"]


def _box_only(synth_data, tmp_path):
    data = json.loads(open(synth_data["train_json"]).read())
    for a in data["annotations"]:
        a.pop("segmentation", None)
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.slow
def test_box_only_data_is_refused_for_mask_rcnn_before_training(synth_data, tmp_path, capsys):
    from scratchlab.cli import main
    from tests.conftest import MINI, TINY

    ann = _box_only(synth_data, tmp_path)
    code = main(
        [
            "train",
            str(MINI),
            "--out",
            str(tmp_path / "run"),
            *TINY,
            f"data.train_json={ann}",
            f"data.train_images={synth_data['train_images']}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and str(ann) in err and "box-only" in err and "model.arch=faster_rcnn" in err
    assert (
        not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()
    )


def test_accumulating_two_batches_of_one_equals_a_batch_of_two(tmp_path, synth_data):
    """GN makes each image's loss independent of its batch mates. One training image, not flipped, at one
    size: both images of a batch are the same, so the RPN and RoI samplers (told to keep every candidate)
    see the same counts in either split, and only the gradient arithmetic can differ. On CPU: CUDA's TF32
    convolutions round at ~1e-3, above the tolerance this comparison needs."""
    from scratchlab.config import load_config
    from tests.conftest import ROOT, TINY

    frcnn = ROOT / "configs" / "mini" / "faster_rcnn_gn_scratch.yaml"
    same_images = [
        f"data.train_json={synth_data['train_json']}",
        f"data.train_images={synth_data['train_images']}",
        "data.subset=1",
        "input.hflip_prob=0",
        "input.min_size_train=[64]",
        "model.rpn.batch_size_per_image=100000",
        "model.roi_box_head.batch_size_per_image=100000",
        "solver.max_iter=2",
        "solver.warmup_iters=0",
        "solver.ims_per_batch=2",
        "log.period=1",
        "device=cpu",
    ]
    runs = {}
    for accumulate in (1, 2):
        out = tmp_path / f"accumulate{accumulate}"
        final = train(load_config(frcnn, [*TINY, *same_images, f"solver.accumulate={accumulate}"]), out)
        weights = torch.load(out / "model_final.pth", weights_only=True)["model"]
        losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()[:2]]
        runs[accumulate] = weights, losses, final["cost"]["images_seen"]
    (w1, l1, n1), (w2, l2, n2) = runs[1], runs[2]
    assert n1 == n2 == 4
    assert l1 == pytest.approx(l2, rel=1e-5)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-6, msg=k)


def test_loader_workers_stop_when_training_ends(tmp_path, synth_data):
    """A long-lived process (a notebook, a study running arms in-process) must not keep a worker per run."""
    import multiprocessing

    from scratchlab.config import load_config
    from tests.conftest import MINI, TINY

    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    cfg = load_config(MINI, [*TINY, *data, "data.val_json=null", "solver.max_iter=2", "data.num_workers=1"])
    before = set(multiprocessing.active_children())  # an earlier test's failed run may still hold its own
    train(cfg, tmp_path)
    assert set(multiprocessing.active_children()) - before == set()


def test_resuming_with_a_schedule_shorter_than_the_checkpoint_is_refused(tmp_path, tiny_cfg):
    tiny_cfg.eval.period = 0
    train(tiny_cfg, tmp_path)  # 6 iterations
    config_before = (tmp_path / "config.yaml").read_text()
    shorter = tiny_cfg.copy()
    shorter.solver.max_iter = 4
    shorter.solver.lr_drops_from_end = [4, 2]
    with pytest.raises(ValueError, match=r"last\.pth is at iteration 6, past the end of this config's 4"):
        train(shorter, tmp_path, resume=True)
    assert (tmp_path / "config.yaml").read_text() == config_before  # the run is left as it was
