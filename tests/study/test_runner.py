import json

import numpy as np
import pytest
import torch
import yaml

from scratchlab import run_dir
from scratchlab.cli import main
from scratchlab.config import load_config
from scratchlab.study import runner
from scratchlab.study.runner import expand_arms, parse_regime, run_study
from scratchlab.study.verdict import verdict_lines
from tests.conftest import MINI, TINY


@pytest.mark.parametrize(
    "text,value", [("100%", None), ("10%", 0.1), ("1k", 1000), (500, 500), ("0.25", 0.25)]
)
def test_parse_regime(text, value):
    assert parse_regime(text) == value


def test_parse_regime_rejects_garbage():
    with pytest.raises(ValueError, match="data regime"):
        parse_regime("lots")


def test_expand_arms_product_and_names():
    arms = expand_arms(
        [{"init": "random", "schedule": [1, 3], "data": ["100%", "1k"]}, {"name": "pt", "init": "classify"}]
    )
    assert len(arms) == 5
    assert {a.name for a in arms} >= {"random_gn_1x_100pct_s0", "random_gn_3x_1k_s0", "pt"}
    with pytest.raises(ValueError, match="unknown field"):
        expand_arms([{"init": "random", "lr": 0.1}])
    with pytest.raises(ValueError, match="duplicate"):
        expand_arms([{"name": "a"}, {"name": "a"}])


def _study(tmp_path, synth_data, arms):
    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    spec = {"name": "t", "base": str(MINI), "overrides": [*TINY, *data, "eval.period=0"], "arms": arms}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_bad_study_file_is_named(tmp_path, synth_data):
    path = _study(tmp_path, synth_data, [{"init": "random", "lr": 0.1}])
    with pytest.raises(ValueError, match=rf"{path}: arms\[0\]: unknown field"):
        run_study(path, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="nope.yaml: no such study file"):
        run_study(tmp_path / "nope.yaml", tmp_path / "out")


@pytest.mark.slow
def test_crashing_arm_is_recorded_and_study_completes_then_resume_skips(tmp_path, synth_data, monkeypatch):
    arms = [
        {"name": "ok", "init": "random", "data": ["100%", "50%"]},
        {"name": "broken", "init": "random", "overrides": ["model.gn_groups=3"]},
    ]  # fails in train()
    path = _study(tmp_path, synth_data, arms)
    study = run_study(path, tmp_path / "out")
    by_name = {a["name"]: a for a in study["arms"]}
    assert by_name["broken"]["status"] == "failed" and "gn_groups" in by_name["broken"]["error"]
    ok = by_name["ok_random_gn_1x_100pct_s0"]
    assert ok["status"] == "finished" and ok["final"]["bbox"]["AP"] is not None
    assert (
        ok["cost"]["images_seen"] > 0 and ok["curve"] and ok["lr_drops"] == [4, 5]
    )  # a 6-iteration 1x: 2/3, 8/9
    half = by_name["ok_random_gn_1x_50pct_s0"]
    assert half["data_images"] == 6 and ok["data_images"] == 12
    saved = json.loads((tmp_path / "out" / "study.json").read_text())
    assert [a["status"] for a in saved["arms"]] == ["finished", "finished", "failed"]
    assert verdict_lines(saved["verdict"]) and saved["verdict"]["headline"]
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "report.md").is_file()
    # The final val detections were kept, and study.json holds their per-image evaluation and intervals.
    assert (tmp_path / "out" / "arms" / ok["name"] / "inference" / "detections_0000006.json").is_file()
    per_image = saved["arms"][0]["per_image"]
    assert set(per_image) == {"bbox", "segm"} and len(per_image["bbox"]["image_ids"]) == 4
    assert set(saved["verdict"]["bootstrap"]["arms"][ok["name"]]["bbox"]) == {"AP", "AP50", "AP75"}

    # --report-only rebuilds the same verdict from study.json alone (no arm runs), and the report.
    (tmp_path / "out" / "report.md").unlink()
    assert main(["study", "--report-only", str(tmp_path / "out")]) == 0
    rebuilt = json.loads((tmp_path / "out" / "study.json").read_text())
    assert rebuilt["verdict"] == saved["verdict"] and rebuilt["arms"] == saved["arms"]
    assert (tmp_path / "out" / "report.md").is_file()
    assert main(["study", "--report-only", str(tmp_path / "nothing")]) == 2  # a clear error, no traceback
    assert main(["study", "--report-only", str(tmp_path / "out"), "solver.base_lr=0.1"]) == 2  # runs no arm

    # Re-running skips finished arms (no training is called for them) and retries the failed one.
    calls = []
    real_train = runner.train
    monkeypatch.setattr(
        runner,
        "train",
        lambda cfg, out, resume=False, **kw: calls.append(out) or real_train(cfg, out, resume, **kw),
    )
    again = run_study(path, tmp_path / "out")
    assert [c.name for c in calls] == ["broken"]  # finished arms skipped, the failed one retried
    assert [a["status"] for a in again["arms"]] == ["finished", "finished", "failed"]


def test_study_command_exits_1_naming_the_failed_arms(tmp_path, synth_data, capsys):
    path = _study(
        tmp_path, synth_data, [{"name": "broken", "init": "random", "overrides": ["model.gn_groups=3"]}]
    )
    assert main(["study", str(path), "--out", str(tmp_path / "out")]) == 1
    assert "1 arm(s) failed: broken" in capsys.readouterr().err
    assert (tmp_path / "out" / "report.html").is_file()  # the report is still written


def test_unfinished_arm_resumes_from_its_checkpoint(tmp_path, synth_data):
    path = _study(tmp_path, synth_data, [{"name": "a", "init": "random"}])
    out = tmp_path / "out"
    run_study(path, out)
    run_dir = out / "arms" / "a"
    (run_dir / "final_metrics.json").unlink()  # as if killed after the last checkpoint
    study = run_study(path, out)
    assert study["arms"][0]["status"] == "finished"
    assert "resumed from" in (run_dir / "log.txt").read_text()


@pytest.mark.slow
def test_shared_pretraining_is_done_once(tmp_path, synth_data, monkeypatch):
    from tests.pretrain.test_classify import CLASSIFY, SMALL

    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    spec = {
        "base": str(MINI),
        "overrides": [*TINY, *data, "eval.period=0"],
        "pretrain": {
            "classify": {"config": str(CLASSIFY), "overrides": [*TINY, *SMALL, "classify.epochs=1"]}
        },
        "arms": [{"init": "classify", "schedule": [1, 2]}],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    calls = []
    real = runner.pretrain_classify
    monkeypatch.setattr(runner, "pretrain_classify", lambda cfg, out: calls.append(out) or real(cfg, out))
    study = run_study(path, tmp_path / "out")
    assert len(calls) == 1
    assert all(
        a["status"] == "finished" and a["cost"]["pretrain"]["kind"] == "classify" for a in study["arms"]
    )


def test_shipped_study_files_parse_and_point_at_real_configs():
    from tests.conftest import ROOT

    files = sorted((ROOT / "configs" / "studies").glob("*.yaml"))
    assert files
    for f in files:
        spec = yaml.safe_load(f.read_text())
        arms = expand_arms(spec["arms"])
        assert len({a.name for a in arms}) == len(arms) > 0
        assert (f.parent / spec["base"]).is_file()
        for kind in {a.init for a in arms} - {"random", "weights"}:
            assert (f.parent / spec["pretrain"][kind]["config"]).is_file(), kind
            load_config(
                f.parent / spec["pretrain"][kind]["config"], spec["pretrain"][kind].get("overrides", [])
            )
        base = load_config(f.parent / spec["base"], spec.get("overrides", []))
        for arm in arms:  # every arm's overrides name real config keys
            runner.arm_config(base, arm, arm.weights, ["data.num_workers=0"])


def test_weights_arms_expand_named_by_their_source():
    arms = expand_arms(
        [
            {
                "init": "weights",
                "weights": ["ResNet50_Weights.IMAGENET1K_V2", "pre/R-50-GN.pkl"],
                "weights_data": "ImageNet-1k",
                "norm": "FrozenBN",
            }
        ]
    )
    assert [a.name for a in arms] == [
        "weights-imagenet1k-v2_frozenbn_1x_100pct_s0",
        "weights-r-50-gn_frozenbn_1x_100pct_s0",
    ]
    cfg = runner.arm_config(load_config(MINI), arms[1], arms[1].weights, ["solver.base_lr=0.01"])
    assert cfg.model.init == "pre/R-50-GN.pkl" and cfg.model.init_data == "ImageNet-1k"
    assert cfg.solver.base_lr == 0.01 and cfg.model.norm == "FrozenBN"
    with pytest.raises(ValueError, match="init: weights"):
        expand_arms([{"init": "weights", "norm": "GN"}])
    with pytest.raises(ValueError, match="init: weights"):
        expand_arms([{"init": "random", "weights": "x.pth"}])


def test_direct_arms_parse_the_training_json_once(tmp_path, synth_data, monkeypatch):
    """Each direct arm counts its stage-1 epochs in training images; four arms over two data regimes, each
    asked twice (a launcher's pre-training job, then the arm), must not parse the annotation file each time."""
    from scratchlab.data.coco import CocoDetection
    from scratchlab.engine import data as engine_data
    from scratchlab.pretrain.direct import stage1_iterations
    from tests.pretrain.test_direct import DIRECT

    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    spec = {
        "base": str(MINI),
        "overrides": [*TINY, *data],
        "pretrain": {"direct": {"config": str(DIRECT), "overrides": ["direct.stage1_epochs=4"]}},
        "arms": [{"init": "direct", "data": ["100%", "50%"], "seed": [0, 1]}],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    stage1_cfgs = []

    def train_stage1(cfg, run_dir, resume=False):  # stands in for training: leaves stage 1's weights
        stage1_cfgs.append(cfg)
        run_dir.mkdir(parents=True)
        (run_dir / "model_final.pth").write_bytes(b"")

    monkeypatch.setattr(runner, "train", train_stage1)
    study = runner.Study(path, tmp_path / "out")
    parsed = []
    real_init = CocoDetection.__init__
    monkeypatch.setattr(
        CocoDetection,
        "__init__",
        lambda self, ann, *a, **k: parsed.append(ann) or real_init(self, ann, *a, **k),
    )
    engine_data._images_with_instances.cache_clear()  # earlier tests may have parsed the session's set
    for arm in study.arms:
        study.run_pretraining(arm)
        study.direct_stage1(arm)
    assert len(study.arms) == 4 and len(parsed) == 1
    monkeypatch.setattr(CocoDetection, "__init__", real_init)
    # The same stage-1 lengths as counting each regime's training set: 4 passes over 12 and 6 images at 8.
    assert [c.solver.max_iter for c in stage1_cfgs] == [6, 3]
    for cfg in stage1_cfgs:
        assert cfg.solver.max_iter == stage1_iterations(cfg, len(engine_data.build_train_set(cfg)))


def test_status_shows_the_arm_training_now_as_running(tmp_path, synth_data, monkeypatch):
    from scratchlab.study.status import format_status

    path = _study(tmp_path, synth_data, [{"init": "random", "seed": [0, 1]}])
    seen = []

    def train_that_reads_the_status(cfg, out, resume=False, **segment):
        seen.append(format_status(tmp_path / "out"))
        raise RuntimeError("stop here")  # the arm fails at once; only the status mid-training matters

    monkeypatch.setattr(runner, "train", train_that_reads_the_status)
    run_study(path, tmp_path / "out")
    first, second = ([line.split()[:2] for line in table.splitlines()[2:]] for table in seen)
    assert first == [["random_gn_1x_100pct_s0", "running"], ["random_gn_1x_100pct_s1", "pending"]]
    assert second == [["random_gn_1x_100pct_s0", "failed"], ["random_gn_1x_100pct_s1", "running"]]


@pytest.mark.parametrize("entry", ["run_study", "launch_study"])
def test_a_study_folder_in_use_is_refused_before_anything_runs(tmp_path, entry):
    from scratchlab.study.launcher import launch_study
    from scratchlab.study.runner import run_study
    from scratchlab.utils.lock import DirectoryInUseError, exclusive_directory

    start = {
        "run_study": lambda: run_study("none.yaml", tmp_path),
        "launch_study": lambda: launch_study("none.yaml", tmp_path, "local"),
    }
    with exclusive_directory(tmp_path), pytest.raises(DirectoryInUseError, match="in use by pid"):
        start[entry]()
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_shorter_schedule_forks_from_the_longer_arms_trunk_bit_exactly(tmp_path, synth_data):
    """The tiny 1x forks from the 2x at iteration 3 (its LR drops at 4) and ends with the bits of the 1x
    trained alone; an arm of another seed shares nothing."""
    from scratchlab import run_dir
    from scratchlab.engine import train
    from tests.conftest import differing_tensors

    arms = [{"init": "random", "schedule": [1, 2], "overrides": ["eval.period=3", "device=cpu"]}]
    arms.append({"name": "other_seed", "init": "random", "seed": 1, "overrides": ["device=cpu"]})
    path = _study(tmp_path, synth_data, arms)
    out = tmp_path / "out"
    study = run_study(path, out)
    records = {a["name"]: a for a in study["arms"]}
    fork = records["random_gn_1x_100pct_s0"]
    assert fork["forked"]["from"] == "random_gn_2x_100pct_s0" and fork["forked"]["iteration"] == 3
    assert "forked" not in records["other_seed"] and "forked" not in records["random_gn_2x_100pct_s0"]
    assert study["sharing"]["saved_iterations"] == 3
    assert study["sharing"]["iterations_run"] == 12 + 3 + 6
    assert "sharing saved 3 iterations" in (out / run_dir.REPORT_MD).read_text()

    alone, planner = tmp_path / "alone", runner.Study(path, tmp_path / "planner")
    train(planner.config(planner.arm(fork["name"])), alone)
    weights = [
        torch.load(d / run_dir.MODEL_FINAL, weights_only=True)["model"]
        for d in (alone, out / fork["run_dir"])
    ]
    assert differing_tensors(*weights) == []
    assert fork["final"]["bbox"] == json.loads((alone / run_dir.FINAL_METRICS).read_text())["bbox"]
    assert [p["iteration"] for p in fork["curve"]] == [3, 6]  # the trunk's evaluation at 3, its own final


KEYPOINT_SIGMAS = [0.07, 0.07, 0.07]


def _keypoint_set(tmp_path, n_images=16):
    """A COCO keypoints file (one keypoint category of 3 keypoints, one plain category) written to disk,
    with one or two ~40 px objects per image."""
    rng = np.random.default_rng(0)
    images, anns = [], []
    for img in range(1, n_images + 1):
        images.append({"id": img, "width": 160, "height": 160, "file_name": f"{img}.png"})
        for j in range(1 + img % 2):
            x, y = 10 + 70 * j + rng.uniform(0, 10), 20 + rng.uniform(0, 60)
            kp = [x + 20, y + 38, 2, x + 4, y + 4, 2, x + 36, y + 4, 2]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img,
                    "category_id": 1,
                    "bbox": [x, y, 40, 40],
                    "area": 1600.0,
                    "iscrowd": 0,
                    "keypoints": kp,
                    "num_keypoints": 3,
                }
            )
    cats = [{"id": 1, "name": "crescent", "keypoints": ["back", "left", "right"]}, {"id": 2, "name": "sq"}]
    path = tmp_path / "person_keypoints_val.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def _keypoint_detections(gt, jitter, seed):
    """One detection per object, keypoints moved by ``jitter`` px (Gaussian), plus a plain-category box."""
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        kp = np.array(a["keypoints"], dtype=float).reshape(3, 3)
        kp[:, :2] += rng.normal(0, jitter, (3, 2))
        kp[:, 2] = 1
        score = float(rng.uniform(0.5, 1.0))
        out.append({**{k: a[k] for k in ("image_id", "category_id", "bbox")}, "score": score})
        out[-1]["keypoints"] = kp.ravel().tolist()
    out.append({"image_id": 1, "category_id": 2, "bbox": [120, 120, 20, 20], "score": 0.4})
    return out


def _keypoint_run(tmp_path, name, detections, iteration):
    run = tmp_path / name
    (run / "inference").mkdir(parents=True)
    run_dir.detections_file(run, iteration).write_text(json.dumps(detections))
    (run / run_dir.CONFIG).write_text(yaml.safe_dump({"eval": {"keypoint_oks_sigmas": KEYPOINT_SIGMAS}}))
    return run


def test_keypoint_rcnn_arms_get_per_image_keypoint_data_and_the_claim_uses_it(tmp_path, make_arm):
    """A keypoint run's final detections are evaluated image by image as COCOeval's keypoints iouType
    (the run's own OKS sigmas); the keypoints claim then rests on the paired image bootstrap."""
    from scratchlab.evaluation import evaluate_predictions, load_coco_gt
    from scratchlab.evaluation.bootstrap import ap_on_images
    from scratchlab.study.arms import ArmRecord

    path = _keypoint_set(tmp_path)
    gt_json, gt = json.loads(path.read_text()), load_coco_gt(path)
    arms = []
    for name, init, jitter in (("cls_kp_3x", "classify", 1.0), ("rnd_kp_3x", "random", 6.0)):
        dets = _keypoint_detections(gt_json, jitter, seed=len(arms))
        ref = evaluate_predictions(gt_json, dets, ["bbox", "keypoints"], oks_sigmas=KEYPOINT_SIGMAS)
        arm = make_arm(name, init, ref["bbox"]["AP"], schedule=3.0)
        run = _keypoint_run(tmp_path, name, dets, arm["final"]["iteration"])
        arm["final"]["keypoints"] = ref["keypoints"]
        record = ArmRecord(
            **{k: arm[k] for k in ("name", "init", "norm", "schedule", "data", "seed")},
            model="keypoint_rcnn",
            status="finished",
            final=arm["final"],
            curve=[{"iteration": 100, "bbox_AP": 1.0}],
        )
        got = runner.with_per_image(record, run, gt)
        assert set(got.per_image) == {"bbox", "keypoints"}
        kp = got.per_image["keypoints"]
        assert kp["iou_type"] == "keypoints" and kp["max_dets"] == 20 and kp["category_ids"] == [1]
        whole = ap_on_images(kp, range(len(kp["image_ids"])))
        assert whole == pytest.approx({m: ref["keypoints"][m] for m in whole}, abs=1e-9)
        assert got.curve[0]["per_image"] is None  # no detections written at that point
        arms.append({**arm, "per_image": got.per_image})
    assert 0 < arms[1]["final"]["keypoints"]["AP"] < arms[0]["final"]["keypoints"]["AP"] < 100
    # Without a keypoint AP in its final metrics the run gets no keypoint data (a box-only detector).
    plain = runner.with_per_image(record.with_(final={"iteration": 600, "bbox": {}}, curve=[]), run, gt)
    assert set(plain.per_image) == {"bbox"}

    from scratchlab.study.verdict import compute_verdict

    v = compute_verdict(arms, resamples=200)
    f = next(f for f in v["findings"]["keypoints"] if f["task"] == "keypoints")
    assert f["basis"] == "images" and f["interval"][0] < f["diff"] < f["interval"][1]
    assert f["arms"] == ["rnd_kp_3x", "cls_kp_3x"] and f["interval"][1] < 0
    row = next(
        c for c in v["paper"] if c["claim"].startswith("random init catches up") and "keypoint" in c["claim"]
    )
    assert row["interval"] == f["interval"] and row["result"] in ("inconsistent", "not reproduced")
