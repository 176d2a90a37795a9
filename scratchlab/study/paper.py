"""Hold a study's findings against the published claims: one entry per claim with its result, the 95%
interval (AP points) of the difference that decides it, the arms it compares and, in words, what was
compared. Only reads the findings (``Finding.as_dict()`` records); never invents a number.

A claim is judged on bbox AP (keypoint AP for the keypoints claim), with the paper's ImageNet-style
start where such findings exist (classification pre-training, or published weights: ``init:
weights``) and direct pre-training otherwise. Direct against classification pre-training is one claim
per pre-training cost. Several findings (data regimes) give one result: ``reproduced`` / ``not
reproduced`` (``consistent`` / ``inconsistent`` when training noise is not included) when all agree,
``inconclusive`` when none decides, else ``mixed``; findings the study cannot test ("not testable
here") count only when no finding is testable, and the entry's ``reason`` says why. The interval, arms
and comparison shown are those of the first finding that decides (the regime with the most data).
"""

from __future__ import annotations

from typing import Any

from .findings import NOT_TESTABLE
from .groups import phrase, sched_label

__all__ = ["CLAIMS", "COSTS", "paper_check", "compared", "untestable_reason", "NOT_TESTABLE"]

# Pre-training costs, each its own direct-vs-classification claim: (record key, words).
COSTS = (
    ("images_seen", "fewer pre-training images"),
    ("pixels_seen", "fewer pre-training pixels"),
    ("wall_s", "less pre-training wall time"),
    ("peak_memory_mb", "less pre-training peak memory"),
)
_DIRECT = (
    "direct detection pre-training matches or beats classification pre-training with {} (Li et al. 2021)"
)

# claim key -> (finding kind, cost or None, claim as the paper states it)
CLAIMS: dict[str, tuple[str, str | None, str]] = {
    "early": ("early", None, "pre-training speeds up early convergence (He et al. 2019)"),
    "catch_up": (
        "catch_up",
        None,
        "random init catches up with pre-training at the same long schedule (He et al. 2019)",
    ),
    "localisation": (
        "localisation",
        None,
        "random init localises better: higher AP75 at the same AP50 (He et al. 2019)",
    ),
    "normalisation": (
        "normalisation",
        None,
        "scratch training needs GN/SyncBN: BN on small batches falls behind (He et al. 2019)",
    ),
    **{
        f"direct_vs_classify:{key}": ("direct_vs_classify", key, _DIRECT.format(words))
        for key, words in COSTS
    },
    "data_regime": (
        "data_regime",
        None,
        "pre-training's lead grows as training data shrinks (He et al. 2019)",
    ),
    "keypoints": (
        "keypoints",
        None,
        "random init catches up with pre-training on keypoint AP at the same schedule (He et al. 2019)",
    ),
}

# What each kind's statistic is, in words ({task}, {cost}, {small}, {full} from the finding).
_STATISTIC = {
    "headline": "final {task} AP",
    "early": "window-mean {task} AP over the evaluations before the first LR drop, same schedule",
    "catch_up": "final {task} AP at the same schedule",
    "keypoints": "final keypoint AP at the same schedule",
    "catch_up_schedules": "final {task} AP, schedule against schedule",
    "regime_gap": "final {task} AP",
    "localisation": "{task} AP75 at matched AP50 along both curves",
    "normalisation": "final bbox AP",
    "direct_vs_classify": "final bbox AP, and pre-training {cost}",
    "data_regime": "(pre-trained - random) {task} AP with data {small} minus the same with data {full}",
    "crossover": "final {task} AP by data regime",
    "cost": "bbox AP against everything seen",
}
_COST_NAMES = {
    "images_seen": "images",
    "pixels_seen": "pixels",
    "wall_s": "wall time",
    "peak_memory_mb": "peak memory",
}


def _side(group: dict[str, Any] | None) -> str:
    if not group:
        return "?"
    kind = group.get("pretrained_on") if group["init"] == "weights" else group["init"]
    return f"{phrase(str(kind))} ({group['norm']}, {sched_label(group['schedule'])})"


def compared(row: dict[str, Any]) -> str:
    """What a finding compares, in words: ``random init (GN, 3x) - classification pre-training (GN, 3x),
    final bbox AP at the same schedule``."""
    what = _STATISTIC[row["kind"]].format(
        task=row["task"],
        cost=_COST_NAMES.get(row.get("cost"), "cost"),
        small=row.get("small"),
        full=row.get("full"),
    )
    return f"{_side(row['a_group'])} - {_side(row.get('b_group'))}, {what}"


def _schedules(values: list[float]) -> str:
    return ", ".join(sched_label(s) for s in values) or "none"


_REASONS = {
    "no_equal_schedule": lambda x: (
        f"pre-trained at {_schedules(x['pretrained_schedules'])}, random init at "
        f"{_schedules(x['random_schedules'])}: no schedule in common"
    ),
    "no_equal_long_schedule": lambda x: (
        f"pre-trained at {_schedules(x['pretrained_schedules'])}, random init at "
        f"{_schedules(x['random_schedules'])}: they share no schedule of {x['long_schedule']:g}x or longer, "
        "where the paper compares them (its Table 1: 2x to 6x, the same schedule each)"
    ),
    "no_equal_schedule_curves": lambda x: (
        "no schedule at which both starts were evaluated during training (curves: pre-trained at "
        f"{_schedules(x['pretrained_curves'])}, random init at {_schedules(x['random_curves'])}; an arm "
        "with eval.period=0 has only its final evaluation)"
    ),
    "too_few_early_evaluations": lambda x: (
        f"at {sched_label(x['schedule'])} the two were evaluated together {x['evaluations']} time(s) up to "
        f"iteration {x['window_end']:g} (the first LR drop), a curve needs {x['needed']}"
    ),
    "curves_never_meet": lambda x: (
        f"their AP50 ranges never overlap (random init {x['a_ap50'][0]:.1f} to {x['a_ap50'][1]:.1f} over "
        f"{x['points'][0]} evaluation(s), pre-trained {x['b_ap50'][0]:.1f} to {x['b_ap50'][1]:.1f} over "
        f"{x['points'][1]}), so AP75 cannot be read at a matched AP50"
    ),
    "no_pretraining_cost": lambda x: "neither record has a pre-training cost to compare",
    "no_classify_at_schedule": lambda x: (
        f"no classification-pre-trained arm fine-tuned at the direct arm's schedule "
        f"({sched_label(x['schedule'])}): the two starts are compared at the same fine-tuning length"
    ),
}


def untestable_reason(extra: dict[str, Any]) -> str:
    """Why a finding could not be tested, in words, from its ``untestable`` code and numbers."""
    return _REASONS[extra["untestable"]](extra)


def _rows(findings: dict[str, list[dict[str, Any]]], kind: str, cost: str | None) -> list[dict[str, Any]]:
    task = "keypoints" if kind == "keypoints" else "bbox"
    rows = [r for r in findings.get(kind, []) if r["task"] == task]
    if cost is not None:
        rows = [r for r in rows if r.get("cost") in (cost, None)]
    classify = [
        r for r in rows if {"classify", "weights"} & {r["a_group"]["init"], (r["b_group"] or {}).get("init")}
    ]
    return classify if kind != "normalisation" and classify else rows


def _result(outcomes: list[str]) -> str:
    if not outcomes:
        return "not tested"
    testable = [o for o in outcomes if o != NOT_TESTABLE] or outcomes
    if len(set(testable)) == 1:
        return testable[0]
    return "mixed" if set(testable) - {"inconclusive"} else "inconclusive"


def _noise(row: dict[str, Any]) -> dict[str, Any]:
    """The training noise the deciding finding's interval includes (none when there is no finding)."""
    noise = row.get("noise") or {}
    return {"kind": noise.get("kind", "none"), "seeds": noise.get("seeds", 0), "sigma": noise.get("sigma")}


def paper_check(findings: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``[{"claim", "result", "interval", "arms", "noise", "adjusted", "compared", "reason"}]``, one per
    claim of ``CLAIMS``, in that order: ``noise`` = {kind: seeds | calibrated | none, seeds, sigma} of
    the deciding finding, ``adjusted`` the multiplicity adjustment of the outcomes (Holm, across the
    study's claims), ``compared`` what the deciding finding compares (None without one), ``reason`` why
    the claim is not testable here (None otherwise)."""
    out = []
    for kind, cost, claim in CLAIMS.values():
        rows = _rows(findings, kind, cost)
        testable = [r for r in rows if r["outcome"] != NOT_TESTABLE]
        first = (testable or rows or [{}])[0]
        result = _result([r["outcome"] for r in rows])
        out.append(
            {
                "claim": claim,
                "result": result,
                "interval": first.get("interval"),
                "arms": first.get("arms", []),
                "noise": _noise(first),
                "adjusted": "holm",
                "compared": compared(first) if first else None,
                "reason": untestable_reason(first) if result == NOT_TESTABLE else None,
            }
        )
    return out
