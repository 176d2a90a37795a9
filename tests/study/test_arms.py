"""Arm records: what a study file asks for, and what a record reads from the run that produced it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from scratchlab.config import load_config, schedule_steps
from scratchlab.engine import data as engine_data
from scratchlab.study.arms import ArmSpec, expand_arms, pretraining_name
from scratchlab.study.launcher import launch_study
from scratchlab.study.runner import Study, run_study
from tests.conftest import MINI, TINY
from tests.pretrain.test_direct import DIRECT

STAGE1 = [
    "direct.stage1=[input.crop_size=48, solver.ims_per_batch=4, solver.constant_lr=true, solver.max_iter=2]",
    "direct.stage2=[solver.max_iter=2]",
]


def _study(tmp_path: Path, data: dict[str, str], arms: list[dict], *extra: str) -> Path:
    overrides = [*TINY, *(f"data.{k}={v}" for k, v in data.items()), "eval.period=0", *extra]
    spec = {
        "name": "t",
        "base": str(MINI),
        "overrides": overrides,
        "pretrain": {"direct": {"config": str(DIRECT), "overrides": [*TINY, "eval.period=0", *STAGE1]}},
        "arms": arms,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("name", ["../../escaped_arm", "/tmp/abs", "a/b", "", ".hidden", "x" * 200, 3])
def test_an_arm_name_that_is_not_a_plain_word_is_refused_before_anything_runs(name):
    with pytest.raises(ValueError, match=r"arms\[0\]: .*name"):
        expand_arms([{"name": name, "init": "random"}])


def test_expanded_names_stay_plain_words():
    arms = expand_arms([{"name": "sweep", "init": "random", "data": ["10%", "1k"], "seed": [0, 1]}])
    assert [a.name for a in arms][:2] == ["sweep_random_gn_1x_10pct_s0", "sweep_random_gn_1x_10pct_s1"]


def test_a_model_overriding_direct_arm_gets_its_own_pretraining_name():
    plain = ArmSpec("a", init="direct", data="50%")
    cascade = ArmSpec("b", init="direct", data="50%", overrides=("model.arch=cascade_mask_rcnn",))
    init_only = ArmSpec("c", init="direct", data="50%", overrides=("model.init=x.pth",))
    assert pretraining_name(plain, "Mask R-CNN R50-FPN") == "direct_gn_50pct"
    assert pretraining_name(init_only, "Mask R-CNN R50-FPN") == "direct_gn_50pct"
    assert (
        pretraining_name(cascade, "Cascade Mask R-CNN R50-FPN")
        == "direct_gn_50pct_cascade_mask_r_cnn_r50_fpn"
    )


class _InProcessExecutor:
    """A submitit executor that runs each job at once in this process (the scheduler's seam): it records
    every submission, and refuses one submitted twice (a study that never ends resubmits forever)."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str]] = []

    def update_parameters(self, **params) -> None:
        pass

    def submit(self, job):
        key = (job.kind, job.arm_name)
        if key in self.submitted:
            raise AssertionError(f"{key} submitted twice: {self.submitted}")
        self.submitted.append(key)
        return _DoneJob(str(len(self.submitted)), job.run())


class _DoneJob:
    def __init__(self, job_id: str, result) -> None:
        self.job_id, self.result = job_id, result

    def done(self) -> bool:
        return True

    def results(self) -> list:
        return [self.result]

    def cancel(self, check: bool = True) -> None:
        pass


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["inline", "local"])
def test_a_model_overriding_direct_arm_waits_on_its_own_stage1_and_the_study_ends(
    tmp_path, synth_data, launcher
):
    arm = {"name": "r34_direct", "init": "direct", "overrides": ["model.backbone.depth=34"]}
    path = _study(tmp_path, synth_data, [arm])
    out = tmp_path / "out"
    if launcher == "inline":
        study = run_study(path, out)
    else:
        executor = _InProcessExecutor()
        study = launch_study(path, out, "local", executor=executor, poll_s=0.01)
        assert executor.submitted == [("pretrain", "r34_direct"), ("arm", "r34_direct")]
    (record,) = study["arms"]
    assert record["status"] == "finished", record["error"]
    planned = Study(path, out).pretraining(Study(path, out).arm("r34_direct"))
    assert planned[0].endswith("_r34_fpn") and planned[1].is_file()
    assert record["provenance"]["source"] == str(planned[1].resolve())


def _with_images_without_instances(tmp_path: Path, synth_data: dict[str, str], extra: int) -> dict[str, str]:
    """The training set plus ``extra`` images that have no annotation (the trainer leaves them out)."""
    coco = json.loads(Path(synth_data["train_json"]).read_text())
    images = tmp_path / "train"
    shutil.copytree(synth_data["train_images"], images)
    first = coco["images"][0]
    for k in range(extra):
        name = f"empty_{k}.png"
        shutil.copy(images / first["file_name"], images / name)
        coco["images"].append({**first, "id": 10_000 + k, "file_name": name})
    (tmp_path / "train.json").write_text(json.dumps(coco))
    return {**synth_data, "train_json": str(tmp_path / "train.json"), "train_images": str(images)}


@pytest.mark.slow
def test_an_arm_record_reads_its_schedule_and_training_images_from_its_run(tmp_path, synth_data):
    data = _with_images_without_instances(tmp_path, synth_data, extra=3)
    # One process where the recipe's reference is two: the run trains twice the iterations at half the LR.
    path = _study(tmp_path, data, [{"name": "scratch", "init": "random"}], "solver.reference_world_size=2")
    (record,) = run_study(path, tmp_path / "out")["arms"]
    ran = load_config(tmp_path / "out" / "arms" / "scratch" / "config.yaml")
    assert record["status"] == "finished", record["error"]
    assert record["max_iter"] == record["final"]["iteration"] == 2 * 6
    assert record["lr_drops"] == schedule_steps(ran) and min(record["lr_drops"]) > 6
    cfg = load_config(
        MINI, [*TINY, f"data.train_json={data['train_json']}", f"data.train_images={data['train_images']}"]
    )
    assert record["data_images"] == len(engine_data.build_train_set(cfg)) == 12
