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
``pretrain.classify.finetune``: overrides for the arms that fine-tune the classification backbone; the
direct arms fine-tune with the direct config's ``direct.stage2`` overrides.
Each arm is a normal run dir under ``DIR/arms/<name>``; a crashing or diverging arm is recorded and the
others go on; running the study again skips finished arms and resumes unfinished ones.

``DIR/study.json`` holds the command line's ``overrides``, every arm's record (its ``provenance`` and the
per-image COCO evaluation of its val detections: final model bbox and segm, each curve point bbox; the
detections themselves stay in ``arms/<name>/inference/``), and the verdict with its 95% intervals (a
paired bootstrap over the val images, run once all arms are done). ``scratchlab study --report-only DIR`` recomputes the verdict and
the report from study.json alone.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import traceback
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from ..config import apply_overrides, load_config, max_iter, override_value, schedule_steps
from ..data.coco import select_subset
from ..engine import NonFiniteLossError, train
from ..engine.cost import EXTERNAL
from ..engine.data import resolve_data
from ..engine.trainer import detections_file
from ..evaluation import load_coco_gt
from ..evaluation.bootstrap import per_image_eval
from ..models import describe_init, model_label
from ..pretrain.classify import pretrain_classify
from ..pretrain.direct import stage_configs
from ..utils.io import write_text
from ..utils.lock import exclusive_directory
from ..utils.runtime import setup_logging
from .groups import sched_label
from .provenance import arm_provenance
from .report import load_study, write_report
from .verdict import RESAMPLES, compute_verdict

__all__ = ["run_study", "rebuild_report", "expand_arms", "parse_regime", "arm_config"]

log = logging.getLogger("scratchlab")
ARM_KEYS = ("name", "init", "norm", "schedule", "data", "seed", "overrides", "weights", "weights_data")
INITS = ("random", "classify", "direct", "weights")


def parse_regime(data: Any) -> float | int | None:
    """``"100%"`` -> None (all), ``"10%"`` -> 0.1, ``"1k"`` -> 1000, ``500`` -> 500."""
    text = str(data).strip().lower()
    if text in ("100%", "all", "none", "1.0"):
        return None
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)%", text):
        return float(m.group(1)) / 100
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)k", text):
        return int(float(m.group(1)) * 1000)
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"0?\.\d+", text):
        return float(text)
    raise ValueError(f"data regime {data!r}: use a percentage ('10%'), a count (1000) or '1k'")


def expand_arms(spec: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Expand list-valued fields into single arms with unique names."""
    arms, names = [], set()
    for i, entry in enumerate(spec):
        unknown = set(entry) - set(ARM_KEYS)
        if unknown:
            raise ValueError(f"arms[{i}]: unknown field(s) {sorted(unknown)}; allowed: {list(ARM_KEYS)}")
        init = entry.get("init", "random")
        if init not in INITS:
            raise ValueError(f"arms[{i}]: init must be one of {', '.join(INITS)}, got {init!r}")
        if (init == "weights") != ("weights" in entry):
            raise ValueError(f"arms[{i}]: 'weights: NAME_OR_PATH' goes with init: weights (and only with it)")
        fields = {
            k: entry.get(k, d)
            for k, d in (
                ("init", "random"),
                ("norm", "GN"),
                ("schedule", 1),
                ("data", "100%"),
                ("seed", 0),
                ("weights", None),
            )
        }
        lists = {k: v if isinstance(v, list) else [v] for k, v in fields.items()}
        combos = list(itertools.product(*lists.values()))
        for combo in combos:
            arm = dict(zip(lists, combo, strict=True))
            arm["schedule"] = float(arm["schedule"])
            arm["data"] = str(arm["data"])
            init = f"weights-{_slug(arm['weights'])}" if arm["weights"] else arm["init"]
            auto = f"{init}_{arm['norm']}_{sched_label(arm['schedule'])}_{arm['data']}_s{arm['seed']}"
            auto = auto.replace("%", "pct").lower()
            arm["weights_data"] = entry.get("weights_data")
            name = entry.get("name")
            arm["name"] = (name if len(combos) == 1 else f"{name}_{auto}") if name else auto
            arm["overrides"] = list(entry.get("overrides", []))
            if arm["name"] in names:
                raise ValueError(f"arms[{i}]: duplicate arm name {arm['name']!r}")
            names.add(arm["name"])
            arms.append(arm)
    return arms


def _slug(weights: Any) -> str:
    """A short name part for a weights source: the enum member or the file's stem."""
    text = str(weights)
    text = text.split(".", 1)[1] if re.fullmatch(r"\w+_Weights\.\w+", text) else Path(text).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def _record(arm: dict[str, Any], status: str, model: str) -> dict[str, Any]:
    """The study.json entry of an arm before any result is known; ``model`` names its detector."""
    return {
        **{k: arm[k] for k in ("name", "init", "norm", "schedule", "data", "seed")},
        "model": model,
        "status": status,
        "error": None,
        "final": None,
        "curve": [],
        "cost": None,
        **({"weights": arm["weights"], "weights_data": arm["weights_data"]} if arm["weights"] else {}),
        "provenance": arm.get("provenance"),
    }


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
    base: DictConfig, arm: dict[str, Any], init_path: str | None, extra: list[str] | tuple[str, ...] = ()
) -> DictConfig:
    """The detector config of one arm: base + norm, schedule, data regime, seed, init, own overrides,
    then ``extra`` (the command line's, which apply to every arm)."""
    regime = parse_regime(arm["data"])
    overrides = [
        *_norm_overrides(arm["norm"]),
        f"solver.schedule={arm['schedule']}",
        f"data.subset={override_value(regime)}",
        f"seed={arm['seed']}",
        f"model.init={init_path or 'random'}",
    ]
    if arm["init"] == "random":
        overrides.append("model.backbone.freeze_at=0")
    if arm.get("weights_data"):
        overrides.append(f"model.init_data={json.dumps(str(arm['weights_data']))}")
    return apply_overrides(base, [*overrides, *arm["overrides"], *extra])


def _curve(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "bbox/AP" in row:
                rows.append(
                    {"iteration": row["iteration"], "bbox_AP": row["bbox/AP"], "segm_AP": row.get("segm/AP")}
                )
    return rows


def _per_image(gt: Any, run_dir: Path, iteration: int, tasks: tuple[str, ...]) -> dict[str, Any] | None:
    """Per-image evaluation data of the detections a run wrote at ``iteration`` (None if it wrote none):
    what the verdict's bootstrap resamples, kept in study.json so the report can be rebuilt."""
    path = detections_file(run_dir, iteration)
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    tasks = tuple(t for t in tasks if t == "bbox" or all("segmentation" in r for r in results))
    return {t: per_image_eval(gt, results, t) for t in tasks}


class Study:
    """Runs the arms of one study file into ``out`` and keeps ``study.json`` up to date."""

    def __init__(
        self, study_file: str | Path, out: str | Path, overrides: list[str] | tuple[str, ...] = ()
    ) -> None:
        self.file, self.out, self.overrides = Path(study_file), Path(out), list(overrides)
        if not self.file.is_file():
            raise FileNotFoundError(f"{self.file}: no such study file")
        spec = yaml.safe_load(self.file.read_text()) or {}
        if not isinstance(spec, dict) or "arms" not in spec or "base" not in spec:
            raise ValueError(f"{self.file}: a study needs 'base' (a detector config) and 'arms'")
        self.spec = spec
        try:
            self.arms = expand_arms(spec["arms"])
        except ValueError as exc:  # the arm's index alone does not say which file it is in
            raise ValueError(f"{self.file}: {exc}") from exc
        here = self.file.parent
        base = load_config(here / spec["base"], [*spec.get("overrides", []), *self.overrides])
        self.out.mkdir(parents=True, exist_ok=True)
        setup_logging(self.out)
        self.base = resolve_data(base, self.out)  # one dataset for all arms (generated once if none)
        self.pretrain_spec = spec.get("pretrain") or {}
        self.records: dict[str, dict[str, Any]] = {}
        self._gt: Any = None  # the val ground truth, loaded when the first arm finishes
        self.train_images = len(json.loads(Path(self.base.data.train_json).read_text()).get("images", []))
        for arm in self.arms:
            if arm["weights"]:
                arm["weights"] = self._weights_path(arm["weights"])
                arm["provenance"] = self._planned_provenance(arm)

    # -- published weights --------------------------------------------------------------------------
    def _weights_path(self, weights: str) -> str:
        """A relative weights path is read relative to the study file when it exists there."""
        near = self.file.parent / str(weights)
        return (
            str(near.resolve()) if not Path(str(weights)).is_absolute() and near.is_file() else str(weights)
        )

    def _planned_provenance(self, arm: dict[str, Any]) -> dict[str, Any] | None:
        """What the arm's provenance will say (the same function as the run's), so that its label is known
        while it is pending; None when the source cannot be described yet (the arm will fail, saying why)."""
        try:
            prov = describe_init(arm["weights"], {}, arm["weights_data"], self.base.data.train_json)
        except (OSError, ValueError):
            return None
        return {k: prov.get(k) for k in ("label", "source", "sha256", "data", "format")} | {"cost": EXTERNAL}

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

    def pretraining(self, arm: dict[str, Any]) -> tuple[str, Path] | None:
        """The shared pre-training ``arm`` starts from: its name and the file it leaves once done (None for
        a random init). Arms with the same name share one pre-training (a cluster launcher's dependency)."""
        if arm["init"] == "classify":
            name = f"classify_{'gn' if arm['norm'] == 'GN' else 'bn'}"
            return name, self.out / "pretrain" / name / "backbone.pth"
        if arm["init"] == "direct":
            name = f"direct_{arm['norm'].lower()}_{str(arm['data']).replace('%', 'pct').lower()}"
            return name, self.out / "pretrain" / name / "stage1" / "model_final.pth"
        return None

    def run_pretraining(self, arm: dict[str, Any]) -> None:
        """Do (or find done) the shared pre-training ``arm`` starts from."""
        if arm["init"] == "classify":
            self.classify_backbone(arm["norm"])
        elif arm["init"] == "direct":
            self.direct_stage1(arm)

    def arm(self, name: str) -> dict[str, Any]:
        for arm in self.arms:
            if arm["name"] == name:
                return arm
        raise KeyError(f"{self.file}: no arm named {name!r}")

    def classify_backbone(self, norm: str) -> str:
        """One classification pre-training per norm family (GN, or BN for BN/SyncBN/FrozenBN arms)."""
        family = "GN" if norm == "GN" else "BN"
        out = self.out / "pretrain" / f"classify_{family.lower()}"
        if not (out / "backbone.pth").is_file():
            pretrain_classify(self._pretrain_cfg("classify", _norm_overrides(family)), out)
        return str(out / "backbone.pth")

    def direct_stage1(self, arm: dict[str, Any]) -> tuple[str, DictConfig]:
        """Stage 1 of direct pre-training on the arm's data regime (shared by arms with the same regime,
        norm and detector); returns its weights and the stage-2 config to fine-tune with."""
        regime = parse_regime(arm["data"])
        # The arm's detector (model.arch, model.backbone.*, ...) is pre-trained too, under its own key.
        model = [o for o in arm["overrides"] if o.startswith("model.") and not o.startswith("model.init=")]
        cfg = self._pretrain_cfg(
            "direct", [*_norm_overrides(arm["norm"]), f"data.subset={override_value(regime)}", *model]
        )
        key = f"direct_{arm['norm'].lower()}_{str(arm['data']).replace('%', 'pct').lower()}"
        if model:
            key += "_" + re.sub(r"[^a-z0-9]+", "_", model_label(cfg).lower()).strip("_")
        out = self.out / "pretrain" / key
        stage1, stage2 = stage_configs(cfg, out)
        if not (out / "stage1" / "model_final.pth").is_file():
            train(stage1, out / "stage1", resume=True)
        return str(out / "stage1" / "model_final.pth"), stage2

    # -- arms ---------------------------------------------------------------------------------------
    def run_arm(self, arm: dict[str, Any]) -> dict[str, Any]:
        run_dir = self.out / "arms" / arm["name"]
        record = {**_record(arm, "running", self._model(arm)), "run_dir": str(run_dir.relative_to(self.out))}
        final_path = run_dir / "final_metrics.json"
        try:
            base = self.base
            init_path = None
            if arm["init"] == "classify":
                init_path = self.classify_backbone(arm["norm"])
                base = apply_overrides(base, self.pretrain_spec["classify"].get("finetune", []))
            elif arm["init"] == "direct":
                init_path, stage2 = self.direct_stage1(arm)
                base = apply_overrides(base, list(stage2.direct.stage2))
            elif arm["init"] == "weights":
                init_path = arm["weights"]
            cfg = arm_config(base, arm, init_path, self.overrides)
            record.update(max_iter=max_iter(cfg), lr_drops=schedule_steps(cfg))
            if final_path.is_file():
                log.info("arm %s already finished: skipping", arm["name"])
            else:
                log.info("arm %s: training", arm["name"])
                train(cfg, run_dir, resume=True)
            final = json.loads(final_path.read_text())
            record.update(
                status="finished",
                final={k: v for k, v in final.items() if k not in ("cost", "provenance")},
                cost=final.get("cost"),
                provenance=arm_provenance(final) or record["provenance"],
            )
        except NonFiniteLossError as exc:
            record.update(status="diverged", error=str(exc))
            log.warning("arm %s diverged: %s", arm["name"], exc)
        except Exception as exc:  # one failing arm must not stop the study
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            (run_dir / "error.txt").parent.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text(traceback.format_exc())
            log.warning("arm %s failed: %s", arm["name"], record["error"])
        record["curve"] = _curve(run_dir)
        record["data_images"] = self._regime_size(arm)
        if record["status"] == "finished":
            self._add_per_image(record, run_dir)
        return record

    def _add_per_image(self, record: dict[str, Any], run_dir: Path) -> None:
        """Per-image evaluation data of the final model (bbox, segm) and of each curve point (bbox)."""
        if self._gt is None:
            self._gt = load_coco_gt(self.base.data.val_json)
        record["per_image"] = _per_image(self._gt, run_dir, record["final"]["iteration"], ("bbox", "segm"))
        for point in record["curve"]:
            point["per_image"] = _per_image(self._gt, run_dir, point["iteration"], ("bbox",))

    def _model(self, arm: dict[str, Any]) -> str:
        """The detector an arm trains: the base config's, unless its overrides set model.arch or a backbone
        key (``model.arch=cascade_mask_rcnn``, ``model.backbone.name=swin_t``, ...)."""
        try:
            return model_label(apply_overrides(self.base, arm["overrides"]))
        except ValueError as exc:  # a bad override: the arm itself fails with that message when it runs
            return f"? ({exc})"

    def _regime_size(self, arm: dict[str, Any]) -> int | None:
        """How many images the arm's data regime selects (the training set's own rule)."""
        try:
            return len(select_subset(list(range(self.train_images)), parse_regime(arm["data"]), 0))
        except ValueError:  # a regime larger than the set: the arm itself fails with that message
            return None

    def write(self, resamples: int = 0) -> dict[str, Any]:
        """study.json with the verdict so far (``resamples=0`` while arms run: intervals from seeds only;
        the bootstrap runs once at the end)."""
        arms = [self.records.get(a["name"]) or _record(a, "pending", self._model(a)) for a in self.arms]
        study = {
            "name": self.spec.get("name", self.file.stem),
            "overrides": self.overrides,
            "dataset": {"train_json": self.base.data.train_json, "val_json": self.base.data.val_json},
            "arms": arms,
            "verdict": compute_verdict(arms, resamples=resamples),
        }
        write_study(self.out / "study.json", study)
        return study

    def run(self) -> dict[str, Any]:
        self.write()  # every arm pending: study.json shows the plan from the start
        for arm in self.arms:
            # `study --status` reads study.json: the arm training now is running, not pending.
            running = {**_record(arm, "running", self._model(arm)), "run_dir": f"arms/{arm['name']}"}
            self.records[arm["name"]] = running
            self.write()
            self.records[arm["name"]] = self.run_arm(arm)
            self.write()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Once every arm has a record: the verdict with its bootstrap intervals, and the report."""
        study = self.write(RESAMPLES)
        study["report"] = write_report(study, self.out)
        log.info("study report: %s", self.out / "report.html")
        return study


def write_study(path: Path, study: dict[str, Any]) -> None:
    """Write study.json atomically: indented, but each arm's per-image data on one line (it is bulky and
    only read by the bootstrap)."""
    blobs: list[str] = []

    def stash(block: Any) -> Any:
        if block is None:
            return None
        blobs.append(json.dumps(block, separators=(",", ":"), allow_nan=False))
        return f"@per_image_{len(blobs) - 1}@"

    arms = [
        {
            **a,
            "per_image": stash(a.get("per_image")),
            "curve": [{**p, "per_image": stash(p.get("per_image"))} for p in a.get("curve") or []],
        }
        for a in study["arms"]
    ]
    text = json.dumps({**study, "arms": arms}, indent=2, allow_nan=False)
    for i, blob in enumerate(blobs):
        text = text.replace(f'"@per_image_{i}@"', blob, 1)
    write_text(path, text)


def run_study(
    study_file: str | Path, out: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run (or resume) every arm of ``study_file`` into ``out``; write study.json and the report.
    ``overrides`` (``key=value``) apply to every arm and to the shared pre-training, after the study's own."""
    with exclusive_directory(out):  # two studies in one folder would train the same arms at once
        return Study(study_file, out, overrides).run()


def rebuild_report(out: str | Path, resamples: int = RESAMPLES) -> dict[str, Any]:
    """``scratchlab study --report-only DIR``: recompute the verdict (bootstrap included) from the arms
    kept in DIR/study.json, without running any arm, and rewrite study.json and the report."""
    out = Path(out)
    study = load_study(out / "study.json")
    study["verdict"] = compute_verdict(study["arms"], resamples=resamples)
    study.pop("report", None)
    write_study(out / "study.json", study)
    study["report"] = write_report(study, out)
    return study
