"""The report's figures, after "Rethinking ImageNet Pre-training": AP against iteration with LR drops
marked and seed bands (Fig. 1/4), final AP per configuration with 95% intervals (Table 1 as bars), and AP
against everything seen with the pre-training share of it (Fig. 2).

Every configuration (a group of seeds) has its own colour and line style, the same in every figure:
colour families by init (scratch red, classification blue, direct green, published weights purple),
shades and line styles by configuration. Arms whose pre-training was paid for elsewhere (published
weights) are marked in the compute figure: none of their pre-training is in its pixel counts. A figure whose data is missing raises ``Skip`` with the reason.

The configurations drawn are the verdict's (``study.json`` ``verdict.groups``), in its order, over the
arm records each names: the figures never regroup the arms, so they show what the verdict judged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # the OO API renders with Agg and leaves pyplot's global state alone

from ..run_dir import EXTERNAL
from .groups import TASKS, Group, fmt_count, regime_order, sched_label

__all__ = [
    "Skip",
    "INIT_COLOURS",
    "styles",
    "verdict_groups",
    "curves_figure",
    "final_ap_figure",
    "compute_figure",
]

INIT_COLOURS = {"random": "#d62728", "classify": "#1f77b4", "direct": "#2ca02c", "weights": "#9467bd"}
_SHADES = {
    "random": ("#d62728", "#ff7f0e", "#8c1c13", "#e377c2", "#bc6c25"),
    "classify": ("#1f77b4", "#17becf", "#17456b", "#6baed6", "#7f7fff"),
    "direct": ("#2ca02c", "#bcbd22", "#1a5e1a", "#6b8e23", "#00a087"),
    "weights": ("#9467bd", "#5e3c99", "#c5b0d5", "#7b4173", "#a55194"),
}
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


class Skip(Exception):
    """A figure whose data is missing; the message says why."""


def styles(groups: list[Group]) -> dict[int, dict[str, Any]]:
    """``id(group)`` -> matplotlib colour, linestyle and marker; no two configurations share all three."""
    out, seen = {}, {i: 0 for i in INIT_COLOURS}
    for k, g in enumerate(groups):
        j = seen[g.init]
        seen[g.init] += 1
        out[id(g)] = {
            "color": _SHADES[g.init][j % len(_SHADES[g.init])],
            "ls": _LINESTYLES[k % len(_LINESTYLES)],
            "marker": _MARKERS[k % len(_MARKERS)],
        }
    return out


def verdict_groups(records: list[dict[str, Any]], arms: list[dict[str, Any]]) -> list[Group]:
    """The verdict's group records as Groups of the arm records they name, in the verdict's order.
    ``Skip`` when a record names an arm the study does not hold (a verdict stored for other arms)."""
    by_name = {a["name"]: a for a in arms}
    out = []
    for rec in records:
        if missing := [n for n in rec["arms"] if n not in by_name]:
            raise Skip(f"figures skipped: the verdict names arm(s) the study lacks: {', '.join(missing[:5])}")
        members = [by_name[n] for n in rec["arms"]]
        out.append(
            Group(
                rec["data"],
                rec["init"],
                rec["norm"],
                float(rec["schedule"]),
                members,
                weights=members[0].get("weights"),
                model=rec.get("model", ""),
            )
        )
    return out


def _label(g: Group, many_regimes: bool) -> str:
    regime = f", data {g.data}" if many_regimes else ""
    n = len(g.finished)
    start = g.kind if g.init == "weights" else g.init  # published weights: which ones
    return f"{start} {g.norm} {sched_label(g.schedule)}{regime}" + (f" ({n} seeds)" if n > 1 else "")


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return path


def _seed_curves(g: Group, task: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Iterations every seed evaluated and the [seeds, iterations] AP there."""
    key = f"{task}_AP"
    per_seed = [
        {p["iteration"]: p[key] for p in a.get("curve") or [] if p.get(key) is not None} for a in g.arms
    ]
    per_seed = [c for c in per_seed if c]
    if not per_seed:
        return None
    its = sorted(set.intersection(*(set(c) for c in per_seed)))
    if not its:
        return None
    return np.array(its, float), np.array([[c[i] for i in its] for c in per_seed], float)


def curves_figure(records: list[dict[str, Any]], arms: list[dict[str, Any]], task: str, path: Path) -> Path:
    """AP vs iteration per data regime: each configuration's mean over seeds, its seed range shaded;
    ``records`` are the verdict's group records."""
    groups = verdict_groups(records, arms)
    curves = {id(g): c for g in groups if (c := _seed_curves(g, task)) is not None}
    if not curves:
        raise Skip(f"AP-vs-iteration ({task}) skipped: no arm has a {task} AP curve.")
    style = styles(groups)
    regimes = [d for d in regime_order(arms) if any(g.data == d and id(g) in curves for g in groups)]
    fig = Figure(figsize=(10, 4.2))
    axes = fig.subplots(1, len(regimes), squeeze=False)[0]
    for ax, d in zip(axes, regimes, strict=True):
        for g in (g for g in groups if g.data == d and id(g) in curves):
            its, ap = curves[id(g)]
            s = style[id(g)]
            ax.plot(
                its,
                ap.mean(0),
                ls=s["ls"],
                marker=s["marker"],
                ms=4,
                color=s["color"],
                lw=2,
                label=_label(g, False),
            )
            if len(ap) > 1:
                ax.fill_between(its, ap.min(0), ap.max(0), color=s["color"], alpha=0.2, lw=0)
            for drop in g.arms[0].get("lr_drops") or []:  # LR drops explain the jumps in the curves
                ax.axvline(drop, color=s["color"], ls=":", lw=1, alpha=0.5)
        ax.set_title(f"data {d}")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{task} AP")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{task} AP vs iteration (mean over seeds, band: seed range; dotted: LR drops)")
    return _save(fig, path)


def final_ap_figure(groups: list[dict[str, Any]], arms: list[dict[str, Any]], path: Path) -> Path:
    """Final AP of every configuration with its 95% interval, per task; ``groups`` are the verdict's
    group records (mean, seed interval, bootstrap interval)."""
    tasks = [t for t in TASKS if any(g.get(t) for g in groups)]
    if not tasks:
        raise Skip("Final-AP figure skipped: no configuration has final metrics.")
    objs = verdict_groups(groups, arms)
    style = styles(objs)
    many = len({g["data"] for g in groups}) > 1
    fig = Figure(figsize=(10, 4.4))
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        rows = [(rec, g) for rec, g in zip(groups, objs, strict=True) if rec.get(task)]
        for x, (rec, g) in enumerate(rows):
            ap = rec[task]["AP"]
            iv = ap.get("noise_interval") or ap.get("bootstrap_interval") or ap.get("interval")
            err = None if iv is None else [[ap["mean"] - iv[0]], [iv[1] - ap["mean"]]]
            s = style[id(g)]
            ax.bar(
                x,
                ap["mean"],
                0.7,
                yerr=err,
                capsize=4,
                color=s["color"],
                alpha=0.85,
                hatch=None if s["ls"] == "-" else "//",
                edgecolor="black",
                lw=0.5,
            )
        ax.set_xticks(
            range(len(rows)),
            [_label(g, many) for _, g in rows],
            rotation=30,
            ha="right",
            fontsize=7,
        )
        ax.set_ylabel(f"final {task} AP")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Final AP per configuration (error bars: 95% interval)")
    return _save(fig, path)


def compute_figure(groups: list[dict[str, Any]], arms: list[dict[str, Any]], path: Path) -> Path:
    """Left: final bbox AP (95% interval) against total pixels seen; right: the share of those pixels
    seen in pre-training and in detector training."""
    objs = verdict_groups(groups, arms)
    style = styles(objs)
    rows = [
        (r, g)
        for r, g in zip(groups, objs, strict=True)
        if (r.get("bbox") or {}).get("AP") and (r["total"].get("pixels_seen") or 0) > 0
    ]
    if not rows:
        raise Skip("AP-vs-compute figure skipped: no finished arm has bbox AP and total pixels seen.")
    many = len({r["data"] for r, _ in rows}) > 1
    fig = Figure(figsize=(10, 4.2))
    left, right = fig.subplots(1, 2)
    for y, (rec, g) in enumerate(rows):
        ap, total, s = rec["bbox"]["AP"], rec["total"]["pixels_seen"], style[id(g)]
        iv = ap.get("noise_interval") or ap.get("bootstrap_interval") or ap.get("interval")
        err = None if iv is None else [[ap["mean"] - iv[0]], [iv[1] - ap["mean"]]]
        external = g.external_pretraining
        left.errorbar(
            total,
            ap["mean"],
            yerr=err,
            fmt=s["marker"],
            color=s["color"],
            capsize=3,
            ms=7,
            mfc="none" if external else s["color"],
            label=_label(g, many) + (" *" if external else ""),
        )
        share = (g.cost("pixels_seen", "pretrain") or 0.0) / total
        right.barh(y, share, color=s["color"], alpha=0.4, hatch="//", edgecolor="black", lw=0.5)
        right.barh(y, 1 - share, left=share, color=s["color"], edgecolor="black", lw=0.5)
        right.text(
            1,
            y,
            f" {fmt_count(total)} px"
            + (" + pre-training *" if external else f", {100 * share:.0f}% pre-training"),
            va="center",
            fontsize=7,
        )
    left.set_xscale("log")
    left.set_xlabel("total pixels seen (pre-training included)")
    left.set_ylabel("final bbox AP")
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    right.set_yticks(range(len(rows)), [_label(g, many) for _, g in rows], fontsize=7)
    right.set_xlabel("share of the total pixels seen (hatched: pre-training)")
    right.set_xlim(0, 1.7)
    fig.suptitle("AP vs total compute, and the pre-training share of it")
    if any(g.external_pretraining for _, g in rows):
        fig.text(0.01, 0.01, f"* hollow marker: published weights, their pre-training {EXTERNAL}", fontsize=7)
    return _save(fig, path)
