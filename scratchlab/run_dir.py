"""The run directory's contract: every file name a run writes, and the readers of what it wrote.

A detector run (``scratchlab train``, each study arm, each stage of direct pre-training)::

    config.yaml            the merged config the run trained with (data resolved, scaled to its world)
    log.txt                the console log
    metrics.jsonl          one row per log period and evaluation (``iteration``, losses, ``bbox/AP``, ...)
    checkpoints/last.pth   the training state (+ previous.pth), with config and categories
    checkpoints/branch_<iteration>.pth   the state kept at an arm's branch point (a study's shared trunk)
    forked.json            a study arm forked from a trunk: {"from", "iteration", "wall_s"} of the branch
    model_final.pth        {"model", "iteration", "config", "classes", "category_ids"}
    final_metrics.json     {"iteration", "bbox", "segm" | "keypoints", "train_images", "cost", "provenance"}
    inference/detections_<iteration>.json   the val detections of each evaluation
    plots/                 loss, AP and LR curves
    error.txt              a study arm's traceback when it failed

A classification pre-training (``scratchlab pretrain classify``) writes ``backbone.pth`` and
``pretrain_meta.json`` (its data, classes and cost) beside ``config.yaml`` and ``checkpoints/``; direct
pre-training writes ``stage1/`` and ``stage2/`` runs and a ``final_metrics.json`` of both.

A study directory (``scratchlab study``)::

    study.json             the arms' records and the verdict
    arms/<name>/           each arm's run          pretrain/<name>/   each shared pre-training
    report.md, report.html, figures/                noise.yaml (``study --calibrate-noise``)

This module imports no torch and nothing of scratchlab: every layer reads runs through it (the study
layer without loading torch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CONFIG",
    "LOG",
    "METRICS",
    "CHECKPOINTS",
    "LAST",
    "PREVIOUS",
    "MODEL_FINAL",
    "FINAL_METRICS",
    "PLOTS",
    "ERROR",
    "BACKBONE",
    "PRETRAIN_META",
    "STAGE1",
    "STAGE2",
    "EXTERNAL",
    "STUDY",
    "ARMS",
    "PRETRAIN",
    "REPORT_MD",
    "REPORT_HTML",
    "FIGURES",
    "NOISE",
    "FORKED",
    "detections_file",
    "branch_checkpoint",
    "branch_checkpoints",
    "read_forked",
    "is_finished",
    "read_json",
    "read_final_metrics",
    "read_config",
    "read_metrics",
    "curve",
    "origin_of",
    "written_by_scratchlab",
]

CONFIG = "config.yaml"
LOG = "log.txt"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LAST, PREVIOUS = "last.pth", "previous.pth"
MODEL_FINAL = "model_final.pth"
FINAL_METRICS = "final_metrics.json"
PLOTS = "plots"
ERROR = "error.txt"
BACKBONE = "backbone.pth"
PRETRAIN_META = "pretrain_meta.json"
STAGE1, STAGE2 = "stage1", "stage2"
FORKED = "forked.json"
# A provenance's cost for published weights: paid for elsewhere (the paper's point is that this cost is
# usually left out).
EXTERNAL = "not counted: external"

STUDY, ARMS, PRETRAIN = "study.json", "arms", "pretrain"
REPORT_MD, REPORT_HTML, FIGURES = "report.md", "report.html", "figures"
NOISE = "noise.yaml"
JOBS, QUEUE = "jobs", "queue.json"  # a cluster launcher's job folders; the Slurm states it last saw


def detections_file(run: Path, iteration: int) -> Path:
    """Where a run keeps the val detections of its evaluation at ``iteration`` (for bootstraps later)."""
    return Path(run) / "inference" / f"detections_{iteration:07d}.json"


def branch_checkpoint(run: Path, iteration: int) -> Path:
    """The training state ``run`` keeps at ``iteration`` for the arms that fork from it there."""
    return Path(run) / CHECKPOINTS / f"branch_{iteration:07d}.pth"


def branch_checkpoints(run: Path) -> list[Path]:
    """Every branch checkpoint ``run`` keeps (a run starting over discards them with its others)."""
    return sorted((Path(run) / CHECKPOINTS).glob("branch_*.pth"))


def read_forked(run: Path) -> dict[str, Any] | None:
    """``forked.json`` of a study arm that continued another arm's trunk (None for one that ran alone)."""
    path = Path(run) / FORKED
    return read_json(path) if path.is_file() else None


def is_finished(run: Path) -> bool:
    """The run wrote its final metrics (its last step: everything else is on disk before it)."""
    return (Path(run) / FINAL_METRICS).is_file()


def read_json(path: Path) -> Any:
    """A JSON file of a run, or a ValueError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def read_final_metrics(run: Path) -> dict[str, Any] | None:
    """``final_metrics.json`` of ``run`` (None while it has not finished)."""
    return read_json(Path(run) / FINAL_METRICS) if is_finished(run) else None


def read_config(run: Path) -> dict[str, Any] | None:
    """The config ``run`` trained with, as plain data (None before it started)."""
    path = Path(run) / CONFIG
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else None


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl``; a line torn by a kill is skipped."""
    path = Path(run) / METRICS
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def curve(run: Path) -> list[dict[str, Any]]:
    """AP against iteration: ``{"iteration", "bbox_AP", "segm_AP", ...}`` for every evaluation row, with
    AP50 and AP75 (the localisation claim reads them along the curve) and keypoint AP where logged."""
    more = [f"{t}/{m}" for t in ("bbox", "segm", "keypoints") for m in CURVE_METRICS]
    return [
        {
            "iteration": r["iteration"],
            "bbox_AP": r["bbox/AP"],
            "segm_AP": r.get("segm/AP"),
            **{k.replace("/", "_"): r[k] for k in more if k in r},
        }
        for r in read_metrics(run)
        if "bbox/AP" in r
    ]


CURVE_METRICS = ("AP", "AP50", "AP75")


def origin_of(weights: Path, train_json: str | None) -> tuple[str, str] | None:
    """(data, how it was made) of a weights file scratchlab wrote, read from the files beside it; None for
    a file that is not a scratchlab output. A detector trained on ``train_json`` says "the target set"."""
    here = Path(weights).parent
    if (here / PRETRAIN_META).is_file():
        m = read_json(here / PRETRAIN_META)
        data = m.get("data") or f"{m.get('data_root', '?')} ({m.get('classes', '?')} classes)"
        return data, "scratchlab pretrain classify"
    config = read_config(here)
    if is_finished(here) and config is not None:
        trained_on = (config.get("data") or {}).get("train_json")
        made = f"scratchlab detector {here.name}"
        if trained_on and train_json and Path(trained_on).resolve() == Path(train_json).resolve():
            return "the target set", made
        return f"detection on {trained_on}", made
    return None


def written_by_scratchlab(weights: Path) -> bool:
    """A ``pretrain classify`` backbone or a detector run's weights: the files beside it say so."""
    here = Path(weights).parent
    return (here / PRETRAIN_META).is_file() or is_finished(here)
