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
from .curve_findings import early, localisation
from .evidence import Evidence
from .findings import (
    KINDS,
    NOT_TESTABLE,
    Finding,
    catch_up,
    catch_up_schedules,
    cost,
    decide,
    headline,
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
from .paper import compared, paper_check, untestable_reason
from .provenance import pretraining_label
from .regime_findings import crossover, data_regime, direct_vs_classify
from .stats import LEVEL, noise_kind, seed_summary

__all__ = ["compute_verdict", "verdict_lines", "QUESTIONS", "MARGIN", "RESAMPLES"]

MARGIN = 1.0  # AP points: "caught up" means the difference's interval lies above -MARGIN
RESAMPLES = 500
QUESTIONS = (
    ("early", "Does pre-training speed up early training (same schedule, before the first LR drop)?"),
    ("catch_up", "Does random init catch up with pre-training at the same long schedule?"),
    ("regime_gap", "Does pre-training's lead grow with less data?"),
    ("localisation", "Does random init localise better (AP75 at matched AP50)?"),
    ("keypoints", "Does random init catch up on keypoint AP at the same schedule?"),
    ("normalisation", "Does scratch training need GN/SyncBN?"),
    ("cost", "What does each start cost, pre-training included?"),
    ("problems", "Arms that did not finish"),
)


# The findings each question lists, where they are more than its own kind.
_QUESTION_KINDS = {
    "cost": ("cost", "direct_vs_classify"),
    "catch_up": ("catch_up", "catch_up_schedules"),
    "regime_gap": ("regime_gap", "data_regime", "crossover"),
}

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
    if f.outcome == NOT_TESTABLE:
        return f"{compared(f.as_dict())}: not testable here: {untestable_reason(f.extra)}."
    words = _WORDS.get(f.kind)
    if words is None:
        raise ValueError(f"no wording for a {f.kind!r} finding")
    return words(f)


def _early(f: Finding) -> str:
    a, b, v, x = f.a, f.b, f.values, f.extra
    when = (
        f"before the first LR drop at {x['window_end']:g}"
        if x["window_is_lr_drop"]
        else f"over the whole run (the LR never drops; it ends at {x['window_end']:g})"
    )
    its = x["iterations"]
    reach = _reach(x)
    return (
        f"Over the {len(its)} evaluations from iteration {its[0]:g} to {its[-1]:g}, {when}, {a.label()} "
        f"averaged {v['a']:.1f} {f.task} AP and {b.label()} {v['b']:.1f}: the window-mean gap "
        f"(pre-trained minus random) is {_delta(f)}{_verdict(f)[:-1]}; {reach}."
    )


def _reach(x: dict[str, Any]) -> str:
    """How long random init took to reach the pre-trained AP at the window's last evaluation."""
    head = f"random init needed {{}} to reach the pre-trained {x['reach_target']:.1f} AP of iteration {x['reach_at']:g}"
    if x["reach_iteration"] is None:
        return head.format("more than its whole run")
    iv = x["reach_interval"]
    if x["reach_basis"] != "images" or iv is None:
        why = (
            "no per-image data along the curves"
            if x["reach_basis"] != "images"
            else "too few resamples reach it"
        )
        return head.format(f"{x['reach_iteration']:.0f} iterations") + f" (a point estimate: {why})"
    high = "not reached within the run" if iv[1] is None else f"{iv[1]:.0f}"
    return head.format(f"{x['reach_iteration']:.0f} iterations [{iv[0]:.0f}, {high}]") + (
        " (interval over the validation images; training noise not included)"
    )


def _catch_up(f: Finding) -> str:
    a, b, v = f.a, f.b, f.values
    return (
        f"At the same {sched_label(f.extra['schedule'])} schedule, {a.label()} reached {v['a']:.1f} {f.task} AP "
        f"against {v['b']:.1f} for {b.label()}: {_delta(f)} (margin {f.extra['margin']:g} AP)" + _verdict(f)
    )


def _catch_up_schedules(f: Finding) -> str:
    a, b, v = f.a, f.b, f.values
    return (
        f"Schedule against schedule (not the paper's equal-schedule test): {a.label()} reached {v['a']:.1f} "
        f"{f.task} AP against {v['b']:.1f} for {b.label()}: {_delta(f)}."
    )


def _localisation(f: Finding) -> str:
    a, b, v, lo, hi = f.a, f.b, f.values, *f.extra["matched_ap50"]
    return (
        f"At matched AP50 ({lo:.1f} to {hi:.1f}, along {f.extra['points'][0]} and {f.extra['points'][1]} "
        f"evaluations), {a.label()} had {v['a']:.1f} AP75 and {b.label()} {v['b']:.1f}: "
        f"random minus pre-trained AP75 at the same AP50 is {_delta(f)}" + _verdict(f)
    )


def _normalisation(f: Finding) -> str:
    a, b, v = f.a, f.b, f.values
    if v["a"] is None:
        n = f"{f.extra['n_failed']} of {f.extra['n_arms']} seeds " if f.extra["n_arms"] > 1 else ""
        return (
            f"{a.label()} {n}{', '.join(f.extra['failed_as'])}, while {b.label()} reached "
            f"{v['b']:.1f} bbox AP" + _verdict(f)
        )
    return (
        f"{a.label()} reached {v['a']:.1f} bbox AP against {v['b']:.1f} for {b.label()}: {_delta(f)}"
        + _verdict(f)
    )


COST_WORDS = {
    "images_seen": ("images", fmt_count),
    "pixels_seen": ("pixels", fmt_count),
    "wall_s": ("wall time", lambda s: f"{s:.0f} s"),
    "peak_memory_mb": ("peak memory", lambda m: f"{m:.0f} MB"),
}


def _direct(f: Finding) -> str:
    name, fmt = COST_WORDS[f.extra["cost"]]
    r = f.extra["ratio"]
    use = f"{1 / r:.1f}x less" if r < 1 else f"{r:.1f}x as much"
    return (
        f"On pre-training {name}: {f.a.label()} minus {f.b.label()}: {_delta(f)} bbox "
        f"({f.values['a']:.1f} against {f.values['b']:.1f}; equal or better within {f.extra['margin']:g} AP), "
        f"using {use} ({fmt(f.extra['direct_cost'])} against {fmt(f.extra['classify_cost'])}; point values)"
        + _verdict(f)
    )


def _data_regime(f: Finding) -> str:
    x, v = f.extra, f.values
    pt_f, rd_f = f.others
    return (
        f"Pre-trained minus random ({f.a.label()} minus {f.b.label()}) was {v['a']:+.1f} {f.task} AP with "
        f"data {x['small']} and {v['b']:+.1f} ({pt_f.label()} minus {rd_f.label()}) with data {x['full']}, "
        f"on the same validation images: the lead grew by {_delta(f)}" + _verdict(f)
    )


def _crossover(f: Finding) -> str:
    x = f.extra
    rows = "; ".join(
        f"{r['data']} ({100 * r['share']:.0f}%): {r['diff']:+.1f} {fmt_interval(r['interval'], signed=True)}"
        for r in x["regimes"]
    )
    if x["share"] is None:
        where = f"random init is not within {x['margin']:g} AP of pre-training even with the most data"
    else:
        below = f", not below it ({x['below']})" if x["below"] else " (at every regime)"
        where = (
            f"random init stays within {x['margin']:g} AP of pre-training down to "
            f"{100 * x['share']:.0f}% of the data{below}"
        )
    return (
        f"Crossover ({f.task}, {f.a.label()} minus {f.b.label()}, each regime's interval unadjusted): "
        f"{where}{_share_interval(x.get('share_interval'))}. Random minus pre-trained by regime: {rows}."
    )


def _share_interval(iv: dict[str, Any] | None) -> str:
    """The crossover share's 95% range over the resamples, open-ended where they leave the studied
    regimes."""
    if not iv:
        return "; the crossover's share has no interval (no per-image data)"
    low, high = iv["interval"]
    if high is None and low is None:
        return (
            f"; on {100 * iv['never_within']:.0f}% of resamples random init is not within the margin "
            "even with the most data"
        )
    lo = f"at or below {100 * low:.0f}%" if iv["open_below"] else f"{100 * low:.0f}%"
    hi = "not within even with the most data" if high is None else f"{100 * high:.0f}%"
    why = []
    if iv["open_below"]:
        why.append(f"{100 * iv['within_everywhere']:.0f}% of resamples stay within at every regime")
    if iv["open_above"]:
        why.append(f"{100 * iv['never_within']:.0f}% are within at none")
    tail = f", open-ended: {' and '.join(why)}" if why else ""
    noise = "training noise included" if iv["noise"] != "none" else "images only: training noise not included"
    return f"; the share where resamples cross ({noise}) lies in [{lo}, {hi}]{tail}"


def _cost(f: Finding) -> str:
    return f"{_spent(f.a, f.values['a'], f.extra, 'a')}; {_spent(f.b, f.values['b'], f.extra, 'b')}."


def _regime_gap(f: Finding) -> str:
    v = f.values
    return f"{f.a.label()} minus {f.b.label()}: {_delta(f)} {f.task} ({v['a']:.1f} against {v['b']:.1f})."


_WORDS = {
    "early": _early,
    "catch_up": _catch_up,
    "keypoints": _catch_up,
    "catch_up_schedules": _catch_up_schedules,
    "regime_gap": _regime_gap,
    "localisation": _localisation,
    "normalisation": _normalisation,
    "direct_vs_classify": _direct,
    "data_regime": _data_regime,
    "crossover": _crossover,
    "cost": _cost,
}


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


def _findings(
    ev: Evidence, groups: list[Group], regimes: Sequence[str], sizes: dict[str, int], margin: float
) -> list[Finding]:
    out: list[Finding | None] = []
    for d in regimes:
        rg = [g for g in groups if g.data == d]
        for pt_kind in pretrained_kinds(groups):
            scratch = None
            for task in ("bbox", "segm"):
                out.append(early(ev, rg, pt_kind, task))
                cu = catch_up(ev, rg, pt_kind, task, margin)
                out += [cu, catch_up_schedules(ev, rg, pt_kind, task)]
                if cu is not None and cu.outcome != NOT_TESTABLE and task == "bbox":
                    scratch = cu.a
                if len(regimes) > 1:
                    out.append(regime_gap(ev, rg, pt_kind, task))
                out.append(localisation(ev, rg, pt_kind, task))
            out.append(catch_up(ev, rg, pt_kind, "keypoints", margin, long_schedule=0.0, kind="keypoints"))
            out.append(cost(ev, rg, pt_kind, scratch))
        out.extend(direct_vs_classify(ev, rg, margin))
        out.extend(normalisation(ev, rg))
    for pt_kind in pretrained_kinds(groups):
        for task in ("bbox", "segm"):
            out.append(data_regime(ev, groups, regimes, pt_kind, task))
            out.append(crossover(ev, groups, regimes, sizes, pt_kind, task, margin))
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
    found = _findings(ev, groups, regimes, sizes, margin)
    decide(found)
    many = len(regimes) > 1
    questions = []
    for key, title in QUESTIONS:
        if key == "problems":
            lines = [_problem(a) for a in arms if not finished(a)]
        else:
            kinds = _QUESTION_KINDS.get(key, (key,))
            lines = [_where(f, sizes, many) + describe(f) for f in found if f.kind in kinds]
            if key == "regime_gap":
                lines += _trend([f for f in found if f.kind == "regime_gap"], sizes)
        if lines:
            questions.append({"key": key, "title": title, "lines": lines})
    top = headline(ev, groups, regimes)
    cross = next((f for f in found if f.kind == "crossover" and f.task == "bbox"), None)
    findings = {k: [f.as_dict() for f in [top, *found] if f is not None and f.kind == k] for k in KINDS}
    return {
        "headline": _headline(top, arms, sizes) + ("" if cross is None else " " + _crossover(cross)),
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
    return lines + [_paper_line(c) for c in verdict["paper"]]


def _paper_line(c: dict[str, Any]) -> str:
    """``Paper check: CLAIM: RESULT (compared: ...; interval ...).``: what decided it, or why nothing could."""
    line = f"Paper check: {c['claim']}: {c['result']}"
    if c.get("reason"):
        return f"{line}: {c['reason']}."
    parts = [f"compared: {c['compared']}"] if c.get("compared") else []
    if c["interval"]:
        parts.append(f"interval {fmt_interval(c['interval'], signed=True)} AP")
    return line + (f" ({'; '.join(parts)})." if parts else ".")
