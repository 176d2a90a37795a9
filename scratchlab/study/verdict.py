"""Turn a study's arms into a verdict: plain-English sentences plus the numbers behind each one.

The questions are those of He, Girshick & Dollar, "Rethinking ImageNet Pre-training" (ICCV 2019) and of
direct detection pre-training (Li, Zhang & Zhang 2021): does pre-training speed up early convergence, does
random init catch up given a longer schedule, does that break down with little data, does scratch hold up
at AP75, what does each arm cost counting pre-training, and does a poorly normalised scratch arm fail.

Everything here is a pure function of the arm records (the ``arms`` list of ``study.json``); a sentence is
only written when the arms it needs exist, and every number in it is taken from them.

Conventions:
* Arms with the same (data, init, norm, schedule, weights) but different seeds form one *group*; a
  group's value is the mean over its finished seeds, with the sample std as its spread. A difference
  between two groups is *inconclusive* when it is no larger than the sum of their stds (only possible
  with several seeds). Published weights (init "weights") are compared source by source, each named
  by its provenance label.
* Random-init arms are compared against pre-trained ones using only well-normalised random arms (GN or
  SyncBN) where any exist, because the paper's claim is about GN/SyncBN scratch training; BN/FrozenBN
  scratch arms are judged separately in the normalisation finding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.cost import EXTERNAL
from .provenance import external_cost, pretraining_label

__all__ = [
    "compute_verdict",
    "validate_arms",
    "group_arms",
    "fmt_count",
    "Group",
    "INITS",
    "TASKS",
    "METRICS",
]

# "weights": published weights (``weights: NAME_OR_PATH``); each source is compared as its own kind.
INITS = ("random", "classify", "direct", "weights")
PRETRAINED = ("classify", "direct")
STATUSES = ("finished", "failed", "diverged", "pending", "running")
TASKS = ("bbox", "segm")
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
WELL_NORMED = {"gn", "syncbn"}
POORLY_NORMED = {"bn", "frozenbn"}
INIT_PHRASE = {
    "random": "random init",
    "classify": "classification pre-training",
    "direct": "direct detection pre-training",
}

_REQUIRED = ("name", "init", "norm", "schedule", "data", "status")

Stat = dict[str, Any]  # {"mean": float, "std": float | None, "n": int}


def _phrase(kind: str) -> str:
    """A pre-training kind in a sentence; published weights are named by their provenance label."""
    return INIT_PHRASE.get(kind, f"pre-training on {kind}")


def validate_arms(arms: Sequence[dict[str, Any]]) -> None:
    """Raise ``ValueError`` naming the arm (index and name) for a record the verdict cannot use."""
    if not isinstance(arms, Sequence) or isinstance(arms, (str, bytes)):
        raise ValueError(f"arms must be a list of arm records, got {type(arms).__name__}")
    for i, arm in enumerate(arms):
        if not isinstance(arm, dict):
            raise ValueError(f"arm #{i}: must be a mapping, got {type(arm).__name__}")
        where = f"arm #{i} ({arm.get('name', '?')!r})"
        missing = [k for k in _REQUIRED if k not in arm]
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
        if arm["init"] not in INITS:
            raise ValueError(f"{where}: init must be one of {INITS}, got {arm['init']!r}")
        if arm["status"] not in STATUSES:
            raise ValueError(f"{where}: status must be one of {STATUSES}, got {arm['status']!r}")
        if not isinstance(arm["schedule"], (int, float)) or arm["schedule"] <= 0:
            raise ValueError(f"{where}: schedule must be a positive number, got {arm['schedule']!r}")
        final = arm.get("final")
        if final is not None and not isinstance(final, dict):
            raise ValueError(f"{where}: final must be null or a mapping")
        for task in TASKS:
            if final and final.get(task) is not None and not isinstance(final[task], dict):
                raise ValueError(f"{where}: final.{task} must be a mapping of metric -> AP")
        curve = arm.get("curve") or []
        if not isinstance(curve, list) or any(not isinstance(p, dict) or "iteration" not in p for p in curve):
            raise ValueError(f"{where}: curve must be a list of {{'iteration': ..., ...}} points")


@dataclass
class Group:
    """Arms sharing (data, init, norm, schedule): the seeds of one configuration."""

    data: str
    init: str
    norm: str
    schedule: float
    arms: list[dict[str, Any]]
    weights: str | None = None

    @property
    def kind(self) -> str:
        """``init``, except that published weights are told apart by what they are (their label)."""
        return pretraining_label(self.arms[0]) if self.init == "weights" else self.init

    @property
    def finished(self) -> list[dict[str, Any]]:
        """Arms that finished and have final metrics: the only ones whose AP counts."""
        return [a for a in self.arms if a["status"] == "finished" and a.get("final")]

    def stat(self, task: str, metric: str = "AP") -> Stat | None:
        """Mean/std over finished seeds of ``final[task][metric]``; None if no seed has it."""
        vals = [(a["final"].get(task) or {}).get(metric) for a in self.finished]
        return _stat([v for v in vals if v is not None])

    def cost(self, key: str, part: str = "total") -> float | None:
        """Mean over finished seeds of ``cost[part][key]``; None unless every finished seed has it."""
        vals = [((a.get("cost") or {}).get(part) or {}).get(key) for a in self.finished]
        if not vals or any(v is None for v in vals):
            return None
        return float(np.mean(vals))

    def label(self) -> str:
        """Short human label, e.g. ``random init (GN, 2x, 3 seeds)``."""
        n = len(self.finished)
        seeds = f", {n} seeds" if n > 1 else ""
        name = _phrase(self.kind)
        data = (self.arms[0].get("provenance") or {}).get("data")
        if self.init in PRETRAINED and data:  # e.g. "classification pre-training on generated shapes, 8 classes"
            name += f" on {data}"
        return f"{name} ({self.norm}, {_sched(self.schedule)}{seeds})"

    def key(self) -> dict[str, Any]:
        """Machine-readable identity of the group."""
        return {
            "data": self.data,
            "init": self.init,
            "pretrained_on": pretraining_label(self.arms[0]),
            "norm": self.norm,
            "schedule": self.schedule,
            "arms": [a["name"] for a in self.arms],
        }


def _pretrained_kinds(groups: Sequence[Group]) -> list[str]:
    """classify, direct, then each source of published weights in the order the study lists them."""
    return [*PRETRAINED, *dict.fromkeys(g.kind for g in groups if g.init == "weights")]


def group_arms(arms: Iterable[dict[str, Any]]) -> list[Group]:
    """Group arms by (data, init, norm, schedule, weights), keeping first-seen order."""
    groups: dict[tuple[Any, ...], Group] = {}
    for a in arms:
        k = (a["data"], a["init"], a["norm"], float(a["schedule"]), a.get("weights"))
        if k not in groups:
            groups[k] = Group(a["data"], a["init"], a["norm"], float(a["schedule"]), [], a.get("weights"))
        groups[k].arms.append(a)
    return list(groups.values())


# ---------------------------------------------------------------------------------------------- helpers


def _stat(vals: Sequence[float]) -> Stat | None:
    if not vals:
        return None
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
    return {
        "mean": round(float(np.mean(vals)), 4),
        "std": None if std is None else round(std, 4),
        "n": len(vals),
    }


def _fmt(s: Stat) -> str:
    return f"{s['mean']:.1f} ± {s['std']:.1f}" if s["n"] > 1 else f"{s['mean']:.1f}"


def _sched(s: float) -> str:
    return f"{s:g}x"


def fmt_count(n: float | None) -> str:
    """``1234567`` -> ``1.2M``: counts of images/pixels with one decimal."""
    if n is None:
        return "n/a"
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _compare(a: Stat, b: Stat) -> dict[str, Any]:
    """a - b, and whether that is within the seeds' spread (sum of the two stds)."""
    diff = a["mean"] - b["mean"]
    seeded = a["n"] > 1 or b["n"] > 1
    spread = (a["std"] or 0.0) + (b["std"] or 0.0) if seeded else None
    return {
        "diff": round(diff, 4),
        "spread": None if spread is None else round(spread, 4),
        "inconclusive": bool(seeded and abs(diff) <= spread),
    }


def _lead(pt_init: str, cmp: dict[str, Any], pt_txt: str, rd_txt: str, what: str) -> str:
    """Sentence fragment for a comparison whose ``diff`` is pre-trained minus random."""
    p, d = _phrase(pt_init), cmp["diff"]
    if cmp["inconclusive"]:
        return (
            f"{p} and random init differed by {abs(d):.1f} {what} ({pt_txt} vs {rd_txt}), within the "
            f"seed spread of {cmp['spread']:.1f}: inconclusive"
        )
    if abs(d) < 0.05:
        return f"{p} and random init were level ({pt_txt} vs {rd_txt} {what})"
    if d > 0:
        return f"{p} led random init by {d:.1f} {what} ({pt_txt} vs {rd_txt})"
    return f"random init led {p} by {-d:.1f} {what} ({rd_txt} vs {pt_txt})"


def _regime_phrase(label: str, n_images: int | None) -> str:
    imgs = f" ({n_images} images)" if n_images else ""
    if str(label).endswith("%"):
        return f"With {label} of the data{imgs}"
    return f"With data '{label}'{imgs}"


def _best(groups: Iterable[Group], task: str) -> Group | None:
    """The group with the highest mean final AP on ``task`` (None if none has it)."""
    cands = [g for g in groups if g.stat(task) is not None]
    return max(cands, key=lambda g: g.stat(task)["mean"]) if cands else None


def _reference_random(groups: Sequence[Group]) -> list[Group]:
    """Random-init groups that speak for scratch training: well-normalised ones where any exist."""
    rand = [g for g in groups if g.init == "random"]
    good = [g for g in rand if g.norm.lower() in WELL_NORMED]
    return good or rand


def _random_by_schedule(groups: Sequence[Group], task: str) -> list[Group]:
    """Per schedule, the best reference random group with ``task`` AP; sorted by schedule."""
    by: dict[float, Group] = {}
    for g in _reference_random(groups):
        s = g.stat(task)
        if s is not None and (g.schedule not in by or s["mean"] > by[g.schedule].stat(task)["mean"]):
            by[g.schedule] = g
    return [by[k] for k in sorted(by)]


def _curve(arm: dict[str, Any], task: str) -> tuple[np.ndarray, np.ndarray] | None:
    pts = sorted((p["iteration"], p.get(f"{task}_AP")) for p in arm.get("curve") or [])
    pts = [(i, v) for i, v in pts if v is not None]
    if not pts:
        return None
    return np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)


def _first_drop(arm: dict[str, Any]) -> tuple[float, bool]:
    """End of the 'early' window and whether it is an LR drop (else half the run: the LR never drops)."""
    drops = arm.get("lr_drops") or []
    if drops:
        return float(min(drops)), True
    last = arm.get("max_iter") or max((p["iteration"] for p in arm.get("curve") or []), default=0)
    return float(last // 2), False


# --------------------------------------------------------------------------------------------- findings


def _early(rg: Sequence[Group], pt_init: str, task: str, regime: str) -> tuple[dict, str] | None:
    """Who is ahead at matching iterations before the first LR drop (curves interpolated)."""

    def has_curve(g: Group) -> bool:
        return any(_curve(a, task) is not None for a in g.finished)

    pt = _best([g for g in rg if g.kind == pt_init and has_curve(g)], task)
    rands = [g for g in _reference_random(rg) if has_curve(g)]
    if pt is None or not rands:
        return None
    # The longest random schedule has the longest stretch at base LR before its first drop.
    rd = max(rands, key=lambda g: (g.schedule, (g.stat(task) or {"mean": -1})["mean"]))
    arms = [(who, a, _curve(a, task)) for who, g in (("pt", pt), ("rd", rd)) for a in g.finished]
    arms = [(who, a, c) for who, a, c in arms if c is not None]
    end, is_drop = min(_first_drop(a) for _, a, _ in arms)
    lo = max(c[0][0] for _, _, c in arms)  # interpolate only inside every curve, never extrapolate
    hi = min(end, min(c[0][-1] for _, _, c in arms))
    its = sorted({float(i) for _, _, c in arms for i in c[0] if lo <= i <= hi})
    if not its:
        return None
    points = []
    for it in its:
        vals: dict[str, list[float]] = {"pt": [], "rd": []}
        interpolated = False
        for who, _, (x, y) in arms:
            vals[who].append(float(np.interp(it, x, y)))
            interpolated |= it not in x
        p, r = _stat(vals["pt"]), _stat(vals["rd"])
        points.append(
            {"iteration": it, "pretrained": p, "random": r, "interpolated": interpolated, **_compare(p, r)}
        )
    clauses = []
    for pnt in [points[0]] + ([points[-1]] if len(points) > 1 else []):
        clauses.append(
            f"at iteration {pnt['iteration']:g}, "
            + _lead(pt_init, pnt, _fmt(pnt["pretrained"]), _fmt(pnt["random"]), f"{task} AP")
        )
    note = " (values interpolated between evaluations)" if any(p["interpolated"] for p in points) else ""
    line = (
        f"Early convergence [{regime}, {task}; {pt.label()} vs {rd.label()}, "
        + (
            f"before the first LR drop at iteration {end:g}"
            if is_drop
            else f"up to iteration {end:g}, half the run, as the LR never drops"
        )
        + "]: "
        + "; ".join(clauses)
        + note
        + "."
    )
    finding = {
        "data": pt.data,
        "init": pt_init,
        "task": task,
        "pretrained": pt.key(),
        "random": rd.key(),
        "window_end": end,
        "window_is_lr_drop": is_drop,
        "points": points,
    }
    return finding, line


def _catch_up(
    rg: Sequence[Group], pt_init: str, task: str, regime: str, tol: float
) -> tuple[dict, str, Group] | None:
    """Shortest random schedule whose AP is within ``tol`` of the best pre-trained AP."""
    pt = _best([g for g in rg if g.kind == pt_init], task)
    series = _random_by_schedule(rg, task)
    if pt is None or not series:
        return None
    ps = pt.stat(task)
    hit = next((g for g in series if g.stat(task)["mean"] >= ps["mean"] - tol), None)
    rd = hit or series[-1]
    rs = rd.stat(task)
    cmp = _compare(rs, ps)
    ref = f"the {_phrase(pt_init)} {task} AP ({_fmt(ps)} at {_sched(pt.schedule)})"
    if hit:
        how = "and exceeded it" if cmp["diff"] > 0 else f"within {tol:.1f} AP"
        line = f"{regime}, random init reached {ref} {how} at {_sched(rd.schedule)} ({_fmt(rs)})."
    else:
        line = (
            f"{regime}, random init never caught up with {ref}: at its longest schedule, "
            f"{_sched(rd.schedule)}, it was {-cmp['diff']:.1f} AP behind ({_fmt(rs)})."
        )
    if cmp["inconclusive"]:
        line = (
            line[:-1] + f"; the {abs(cmp['diff']):.1f} AP difference is within the seed spread of "
            f"{cmp['spread']:.1f}: inconclusive."
        )
    finding = {
        "data": pt.data,
        "init": pt_init,
        "task": task,
        "tol": tol,
        "caught_up": hit is not None,
        "schedule": rd.schedule,
        "random": rs,
        "pretrained": ps,
        "pretrained_schedule": pt.schedule,
        "random_group": rd.key(),
        "pretrained_group": pt.key(),
        **cmp,
    }
    return finding, line, rd


def _gap(rg: Sequence[Group], pt_init: str, task: str, regime: str) -> tuple[dict, str] | None:
    """Best pre-trained vs best random final AP at one data regime."""
    pt, rd = _best([g for g in rg if g.kind == pt_init], task), _best(_reference_random(rg), task)
    if pt is None or rd is None:
        return None
    ps, rs = pt.stat(task), rd.stat(task)
    cmp = _compare(ps, rs)
    line = (
        f"{regime}, "
        + _lead(
            pt_init,
            cmp,
            f"{_fmt(ps)} at {_sched(pt.schedule)}",
            f"{_fmt(rs)} at {_sched(rd.schedule)}",
            f"{task} AP",
        )
        + "."
    )
    finding = {
        "data": pt.data,
        "init": pt_init,
        "task": task,
        "pretrained": ps,
        "random": rs,
        "pretrained_group": pt.key(),
        "random_group": rd.key(),
        **cmp,
    }
    return finding, line


def _localisation(rg: Sequence[Group], pt_init: str, task: str, regime: str) -> tuple[dict, str] | None:
    """Random-minus-pretrained gap at AP75 vs AP50: does scratch hold up better at strict IoU?"""
    pt, rd = _best([g for g in rg if g.kind == pt_init], task), _best(_reference_random(rg), task)
    if pt is None or rd is None:
        return None
    s = {(who, m): g.stat(task, m) for who, g in (("pt", pt), ("rd", rd)) for m in ("AP50", "AP75")}
    if any(v is None for v in s.values()):
        return None
    g50, g75 = _compare(s["rd", "AP50"], s["pt", "AP50"]), _compare(s["rd", "AP75"], s["pt", "AP75"])
    better = g75["diff"] - g50["diff"]
    seeded = any(v["n"] > 1 for v in s.values())
    spread = sum(v["std"] or 0.0 for v in s.values()) if seeded else None
    inconclusive = bool(seeded and abs(better) <= spread)
    if inconclusive:
        verdict = f"the difference ({better:.1f}) is within the seed spread of {spread:.1f}: inconclusive"
    elif better > 0:
        verdict = "random init held up better at AP75 than at AP50"
    else:
        verdict = "random init did not hold up better at AP75 than at AP50"
    line = (
        f"Localisation [{regime}, {task}; {rd.label()} vs {pt.label()}]: random init minus "
        f"{_phrase(pt_init)} was {g75['diff']:+.1f} at AP75 ({_fmt(s['rd', 'AP75'])} vs "
        f"{_fmt(s['pt', 'AP75'])}) and {g50['diff']:+.1f} at AP50 ({_fmt(s['rd', 'AP50'])} vs "
        f"{_fmt(s['pt', 'AP50'])}), so {verdict}."
    )
    finding = {
        "data": pt.data,
        "init": pt_init,
        "task": task,
        "gap_AP50": g50,
        "gap_AP75": g75,
        "ap75_minus_ap50_gap": round(better, 4),
        "spread": spread,
        "inconclusive": inconclusive,
        "scratch_better_at_AP75": (not inconclusive) and better > 0,
        "pretrained_group": pt.key(),
        "random_group": rd.key(),
    }
    return finding, line


def _cost_clause(g: Group) -> str:
    ap = g.stat("bbox")
    txt = (
        f"{g.label()} reached {_fmt(ap)} bbox AP after {fmt_count(g.cost('images_seen'))} images / "
        f"{fmt_count(g.cost('pixels_seen'))} pixels seen in total"
    )
    if g.cost("images_seen", "pretrain") is not None:
        txt += (
            f" ({fmt_count(g.cost('images_seen', 'pretrain'))} images / "
            f"{fmt_count(g.cost('pixels_seen', 'pretrain'))} pixels of them in pre-training)"
        )
    if all(external_cost(a) for a in g.finished):
        txt += f" (plus its pre-training, {EXTERNAL})"
    return txt


def _cost(rg: Sequence[Group], pt_init: str, regime: str, rd: Group | None) -> tuple[dict, str] | None:
    """AP against everything seen, pre-training included, for the best pre-trained arm vs scratch."""
    pt = _best([g for g in rg if g.kind == pt_init], "bbox")
    rd = rd or _best(_reference_random(rg), "bbox")
    if (
        pt is None
        or rd is None
        or any(g.cost(k) is None for g in (pt, rd) for k in ("images_seen", "pixels_seen"))
    ):
        return None
    line = f"Compute [{regime}]: {_cost_clause(pt)}; {_cost_clause(rd)}."
    finding = {
        "data": pt.data,
        "init": pt_init,
        "pretrained_group": pt.key(),
        "random_group": rd.key(),
        **{
            f"{who}_{k}": g.cost(k)
            for who, g in (("pretrained", pt), ("random", rd))
            for k in ("images_seen", "pixels_seen")
        },
    }
    return finding, line


def _direct_vs_classify(rg: Sequence[Group], regime: str) -> tuple[dict, str] | None:
    """Li et al.'s claim: direct pre-training gives better AP at lower total cost than classification."""
    d, c = (
        _best([g for g in rg if g.init == "direct"], "bbox"),
        _best([g for g in rg if g.init == "classify"], "bbox"),
    )
    if d is None or c is None or any(g.cost("pixels_seen") is None for g in (d, c)):
        return None
    ds, cs = d.stat("bbox"), c.stat("bbox")
    cmp = _compare(ds, cs)
    if not d.cost("pixels_seen") or not c.cost("pixels_seen"):
        return None
    ratio = d.cost("pixels_seen") / c.cost("pixels_seen")
    if cmp["inconclusive"]:
        ap_txt = f"the same bbox AP within the seed spread ({_fmt(ds)} vs {_fmt(cs)}: inconclusive)"
    else:
        ap_txt = f"{abs(cmp['diff']):.1f} {'higher' if cmp['diff'] >= 0 else 'lower'} bbox AP ({_fmt(ds)} vs {_fmt(cs)})"
    use = f"{1 / ratio:.1f}x fewer total pixels" if ratio < 1 else f"{ratio:.1f}x its total pixels"
    line = (
        f"Direct vs classification pre-training [{regime}]: {d.label()} reached {ap_txt} than "
        f"{c.label()} using {use} ({fmt_count(d.cost('pixels_seen'))} vs "
        f"{fmt_count(c.cost('pixels_seen'))}), pre-training included."
    )
    if cmp["inconclusive"]:
        line = line.replace(" than ", " as ", 1)
    finding = {
        "data": d.data,
        "direct": ds,
        "classify": cs,
        "pixels_ratio": round(ratio, 4),
        "direct_group": d.key(),
        "classify_group": c.key(),
        **cmp,
    }
    return finding, line


def _normalisation(rg: Sequence[Group], regime: str) -> list[tuple[dict, str]]:
    """Each BN/FrozenBN scratch group against the GN scratch group at the same (or nearest) schedule."""
    out = []
    gn = [g for g in rg if g.init == "random" and g.norm.lower() == "gn" and g.stat("bbox")]
    for g in (g for g in rg if g.init == "random" and g.norm.lower() in POORLY_NORMED):
        if not gn:
            continue
        ref = min(gn, key=lambda r: (abs(r.schedule - g.schedule), -r.schedule))
        rs = ref.stat("bbox")
        bad = [a for a in g.arms if a["status"] in ("diverged", "failed")]
        s = g.stat("bbox")
        what = f"random init with {g.norm} at {_sched(g.schedule)}"
        ref_txt = f"GN at {_sched(ref.schedule)} reached {_fmt(rs)} bbox AP"
        failed = ", ".join(sorted({a["status"] for a in bad}))
        n_bad = f"{len(bad)} of {len(g.arms)} seeds " if len(g.arms) > 1 else ""
        finding: dict[str, Any] = {
            "data": g.data,
            "norm": g.norm,
            "schedule": g.schedule,
            "n_failed": len(bad),
            "n_arms": len(g.arms),
            "bad": s is None,
            "gn": rs,
            "gn_group": ref.key(),
            "group": g.key(),
        }
        if s is None:
            if not bad:
                continue  # still pending/running: nothing to say yet
            line = f"Normalisation [{regime}]: {what} {n_bad}{failed}, while {ref_txt}."
        else:
            cmp = _compare(s, rs)
            finding.update(ap=s, **cmp)
            if cmp["inconclusive"]:
                rel = f"within the seed spread of {cmp['spread']:.1f} of GN: inconclusive"
            else:
                rel = f"{abs(cmp['diff']):.1f} AP {'behind' if cmp['diff'] < 0 else 'ahead of'} GN"
            line = f"Normalisation [{regime}]: {what} reached {_fmt(s)} bbox AP while {ref_txt}: {rel}."
            if bad:
                line = line[:-1] + f"; {len(bad)} of {len(g.arms)} seeds {failed}."
        out.append((finding, line))
    return out


def _problems(arms: Sequence[dict[str, Any]]) -> list[tuple[dict, str]]:
    out = []
    for a in arms:
        if a["status"] == "finished" and a.get("final"):
            continue
        status = a["status"] if a["status"] != "finished" else "finished without final metrics"
        desc = (
            f"{a['init']}, {a['norm']}, {_sched(float(a['schedule']))}, data {a['data']}, "
            f"seed {a.get('seed', '?')}"
        )
        err = f": {a['error']}" if a.get("error") else ""
        tail = " (not included in the comparisons)" if a["status"] in ("pending", "running") else ""
        out.append(
            (
                {"name": a["name"], "status": a["status"], "error": a.get("error")},
                f"Arm '{a['name']}' ({desc}) {status}{err}{tail}.",
            )
        )
    return out


def compute_verdict(arms: list[dict[str, Any]], tol: float = 1.0) -> dict[str, Any]:
    """Compare random-init arms with pre-trained ones (classify and direct, separately).

    Returns ``{"lines": [sentences], "findings": {...numbers...}}``. Findings (each only where the arms
    exist): ``early`` (AP at matching iterations before the first LR drop), ``catch_up`` (shortest random
    schedule within ``tol`` AP of the best pre-trained AP), ``regimes`` (gap per data regime) and
    ``regime_trend``, ``localisation`` (AP75 vs AP50 gaps), ``cost`` and ``direct_vs_classify`` (AP vs
    total images/pixels seen, pre-training included), ``normalisation`` (BN/FrozenBN scratch vs GN) and
    ``problems`` (arms that failed, diverged or have not finished). ``groups`` lists every configuration
    with its per-seed mean/std. Raises ``ValueError`` naming the arm for a malformed record.
    """
    validate_arms(arms)
    groups = group_arms(arms)
    sizes: dict[str, int] = {}
    for a in arms:
        sizes[a["data"]] = max(sizes.get(a["data"], 0), int(a.get("data_images") or 0))
    regimes = sorted(sizes, key=lambda d: -sizes[d])  # most data first, as in the paper's figures
    f: dict[str, Any] = {
        k: []
        for k in (
            "early",
            "catch_up",
            "regimes",
            "localisation",
            "cost",
            "direct_vs_classify",
            "normalisation",
            "problems",
        )
    }
    sections: dict[str, list[str]] = {k: [] for k in f}
    n_done = sum(a["status"] == "finished" and bool(a.get("final")) for a in arms)
    lines = [f"{n_done} of {len(arms)} arms finished with final metrics."]

    def add(key: str, res: tuple[dict, str] | None) -> None:
        if res is not None:
            f[key].append(res[0])
            sections[key].append(res[1])

    for d in regimes:
        rg = [g for g in groups if g.data == d]
        phrase = _regime_phrase(d, sizes[d] or None)
        for pt_init in _pretrained_kinds(groups):
            catch_rd = None
            for task in TASKS:
                add("early", _early(rg, pt_init, task, phrase.replace("With ", "", 1)))
                cu = _catch_up(rg, pt_init, task, phrase, tol)
                if cu:
                    add("catch_up", cu[:2])
                    if task == "bbox" and cu[0]["caught_up"]:
                        catch_rd = cu[2]
                if len(regimes) > 1:
                    add("regimes", _gap(rg, pt_init, task, phrase))
                add("localisation", _localisation(rg, pt_init, task, phrase.replace("With ", "", 1)))
            add("cost", _cost(rg, pt_init, phrase.replace("With ", "", 1), catch_rd))
        add("direct_vs_classify", _direct_vs_classify(rg, phrase.replace("With ", "", 1)))
        for res in _normalisation(rg, phrase.replace("With ", "", 1)):
            add("normalisation", res)
    for res in _problems(arms):
        add("problems", res)

    f["regime_trend"] = _trend(f["regimes"], regimes, sizes)
    for k in ("early", "catch_up", "regimes"):
        lines += sections[k]
        if k == "regimes":
            lines += [t["line"] for t in f["regime_trend"]]
    for k in ("localisation", "cost", "direct_vs_classify", "normalisation", "problems"):
        lines += sections[k]
    f["tol"] = tol
    f["data_regimes"] = [{"data": d, "data_images": sizes[d]} for d in regimes]
    f["groups"] = [
        {
            **g.key(),
            "n_finished": len(g.finished),
            **{t: {m: g.stat(t, m) for m in METRICS} for t in TASKS if g.stat(t) is not None},
            "total": {k: g.cost(k) for k in ("images_seen", "instances_seen", "pixels_seen", "wall_s")},
        }
        for g in groups
    ]
    return {"lines": lines, "findings": f}


def _trend(gaps: list[dict], regimes: list[str], sizes: dict[str, int]) -> list[dict[str, Any]]:
    """Does pre-training's lead grow as data shrinks? Stated only from the per-regime gaps computed."""
    out = []
    for pt_init in dict.fromkeys(g["init"] for g in gaps):
        for task in TASKS:
            rows = [
                g
                for d in regimes
                for g in gaps
                if g["data"] == d and g["init"] == pt_init and g["task"] == task
            ]
            if len(rows) < 2:
                continue
            parts = "; ".join(f"{r['data']} ({sizes[r['data']]} images): {r['diff']:+.1f}" for r in rows)
            largest = max(rows, key=lambda r: r["diff"])
            at_least = largest is rows[-1]
            line = (
                f"Across data regimes ({task}), {_phrase(pt_init)} minus random init was {parts}; "
                f"the lead was {'largest' if at_least else 'not largest'} with the least data."
            )
            out.append(
                {
                    "init": pt_init,
                    "task": task,
                    "largest_with_least_data": at_least,
                    "gaps": {r["data"]: r["diff"] for r in rows},
                    "line": line,
                }
            )
    return out
