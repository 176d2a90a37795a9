"""Turn a study's arms into a verdict: the findings as numbers (``findings.py``), then in English, here
and only here, grouped by the question each answers, under a headline that says which start reached
the best AP, at what total cost, and how sure that is.

Every pre-trained start is held against scratch: classification pre-training, direct pre-training, then
each source of published weights (``init: weights``), named by its provenance label ("pre-training on
ImageNet-1k (torchvision IMAGENET1K_V1)"); their pre-training was paid for elsewhere, so their cost
sentences say it is not counted.

Everything is a pure function of the arm records (the ``arms`` list of ``study.json``, per-image
evaluation data included), so ``scratchlab study --report-only`` rebuilds the same verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..evaluation.bootstrap import BOOTSTRAP_METRICS
from ..run_dir import EXTERNAL
from .evidence import Evidence
from .findings import (
    KINDS,
    Finding,
    catch_up,
    cost,
    decide,
    direct_vs_classify,
    early,
    headline,
    localisation,
    normalisation,
    regime_gap,
)
from .groups import (
    METRICS,
    TASKS,
    UNDECIDED,
    Group,
    finished,
    fmt_ap,
    fmt_count,
    fmt_interval,
    group_arms,
    phrase,
    pretrained_kinds,
    regime_order,
    regime_sizes,
    sched_label,
    validate_arms,
)
from .noise import Calibration
from .paper import paper_check
from .provenance import pretraining_label
from .stats import LEVEL, noise_kind, seed_summary

__all__ = ["compute_verdict", "verdict_lines", "QUESTIONS", "MARGIN", "RESAMPLES"]

MARGIN = 1.0  # AP points: "caught up" means the difference's interval lies above -MARGIN
RESAMPLES = 500
QUESTIONS = (
    ("early", "Does pre-training speed up early training?"),
    ("catch_up", "Does random init catch up given a longer schedule?"),
    ("regime_gap", "Does that change with less data?"),
    ("localisation", "Does random init hold up at strict IoU (AP75 against AP50)?"),
    ("normalisation", "Does scratch training need GN/SyncBN?"),
    ("cost", "What does each start cost, pre-training included?"),
    ("problems", "Arms that did not finish"),
)


# --------------------------------------------------------------------------------------------- prose


NOISE_WORDS = {
    "seeds": "training noise from {seeds} seeds",
    "calibrated": "training noise calibrated (one run: sigma {sigma} AP)",
    "none": "one training run per arm: training noise not included",
}


def _delta(f: Finding) -> str:
    """``+2.3 AP [+0.8, +3.9]`` and where the interval comes from."""
    d = f.values["diff"]
    if f.interval is None:
        return f"{d:+.1f} AP (no interval)"
    basis = " over seeds" if f.basis == "seeds" else ""
    return f"{d:+.1f} AP {fmt_interval(f.interval, signed=True)}{basis}"


def _noise(f: Finding) -> str:
    """Which training noise the finding's interval includes (the words of :data:`NOISE_WORDS`)."""
    if f.noise is None or f.interval is None:
        return ""
    n = f.noise
    sigma = "?" if n.get("sigma") is None else f"{n['sigma']:.1f}"
    return " (" + NOISE_WORDS[n["kind"]].format(seeds=n["seeds"], sigma=sigma) + ")"


def _verdict(f: Finding) -> str:
    p = f.p_adjusted
    adjusted = "" if p is None else f", Holm-adjusted p {'< 0.001' if p < 0.001 else f'{p:.2g}'}"
    return f"{_noise(f)}{adjusted} → {f.outcome}." if f.outcome else f"{_noise(f)}."


def _where(f: Finding, sizes: dict[str, int], many: bool) -> str:
    """Which data regime and task a line speaks of: the regime only when the study has several, the task
    only when it is not bbox."""
    n = f" ({sizes[f.data]} images)" if sizes.get(f.data) else ""
    parts = ([f"data {f.data}{n}"] if many else []) + ([f.task] if many or f.task != "bbox" else [])
    return f"[{', '.join(parts)}] " if parts else ""


def describe(f: Finding) -> str:
    """One finding in English, every number from ``f``."""
    a, b, v = f.a, f.b, f.values
    if f.kind == "early":
        when = (
            f"before the first LR drop at {f.extra['window_end']:g}"
            if f.extra["window_is_lr_drop"]
            else f"in the first half of the run (the LR never drops before {f.extra['window_end']:g})"
        )
        return (
            f"At iteration {f.extra['iteration']:g}, {when}, {a.label()} had {v['a']:.1f} {f.task} AP and "
            f"{b.label()} {v['b']:.1f}: pre-training ahead by {_delta(f)}" + _verdict(f)
        )
    if f.kind == "catch_up":
        return (
            f"{a.label()} reached {v['a']:.1f} {f.task} AP against {v['b']:.1f} for {b.label()}: "
            f"{_delta(f)} (margin {f.extra['margin']:g} AP)" + _verdict(f)
        )
    if f.kind == "regime_gap":
        return f"{a.label()} minus {b.label()}: {_delta(f)} {f.task} ({v['a']:.1f} against {v['b']:.1f})."
    if f.kind == "localisation":
        return (
            f"{a.label()} minus {b.label()} was {v['a']:+.1f} at AP75 and {v['b']:+.1f} at AP50; "
            f"the AP75 gap minus the AP50 gap is {_delta(f)}" + _verdict(f)
        )
    if f.kind == "normalisation":
        if v["a"] is None:
            n = f"{f.extra['n_failed']} of {f.extra['n_arms']} seeds " if f.extra["n_arms"] > 1 else ""
            return (
                f"{a.label()} {n}{', '.join(f.extra['failed_as'])}, while {b.label()} reached "
                f"{v['b']:.1f} bbox AP" + _verdict(f)
            )
        return (
            f"{a.label()} reached {v['a']:.1f} bbox AP against {v['b']:.1f} for {b.label()}: "
            f"{_delta(f)}" + _verdict(f)
        )
    if f.kind == "direct_vs_classify":
        r = f.extra["pixels_ratio"]
        use = f"{1 / r:.1f}x fewer total pixels" if r < 1 else f"{r:.1f}x the total pixels"
        return (
            f"{a.label()} minus {b.label()}: {_delta(f)} bbox ({v['a']:.1f} against {v['b']:.1f}), "
            f"using {use} ({fmt_count(f.extra['direct_pixels'])} against "
            f"{fmt_count(f.extra['classify_pixels'])}), pre-training included" + _verdict(f)
        )
    if f.kind == "cost":
        return f"{_spent(a, v['a'], f.extra, 'a')}; {_spent(b, v['b'], f.extra, 'b')}."
    raise ValueError(f"no wording for a {f.kind!r} finding")


def _spent(g: Group, ap: float, extra: dict[str, Any], side: str) -> str:
    txt = (
        f"{g.label()} reached {ap:.1f} bbox AP after {fmt_count(extra[f'{side}_total_images_seen'])} "
        f"images / {fmt_count(extra[f'{side}_total_pixels_seen'])} pixels seen in total"
    )
    pre = extra.get(f"{side}_pretrain_pixels_seen")
    if pre:
        share = 100 * pre / extra[f"{side}_total_pixels_seen"]
        txt += f" ({share:.0f}% of the pixels in pre-training)"
    if extra.get(f"{side}_pretrain_external"):
        txt += f" (plus its pre-training, {EXTERNAL})"
    return txt


def _problem(a: dict[str, Any]) -> str:
    status = a["status"] if a["status"] != "finished" else "finished without final metrics"
    init = f"weights {pretraining_label(a)}" if a["init"] == "weights" else a["init"]
    desc = f"{init}, {a['norm']}, {sched_label(a['schedule'])}, data {a['data']}, seed {a.get('seed', '?')}"
    err = f": {a['error']}" if a.get("error") else ""
    tail = " (not included in the comparisons)" if a["status"] in UNDECIDED else ""
    return f"Arm '{a['name']}' ({desc}) {status}{err}{tail}."


def _trend(gaps: list[Finding], sizes: dict[str, int]) -> list[str]:
    """Does pre-training's lead grow as data shrinks? Stated from the per-regime gaps, point values."""
    out = []
    for pt_kind in dict.fromkeys(f.a.kind for f in gaps):
        for task in TASKS:
            rows = [f for f in gaps if f.a.kind == pt_kind and f.task == task]
            if len(rows) < 2:
                continue
            parts = "; ".join(f"{f.data} ({sizes[f.data]} images): {_delta(f)}" for f in rows)
            largest = max(rows, key=lambda f: f.values["diff"]) is rows[-1]
            out.append(
                f"Across data regimes ({task}), {phrase(pt_kind)} minus random init was {parts}; "
                f"the lead was {'largest' if largest else 'not largest'} with the least data "
                "(point values)."
            )
    return out


# ------------------------------------------------------------------------------------------ headline


def _headline(f: Finding | None, arms: list[dict[str, Any]], sizes: dict[str, int]) -> str:
    if f is None:
        if arms and not any(a["status"] in UNDECIDED for a in arms):
            return (
                f"No arm finished with bbox AP (all {len(arms)} ended without): there is no answer to give; "
                "the problems below say why."
            )
        return "No arm has finished with bbox AP yet: there is no answer to give."
    best, other = f.a, f.b
    n = f" ({sizes[f.data]} training images)" if sizes.get(f.data) else ""
    total = best.cost("pixels_seen")
    spent = ""
    if total:
        pre = best.cost("pixels_seen", "pretrain") or 0
        share = (
            f"{100 * pre / total:.0f}% of them in pre-training"
            if pre
            else f"plus its pre-training, {EXTERNAL}"
            if best.external_pretraining
            else "no pre-training"
        )
        spent = (
            f", after {fmt_count(best.cost('images_seen'))} images / {fmt_count(total)} pixels seen in "
            f"total ({share})"
        )
    text = (
        f"With data {f.data}{n}, {best.label()} reached the best bbox AP, "
        f"{fmt_ap(f.values['a'], f.extra['a_interval'])}{spent}."
    )
    if other is not None:
        noisy = (f.noise or {}).get("kind") not in (None, "none")
        measured = "these images and training runs" if noisy else "these images (one training run each)"
        sure = (
            f"its lead is beyond the noise of {measured}"
            if f.interval and f.interval[0] > 0
            else f"the two cannot be told apart on {measured}"
            if f.interval
            else "with no interval, how sure that is cannot be said"
        )
        text += (
            f" The best other start, {other.label()}, reached {f.values['b']:.1f}: {_delta(f)}, so {sure}."
        )
    return text


# ------------------------------------------------------------------------------------------- verdict


def _group_record(ev: Evidence, g: Group) -> dict[str, Any]:
    rec: dict[str, Any] = {**g.key(), "n_finished": len(g.finished)}
    for task in TASKS:
        if g.mean(task) is None:
            continue
        rec[task] = {}
        for m in METRICS:
            s = seed_summary(g.values(task, m))
            if s is None:
                continue
            rec[task][m] = s.as_dict()
            if m in BOOTSTRAP_METRICS and (found := ev.group(g, task, m)) is not None:
                iv = found[1].interval()
                rec[task][m]["bootstrap_interval"] = None if iv is None else [round(x, 3) for x in iv]
            stat = ev.statistic([(g, m, 1.0)], task)
            if stat is not None and stat.interval is not None:
                rec[task][m]["noise_interval"] = [round(x, 3) for x in stat.interval]
                rec[task][m]["noise"] = noise_kind(stat.terms)
    rec["total"] = {k: g.cost(k) for k in ("images_seen", "instances_seen", "pixels_seen", "wall_s")}
    return rec


def _findings(ev: Evidence, groups: list[Group], regimes: Sequence[str], margin: float) -> list[Finding]:
    out: list[Finding | None] = []
    for d in regimes:
        rg = [g for g in groups if g.data == d]
        for pt_kind in pretrained_kinds(groups):
            scratch = None
            for task in TASKS:
                out.append(early(ev, rg, pt_kind, task))
                cu = catch_up(ev, rg, pt_kind, task, margin)
                out.append(cu)
                if cu is not None and task == "bbox":
                    scratch = cu.a
                if len(regimes) > 1:
                    out.append(regime_gap(ev, rg, pt_kind, task))
                out.append(localisation(ev, rg, pt_kind, task))
            out.append(cost(ev, rg, pt_kind, scratch))
        out.append(direct_vs_classify(ev, rg))
        out.extend(normalisation(ev, rg))
    return [f for f in out if f is not None]


def compute_verdict(
    arms: list[dict[str, Any]],
    margin: float = MARGIN,
    resamples: int = RESAMPLES,
    seed: int = 0,
    noise: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The verdict of a study's arms.

    Returns ``{"headline", "summary" (the arm count), "questions": [{"key", "title", "lines"}],
    "findings" ({kind: [Finding.as_dict()]}, the headline's among them), "groups", "paper", "bootstrap",
    "data_regimes"}``; :func:`verdict_lines` lists its sentences. Intervals
    are 95%, in AP points: ``resamples`` paired bootstrap resamples of the validation images (seeded by
    ``seed``; 0 resamples: intervals from seeds only) with training noise added (each configuration's
    seeds, else the ``noise`` calibration block of the study; ``noise.py``); the claims are decided
    together, Holm-adjusted. Raises ``ValueError`` naming a malformed arm or noise block.
    """
    validate_arms(arms)
    ev = Evidence(resamples, seed, Calibration.from_block(noise))
    groups = group_arms(arms)
    sizes, regimes = regime_sizes(arms), regime_order(arms)
    found = _findings(ev, groups, regimes, margin)
    decide(found)
    many = len(regimes) > 1
    questions = []
    for key, title in QUESTIONS:
        if key == "problems":
            lines = [_problem(a) for a in arms if not finished(a)]
        else:
            kinds = ("cost", "direct_vs_classify") if key == "cost" else (key,)
            lines = [_where(f, sizes, many) + describe(f) for f in found if f.kind in kinds]
            if key == "regime_gap":
                lines += _trend([f for f in found if f.kind == "regime_gap"], sizes)
        if lines:
            questions.append({"key": key, "title": title, "lines": lines})
    top = headline(ev, groups, regimes)
    findings = {k: [f.as_dict() for f in [top, *found] if f is not None and f.kind == k] for k in KINDS}
    return {
        "headline": _headline(top, arms, sizes),
        "summary": f"{sum(finished(a) for a in arms)} of {len(arms)} arms finished with final metrics.",
        "questions": questions,
        "findings": findings,
        "groups": [_group_record(ev, g) for g in groups],
        "paper": paper_check(findings),
        "bootstrap": {
            "resamples": resamples,
            "seed": seed,
            "level": LEVEL,
            "interval": "bias-corrected percentile, with training noise added (Welch-Satterthwaite t)",
            "noise": noise,
            "adjusted": "holm",
            "margin": margin,
            "arms": ev.arm_intervals(groups, TASKS),
        },
        "data_regimes": [{"data": d, "data_images": sizes[d]} for d in regimes],
    }


def verdict_lines(verdict: dict[str, Any]) -> list[str]:
    """Every sentence of a verdict in order: the arm count, each question's lines, the paper check."""
    lines = [verdict["summary"], *(line for q in verdict["questions"] for line in q["lines"])]
    return lines + [
        f"Paper check: {c['claim']}: {c['result']}"
        + (f" (interval {fmt_interval(c['interval'], signed=True)} AP)." if c["interval"] else ".")
        for c in verdict["paper"]
    ]
