"""``scratchlab study STUDY.yaml --out DIR``: the paper's experiments as one command.

A study file names a base detector config and a list of arms. Every arm field may be a list; lists are
expanded into the product (e.g. ``schedule: [1, 3]`` gives two arms)::

    name: my-study
    base: configs/mini/mask_rcnn_gn_scratch.yaml    # relative to the study file
    overrides: [data.train_json=..., ...]           # applied to every arm (the dataset, say)
    pretrain:                                       # shared pre-training, done once, reused
      classify: {config: configs/mini/classify_gn.yaml, overrides: [], finetune: [model.backbone.freeze_at=2]}
      direct: {config: configs/mini/direct_gn.yaml, overrides: []}
    arms:
      - {init: random, norm: GN, schedule: [1, 3], data: ["100%", "1k"], seed: [0, 1]}
      - {init: classify, norm: GN, schedule: 1}
      - {init: direct, norm: GN, schedule: 1, name: direct_gn}
      - {init: weights, weights: ResNet50_Weights.IMAGENET1K_V2, norm: FrozenBN, schedule: 1}
      - {init: weights, weights: pretrained/R-50-GN.pkl, weights_data: ImageNet-1k, norm: GN}

An arm's ``overrides`` may change the detector (``model.arch=cascade_mask_rcnn``, ``model.backbone.name=
swin_t``, ``model.backbone.depth=152``, ...): its record names the model, and arms of different models are
never averaged as seeds of one group.

``init``: random | classify (the backbone from ``scratchlab pretrain classify``, one per norm family)
| direct (stage 1 of direct pre-training on the arm's own data regime, then the arm fine-tunes)
| weights (published weights: ``weights`` is a torchvision enum name or a file, read by
``scratchlab.models.weights``; ``weights_data`` says what they were pre-trained on when the file cannot).
Every arm records the provenance of its initial weights (source, sha256, data, pre-training cost or
"not counted: external"). ``scratchlab study STUDY.yaml --out DIR key=value ...``: the command line's
overrides apply to every arm and to the shared pre-training, after the study's own.
``data``: "100%", "10%", a count such as 1000 or "1k": a seeded subset, the same images for every arm.
``share: false``: every arm trains alone (by default arms that differ only in their schedule's length
share a trunk, study/plan.py). ``pretrain.classify.finetune``: overrides for the arms that fine-tune the
classification backbone; the direct arms fine-tune with the direct config's ``direct.stage2`` overrides.
``pretrain.vary_seed: true``: each arm seed pre-trains with its own seed (a training-noise calibration
varies the pre-training's seed too). ``noise:``: a calibrated training-noise block for arms with one seed (``study/noise.py``).
Each arm is a normal run dir under ``DIR/arms/<name>`` (a name is a plain word: letters, digits, ``.``,
``_``, ``-``); a crashing or diverging arm is recorded and the
others go on; running the study again skips finished arms and resumes unfinished ones.

``DIR/study.json`` holds the command line's ``overrides``, every arm's record (its ``provenance`` and the
per-image COCO evaluation of its val detections: final model bbox and segm, each curve point bbox; the
detections themselves stay in ``arms/<name>/inference/``), and the verdict with its 95% intervals (a
paired bootstrap over the val images, run once all arms are done). ``scratchlab study --report-only DIR`` recomputes the verdict and
the report from study.json alone.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from .. import run_dir
from ..config import apply_overrides, load_config, override_value
from ..engine import NonFiniteLossError, train
from ..engine.data import resolve_data, train_set_size
from ..engine.fork import fork_run, is_seeded
from ..engine.schedule import scale_to_world
from ..evaluation import load_coco_gt
from ..evaluation.bootstrap import per_image_eval
from ..models import describe_init, model_label
from ..pretrain.classify import pretrain_classify
from ..pretrain.direct import stage1_weights, stage_configs
from ..run_dir import EXTERNAL
from ..utils.dist import barrier, is_main_process, launched_world_size
from ..utils.lock import exclusive_directory
from ..utils.runtime import setup_logging
from .arms import ArmRecord, ArmSpec, expand_arms, finished_record, parse_regime, pretraining_name
from .noise import Calibration
from .plan import Segment, StudyPlan, format_plan, plan_arms, sharing
from .report import write_report
from .store import rebuild_report, write_study
from .verdict import RESAMPLES, compute_verdict

__all__ = ["run_study", "plan_study", "rebuild_report", "arm_config", "with_per_image", "Study"]

log = logging.getLogger("scratchlab")


def _norm_overrides(norm: str) -> list[str]:
    # The arm's norm goes everywhere; the parts inherit it (FrozenBN leaves random FPN/heads without norm).
    return [
        f"model.norm={norm}",
        "model.fpn.norm=null",
        "model.roi_box_head.norm=null",
        "model.roi_mask_head.norm=null",
        "model.roi_keypoint_head.norm=null",
    ]


def arm_config(
    base: DictConfig, arm: ArmSpec, init_path: str | None, extra: list[str] | tuple[str, ...] = ()
) -> DictConfig:
    """The detector config of one arm: base + norm, schedule, data regime, seed, init, own overrides,
    then ``extra`` (the command line's, which apply to every arm)."""
    overrides = [
        *_norm_overrides(arm.norm),
        f"solver.schedule={arm.schedule}",
        f"data.subset={override_value(parse_regime(arm.data))}",
        f"seed={arm.seed}",
        f"model.init={init_path or 'random'}",
    ]
    if arm.init == "random":
        overrides.append("model.backbone.freeze_at=0")
    if arm.weights_data:
        overrides.append(f"model.init_data={json.dumps(str(arm.weights_data))}")
    return apply_overrides(base, [*overrides, *arm.overrides, *extra])


def _per_image(
    gt: Any, run: Path, iteration: int, tasks: tuple[str, ...], oks_sigmas: list[float] | None = None
) -> dict[str, Any] | None:
    """Per-image evaluation data of the detections a run wrote at ``iteration`` (None if it wrote none):
    what the verdict's bootstrap resamples, kept in study.json so the report can be rebuilt."""
    path = run_dir.detections_file(run, iteration)
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    tasks = tuple(t for t in tasks if t != "segm" or all("segmentation" in r for r in results))
    return {t: per_image_eval(gt, results, t, oks_sigmas=oks_sigmas) for t in tasks}


def with_per_image(record: ArmRecord, run: Path, gt: Any) -> ArmRecord:
    """``record`` with per-image evaluation data of its final model (bbox, segm, and keypoints when the
    run measured keypoint AP, with the OKS sigmas it was measured with) and of each curve point (bbox)."""
    tasks = ("bbox", "segm", *(("keypoints",) if "keypoints" in record.final else ()))
    sigmas = ((run_dir.read_config(run) or {}).get("eval") or {}).get("keypoint_oks_sigmas")
    per_image = _per_image(gt, run, record.final["iteration"], tasks, sigmas)
    curve = [{**p, "per_image": _per_image(gt, run, p["iteration"], ("bbox",))} for p in record.curve]
    return record.with_(per_image=per_image, curve=curve)


class Study:
    """Runs the arms of one study file into ``out`` and keeps ``study.json`` up to date."""

    def __init__(
        self,
        study_file: str | Path,
        out: str | Path,
        overrides: list[str] | tuple[str, ...] = (),
        plan_only: bool = False,
    ) -> None:
        """``plan_only``: only read the study (``--plan``): create nothing, generate no data."""
        self.file, self.out, self.overrides = Path(study_file), Path(out), list(overrides)
        if not self.file.is_file():
            raise FileNotFoundError(f"{self.file}: no such study file")
        spec = yaml.safe_load(self.file.read_text()) or {}
        if not isinstance(spec, dict) or "arms" not in spec or "base" not in spec:
            raise ValueError(f"{self.file}: a study needs 'base' (a detector config) and 'arms'")
        self.spec = spec
        try:
            arms = expand_arms(spec["arms"])
        except ValueError as exc:  # the arm's index alone does not say which file it is in
            raise ValueError(f"{self.file}: {exc}") from exc
        here = self.file.parent
        base = load_config(here / spec["base"], [*spec.get("overrides", []), *self.overrides])
        if plan_only:  # every arm has the same data keys: the plan needs no data on disk
            self.base = base
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            setup_logging(self.out / run_dir.LOG)
            self.base = resolve_data(base, self.out)  # one dataset for all arms (generated once if none)
        self.pretrain_spec = spec.get("pretrain") or {}
        self.share = spec.get("share", True)
        if not isinstance(self.share, bool):
            raise ValueError(
                f"{self.file}: share: true (arms fork from shared trunks) or false, got {self.share!r}"
            )
        self.noise = spec.get("noise")
        Calibration.from_block(self.noise, f"{self.file}: noise")  # a bad block fails now, not at the end
        self.records: dict[str, ArmRecord] = {}
        self._gt: Any = None  # the val ground truth, loaded when the first arm finishes
        self._direct_cfgs: dict[str, DictConfig] = {}
        self.arms = [
            ArmSpec(**{**a.__dict__, "weights": self._weights_path(a.weights)}) if a.weights else a
            for a in arms
        ]
        self._provenance = {a.name: self._planned_provenance(a) for a in self.arms if a.weights}

    # -- published weights --------------------------------------------------------------------------
    def _weights_path(self, weights: str) -> str:
        """A relative weights path is read relative to the study file when it exists there."""
        near = self.file.parent / str(weights)
        return (
            str(near.resolve()) if not Path(str(weights)).is_absolute() and near.is_file() else str(weights)
        )

    def _planned_provenance(self, arm: ArmSpec) -> dict[str, Any] | None:
        """What the arm's provenance will say (the same function as the run's), so that its label is known
        while it is pending; None when the source cannot be described yet (the arm will fail, saying why)."""
        try:
            prov = describe_init(arm.weights, {}, arm.weights_data, self.base.data.train_json)
        except (OSError, ValueError):
            return None
        return {k: prov.get(k) for k in ("label", "source", "sha256", "data", "format")} | {"cost": EXTERNAL}

    # -- arm records --------------------------------------------------------------------------------
    def record(self, arm: ArmSpec, status: str, **known: Any) -> ArmRecord:
        """The record of ``arm`` before its run says more (pending, running, or failed without a run)."""
        return ArmRecord.of(arm, status, self.model(arm), provenance=self._provenance.get(arm.name), **known)

    def model(self, arm: ArmSpec) -> str:
        """The detector an arm trains: the base config's, unless its overrides set model.arch or a backbone
        key (``model.arch=cascade_mask_rcnn``, ``model.backbone.name=swin_t``, ...)."""
        try:
            return model_label(apply_overrides(self.base, list(arm.overrides)))
        except ValueError as exc:  # a bad override: the arm itself fails with that message when it runs
            return f"? ({exc})"

    def arm(self, name: str) -> ArmSpec:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"{self.file}: no arm named {name!r}")

    # -- shared pre-training ------------------------------------------------------------------------
    def _pretrain_cfg(self, kind: str, extra: list[str]) -> DictConfig:
        p = self.pretrain_spec.get(kind)
        if not p or "config" not in p:
            raise ValueError(f"{self.file}: arms use init={kind} but pretrain.{kind}.config is not given")
        data = [
            f"data.{k}={override_value(self.base.data[k])}"
            for k in ("train_json", "train_images", "val_json", "val_images")
        ]
        return load_config(
            self.file.parent / p["config"], [*data, *p.get("overrides", []), *self.overrides, *extra]
        )

    @property
    def vary_seed(self) -> bool:
        """``pretrain.vary_seed``: each arm seed pre-trains with that seed (a noise calibration varies it)."""
        return bool(self.pretrain_spec.get("vary_seed", False))

    def _seed(self, arm: ArmSpec) -> list[str]:
        return [f"seed={arm.seed}"] if self.vary_seed else []

    def _direct_cfg(self, arm: ArmSpec) -> DictConfig:
        """Direct pre-training's config for ``arm``: its norm, data regime and detector."""
        if arm.name not in self._direct_cfgs:
            extra = [*_norm_overrides(arm.norm), f"data.subset={override_value(parse_regime(arm.data))}"]
            extra += self._seed(arm)
            self._direct_cfgs[arm.name] = self._pretrain_cfg("direct", [*extra, *arm.model_overrides])
        return self._direct_cfgs[arm.name]

    def pretraining(self, arm: ArmSpec) -> tuple[str, Path] | None:
        """The shared pre-training ``arm`` starts from: its name and the file it leaves once done (None for
        none). Arms with the same name share one pre-training (a cluster launcher's dependency)."""
        if arm.init == "classify":
            name = pretraining_name(arm, "", self.vary_seed)
            return name, self.out / run_dir.PRETRAIN / name / run_dir.BACKBONE
        if arm.init == "direct":
            name = pretraining_name(arm, model_label(self._direct_cfg(arm)), self.vary_seed)
            return name, stage1_weights(self.out / run_dir.PRETRAIN / name)
        return None

    def run_pretraining(self, arm: ArmSpec) -> None:
        """Do (or find done) the shared pre-training ``arm`` starts from."""
        if arm.init == "classify":
            self.classify_backbone(arm)
        elif arm.init == "direct":
            self.direct_stage1(arm)

    def classify_backbone(self, arm: ArmSpec) -> str:
        """One classification pre-training per norm family (GN, or BN for BN/SyncBN/FrozenBN arms)."""
        _, backbone = self.pretraining(arm)
        if not backbone.is_file():
            family = "GN" if arm.norm == "GN" else "BN"
            cfg = self._pretrain_cfg("classify", [*_norm_overrides(family), *self._seed(arm)])
            pretrain_classify(cfg, backbone.parent)
        return str(backbone)

    def direct_stage1(self, arm: ArmSpec) -> tuple[str, DictConfig]:
        """Stage 1 of direct pre-training on the arm's data regime (shared by arms with the same regime,
        norm and detector); returns its weights and the stage-2 config to fine-tune with."""
        name, weights = self.pretraining(arm)
        out = self.out / run_dir.PRETRAIN / name
        stage1, stage2 = stage_configs(self._direct_cfg(arm), out)
        if not weights.is_file():
            train(stage1, out / run_dir.STAGE1, resume=True)
        return str(weights), stage2

    # -- arms ---------------------------------------------------------------------------------------
    def config(self, arm: ArmSpec, pretrain: bool = True) -> DictConfig:
        """The config ``arm`` trains with; ``pretrain``: do (or find done) its shared pre-training first
        (without: the config it will have, for the plan)."""
        base, init_path = self.base, None
        if arm.init == "classify":
            init_path = self.classify_backbone(arm) if pretrain else str(self.pretraining(arm)[1])
            base = apply_overrides(base, self.pretrain_spec["classify"].get("finetune", []))
        elif arm.init == "direct":
            if pretrain:
                init_path, stage2 = self.direct_stage1(arm)
            else:  # stage 2's overrides, without stage 1's length (which may need the data)
                init_path, stage2 = str(self.pretraining(arm)[1]), self._direct_cfg(arm)
            base = apply_overrides(base, list(stage2.direct.stage2))
        elif arm.init == "weights":
            init_path = arm.weights
        return arm_config(base, arm, init_path, self.overrides)

    def plan(self, world: int | None = None) -> StudyPlan:
        """The arms as a tree of shared trunks (study/plan.py), from the configs they will train with;
        ``world``: the devices each arm trains on (iteration counts after ``solver.reference_world_size``
        scaling, as the runs count them), None for the configs as written."""
        configs, unplannable = [], {}
        for a in self.arms:
            try:
                cfg = self.config(a, pretrain=False)
                cfg = scale_to_world(cfg, world)[0] if world else cfg
            except (OSError, ValueError) as exc:  # the arm fails with this message when it runs
                unplannable[a.name] = str(exc)
                continue
            configs.append((a.name, OmegaConf.to_container(cfg)))
        return plan_arms(configs, unplannable, self.share)

    def _start_fork(self, arm: ArmSpec, plan: StudyPlan, run: Path, cfg: DictConfig) -> None:
        """Seed ``arm``'s run from its parent's branch checkpoint, once (a started fork resumes itself).
        Without that checkpoint (its parent failed before it, or ran before it kept one) it trains alone."""
        a = plan.arm(arm.name)
        if a.parent is None or is_seeded(run) or run_dir.is_finished(run):
            return
        parent = self.out / run_dir.ARMS / a.parent
        if not run_dir.branch_checkpoint(parent, a.branch).is_file():
            log.warning("arm %s: %s kept no state at %d; training it alone", arm.name, a.parent, a.branch)
            return
        if is_main_process():
            fork_run(parent, a.parent, run, a.branch, cfg)
            log.info("arm %s: forked from %s at iteration %d", arm.name, a.parent, a.branch)
        barrier()

    def run_segment(self, segment: Segment, plan: StudyPlan) -> ArmRecord | None:
        """One segment of an arm's run (a cluster job): iterations ``segment.start`` to ``segment.end``,
        stopping there with its checkpoint (None, or the arm's failed record); the arm's last segment
        finishes it and returns its record."""
        final = segment.end == plan.arm(segment.arm).total
        return self.run_arm(self.arm(segment.arm), plan, stop_at=None if final else segment.end)

    def run_arm(
        self, arm: ArmSpec, plan: StudyPlan | None = None, stop_at: int | None = None
    ) -> ArmRecord | None:
        """Train ``arm`` to its end (or find it done) and return its record; with ``plan``, a fork starts
        from its parent's branch checkpoint and the arm keeps one where its own forks start. ``stop_at``:
        train only to that iteration (a segment) and return None, unless it failed."""
        run = self.out / run_dir.ARMS / arm.name
        record = self.record(arm, "running")
        try:
            cfg = self.config(arm)
            record = record.with_(data_images=self._regime_size(cfg))
            if run_dir.is_finished(run):
                log.info("arm %s already finished: skipping", arm.name)
            else:
                log.info("arm %s: training%s", arm.name, f" to iteration {stop_at}" if stop_at else "")
                if plan is not None:
                    self._start_fork(arm, plan, run, cfg)
                keep = plan.keeps(arm.name) if plan else ()
                if train(cfg, run, resume=True, stop_at=stop_at, keep=keep).get("stopped"):
                    return None
        except NonFiniteLossError as exc:
            record = record.with_(status="diverged", error=str(exc))
            log.warning("arm %s diverged: %s", arm.name, exc)
        except Exception as exc:  # one failing arm must not stop the study
            record = record.with_(status="failed", error=f"{type(exc).__name__}: {exc}")
            run.mkdir(parents=True, exist_ok=True)
            (run / run_dir.ERROR).write_text(traceback.format_exc())
            log.warning("arm %s failed: %s", arm.name, record.error)
        record = finished_record(record, run) if record.status == "running" else record
        if record.status != "finished":
            return record.with_(curve=run_dir.curve(run))
        return self._with_per_image(record, run)

    @staticmethod
    def _regime_size(cfg: DictConfig) -> int | None:
        """How many images the arm trains on, by the trainer's own rule (until its run says so itself)."""
        try:
            return train_set_size(cfg)
        except (OSError, ValueError):  # a regime larger than the set: the arm fails with that message
            return None

    def _with_per_image(self, record: ArmRecord, run: Path) -> ArmRecord:
        if self._gt is None:
            self._gt = load_coco_gt(self.base.data.val_json)
        return with_per_image(record, run, self._gt)

    def write(self, resamples: int = 0) -> dict[str, Any]:
        """study.json with the verdict so far (``resamples=0`` while arms run: intervals from seeds only;
        the bootstrap runs once at the end)."""
        arms = [(self.records.get(a.name) or self.record(a, "pending")).as_dict() for a in self.arms]
        study = {
            "name": self.spec.get("name", self.file.stem),
            "overrides": self.overrides,
            "dataset": {"train_json": self.base.data.train_json, "val_json": self.base.data.val_json},
            "arms": arms,
            "sharing": sharing(arms),
            **({"noise": self.noise} if self.noise else {}),
            "verdict": compute_verdict(arms, resamples=resamples, noise=self.noise),
        }
        write_study(self.out / run_dir.STUDY, study)
        return study

    def run(self) -> dict[str, Any]:
        self.write()  # every arm pending: study.json shows the plan from the start
        plan = self.plan(launched_world_size())  # the world each arm's train() will find
        for name in plan.in_tree_order():  # a trunk before the arms that fork from it
            arm = self.arm(name)
            # `study --status` reads study.json: the arm training now is running, not pending.
            self.records[arm.name] = self.record(arm, "running")
            self.write()
            self.records[arm.name] = self.run_arm(arm, plan)
            self.write()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Once every arm has a record: the verdict with its bootstrap intervals, and the report."""
        study = self.write(RESAMPLES)
        study["report"] = write_report(study, self.out)
        log.info("study report: %s", self.out / run_dir.REPORT_HTML)
        return study


def run_study(
    study_file: str | Path, out: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run (or resume) every arm of ``study_file`` into ``out``; write study.json and the report.
    ``overrides`` (``key=value``) apply to every arm and to the shared pre-training, after the study's own."""
    with exclusive_directory(out):  # two studies in one folder would train the same arms at once
        return Study(study_file, out, overrides).run()


def plan_study(
    study_file: str | Path, out: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> str:
    """``study --plan``: the arm tree of ``study_file``, without running anything; with ``out`` (a study
    directory already started), which segments are done. Its last line: ``iterations: RUN of SUM (P%)``."""
    study = Study(study_file, out or Path(study_file).parent, overrides, plan_only=True)
    started = Path(out) if out is not None and Path(out).is_dir() else None
    return format_plan(study.plan(), study.spec.get("name", study.file.stem), started)
