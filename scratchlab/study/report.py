"""Write a study's report: ``report.md``, a self-contained ``report.html`` and ``figures/*.png``.

The figures follow "Rethinking ImageNet Pre-training": AP against iteration with each arm's LR drops
marked (Fig. 1/4), final AP per data regime (Fig. 6/7) and AP against everything seen, pre-training
included (Fig. 2). The tables give the final AP of every configuration (Table 1 style) and every arm's
status and cost. The HTML embeds its figures as base64 data URIs and its CSS inline, so the one file can
be mailed or archived; a figure whose data is missing is skipped with a line that says why.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # the OO API renders with Agg and leaves pyplot's global state alone

from ..engine.cost import EXTERNAL
from .provenance import external_cost, pretraining_label
from .verdict import INITS, METRICS, TASKS, Group, compute_verdict, group_arms, validate_arms

__all__ = ["write_report", "load_study", "final_table", "status_table", "INIT_COLOURS", "TABLE_HEAD_COLOUR"]

INIT_COLOURS = {"random": "#d62728", "classify": "#1f77b4", "direct": "#2ca02c", "weights": "#9467bd"}
TABLE_HEAD_COLOUR = "#dbe4f0"
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P")
_CSS = f"""
body {{ font-family: Helvetica, Arial, sans-serif; max-width: 1100px; margin: 1em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }}
th {{ background: {TABLE_HEAD_COLOUR}; }}
th, td {{ border: 1px solid #999; padding: 3px 7px; text-align: right; }}
td.t {{ text-align: left; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0; }}
.skip {{ color: #8a5a00; font-style: italic; }}
.bad {{ color: #b00000; font-weight: bold; }}
"""


class _Skip(Exception):
    """A figure whose data is missing; the message says why."""


def load_study(path: str | Path) -> dict[str, Any]:
    """Read ``study.json``; a clear ``ValueError`` names the file (and the arm) when it is malformed."""
    path = Path(path)
    try:
        study = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read study: {exc}") from exc
    try:
        _check_study(study)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return study


def _check_study(study: Any) -> None:
    if not isinstance(study, dict) or not isinstance(study.get("arms"), list):
        raise ValueError("a study must be a mapping with an 'arms' list")
    validate_arms(study["arms"])


# -------------------------------------------------------------------------------------------- tables


def _fmt(s: dict[str, Any] | None) -> str:
    if s is None:
        return "n/a"
    return f"{s['mean']:.1f} ± {s['std']:.1f}" if s["n"] > 1 else f"{s['mean']:.1f}"


def _regime_order(arms: list[dict[str, Any]]) -> list[str]:
    sizes: dict[str, int] = {}
    for a in arms:
        sizes[a["data"]] = max(sizes.get(a["data"], 0), int(a.get("data_images") or 0))
    return sorted(sizes, key=lambda d: -sizes[d])


def final_table(arms: list[dict[str, Any]], task: str) -> tuple[list[str], list[list[str]]]:
    """Final ``task`` AP per configuration (seeds averaged, '±' their std), scratch next to pre-trained
    at each schedule. Returns (header, rows); rows is empty when no arm has ``task`` metrics."""
    order = _regime_order(arms)
    groups = [g for g in group_arms(arms) if g.stat(task) is not None]
    groups.sort(key=lambda g: (order.index(g.data), g.schedule, INITS.index(g.init), g.norm))
    header = ["Data", "Schedule", "Init", "Pre-trained on", "Norm", "Seeds", *METRICS]
    rows = [
        [
            g.data,
            f"{g.schedule:g}x",
            g.init,
            pretraining_label(g.arms[0]),
            g.norm,
            str(len(g.finished)),
            *(_fmt(g.stat(task, m)) for m in METRICS),
        ]
        for g in groups
    ]
    return header, rows


def status_table(arms: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Every arm's status, error text and cost (totals include pre-training)."""
    header = [
        "Arm",
        "Init",
        "Pre-trained on",
        "Norm",
        "Schedule",
        "Data",
        "Seed",
        "Status",
        "Error",
        "Images seen (total)",
        "Pixels seen (total)",
        "Wall s (total)",
        "Pre-training images",
    ]
    rows = []
    for a in arms:
        cost = a.get("cost") or {}
        tot, pre = cost.get("total") or {}, cost.get("pretrain") or {}

        def num(d: dict[str, Any], k: str, fmt: str = "{:,}") -> str:
            return "n/a" if d.get(k) is None else fmt.format(d[k])

        rows.append(
            [
                a["name"],
                a["init"],
                pretraining_label(a),
                a["norm"],
                f"{float(a['schedule']):g}x",
                a["data"],
                str(a.get("seed", "")),
                a["status"],
                a.get("error") or "",
                num(tot, "images_seen"),
                num(tot, "pixels_seen"),
                num(tot, "wall_s", "{:.1f}"),
                EXTERNAL if external_cost(a) else num(pre, "images_seen"),
            ]
        )
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(t: str) -> str:  # a pipe or newline in error text would break the markdown table
        return str(t).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _html_table(header: list[str], rows: list[list[str]], table_id: str, text_cols: int) -> str:
    out = [f'<table id="{table_id}"><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for r in rows:
        tds = []
        for i, c in enumerate(r):
            cls = ' class="t"' if i < text_cols or header[i] in ("Error", "Pre-trained on") else ""
            if header[i] == "Status" and c in ("failed", "diverged"):
                cls = ' class="t bad"'
            tds.append(f"<td{cls}>{html.escape(str(c))}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    return "\n".join(out) + "\n</table>"


# ------------------------------------------------------------------------------------------- figures


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return path


def _curves_figure(arms: list[dict[str, Any]], task: str, path: Path) -> Path:
    key = f"{task}_AP"
    with_curve = [a for a in arms if any(p.get(key) is not None for p in a.get("curve") or [])]
    if not with_curve:
        raise _Skip(f"AP-vs-iteration ({task}) skipped: no arm has a {task} AP curve.")
    regimes = [d for d in _regime_order(arms) if any(a["data"] == d for a in with_curve)]
    schedules = sorted({float(a["schedule"]) for a in with_curve})
    fig = Figure(figsize=(10, 4.2))
    axes = fig.subplots(1, len(regimes), squeeze=False)[0]
    for ax, d in zip(axes, regimes, strict=True):
        for a in (a for a in with_curve if a["data"] == d):
            pts = sorted((p["iteration"], p[key]) for p in a["curve"] if p.get(key) is not None)
            colour = INIT_COLOURS[a["init"]]
            style = _LINESTYLES[schedules.index(float(a["schedule"])) % len(_LINESTYLES)]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=colour, lw=2, label=a["name"])
            for drop in a.get("lr_drops") or []:  # LR drops explain the jumps in the curves
                ax.axvline(drop, color=colour, ls=":", lw=1, alpha=0.5)
        ax.set_title(f"data {d}")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{task} AP")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{task} AP vs iteration (dotted: LR drops)")
    return _save(fig, path)


def _regimes_figure(arms: list[dict[str, Any]], path: Path) -> Path:
    groups = [g for g in group_arms(arms) if g.stat("bbox") is not None]
    regimes = [d for d in _regime_order(arms) if any(g.data == d for g in groups)]
    if len(regimes) < 2:
        raise _Skip(
            f"Data-regime figure skipped: finished arms cover {len(regimes)} data regime(s) "
            f"({', '.join(regimes) or 'none'}); it needs at least two."
        )
    tasks = [t for t in TASKS if any(g.stat(t) for g in groups)]
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    inits = [i for i in INITS if any(g.init == i for g in groups)]
    width = 0.8 / len(inits)
    for ax, task in zip(axes, tasks, strict=True):
        labelled: set[str] = set()
        for j, init in enumerate(inits):
            for x, d in enumerate(regimes):
                cands = [g for g in groups if g.data == d and g.init == init and g.stat(task)]
                if not cands:
                    continue
                best: Group = max(cands, key=lambda g: g.stat(task)["mean"])
                s = best.stat(task)
                xpos = x + (j - (len(inits) - 1) / 2) * width
                ax.bar(
                    xpos,
                    s["mean"],
                    width,
                    yerr=s["std"] or 0,
                    color=INIT_COLOURS[init],
                    label=None if init in labelled else init,
                )
                labelled.add(init)
                ax.text(xpos, s["mean"], f"{best.schedule:g}x", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(regimes)), [f"data {d}" for d in regimes])
        ax.set_ylabel(f"final {task} AP (best schedule)")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Final AP per data regime and init")
    return _save(fig, path)


def _compute_figure(arms: list[dict[str, Any]], path: Path) -> Path:
    pts = []
    for a in arms:
        tot = (a.get("cost") or {}).get("total") or {}
        ap = ((a.get("final") or {}).get("bbox") or {}).get("AP")
        if (
            a["status"] == "finished"
            and ap is not None
            and (tot.get("images_seen") or 0) > 0
            and (tot.get("pixels_seen") or 0) > 0
        ):
            pts.append((a, tot, ap))
    if not pts:
        raise _Skip("AP-vs-compute figure skipped: no finished arm has bbox AP and total images/pixels seen.")
    regimes = _regime_order(arms)
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, key in zip(axes, ("images_seen", "pixels_seen"), strict=True):
        seen: set[tuple[str, str]] = set()
        for a, tot, ap in pts:
            lab = (a["init"], a["data"])
            ax.scatter(
                tot[key],
                ap,
                color=INIT_COLOURS[a["init"]],
                s=40,
                marker=_MARKERS[regimes.index(a["data"]) % len(_MARKERS)],
                label=None if lab in seen else f"{a['init']}, data {a['data']}"
                + (f" (+ pre-training {EXTERNAL})" if external_cost(a) else ""),
            )
            seen.add(lab)
            ax.annotate(
                f"{float(a['schedule']):g}x",
                (tot[key], ap),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.set_xlabel(f"total {key.replace('_', ' ')} (pre-training included)")
        ax.set_ylabel("final bbox AP")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("AP vs total compute")
    return _save(fig, path)


# -------------------------------------------------------------------------------------------- report


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_report(study: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` under ``out_dir``.

    Uses ``study["verdict"]`` when it has lines, else computes it. Returns ``{"paths": [every written
    file], "markdown": Path, "html": Path, "figures": [Path], "skipped": [why a figure was left out]}``.
    Raises ``ValueError`` naming the arm when a record is malformed.
    """
    _check_study(study)
    arms = study["arms"]
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    verdict = study.get("verdict") or {}
    if not isinstance(verdict.get("lines"), list):
        verdict = compute_verdict(arms)

    figures: list[tuple[str, Path]] = []
    skipped: list[str] = []
    jobs = [
        (f"AP vs iteration ({t})", lambda p, t=t: _curves_figure(arms, t, p), f"curves_{t}.png")
        for t in TASKS
    ]
    jobs += [
        ("Final AP per data regime", lambda p: _regimes_figure(arms, p), "data_regimes.png"),
        ("AP vs total compute", lambda p: _compute_figure(arms, p), "compute.png"),
    ]
    for title, make, name in jobs:
        try:
            figures.append((title, make(fig_dir / name)))
        except _Skip as why:
            skipped.append(str(why))
            (fig_dir / name).unlink(missing_ok=True)  # a stale figure from an earlier run would mislead

    tables = [(f"Final {t} AP", f"final-{t}", *final_table(arms, t)) for t in TASKS]
    tables = [t for t in tables if t[3]]
    status = status_table(arms)
    name = str(study.get("name", "study"))
    dataset = json.dumps(study.get("dataset", {}), sort_keys=True)

    md = [f"# Study report: {name}", "", f"Dataset: `{dataset}`", "", "## Verdict", ""]
    md += [f"- {line}" for line in verdict["lines"]] + ["", "## Figures", ""]
    md += [f"![{t}](figures/{p.name})" for t, p in figures] + [f"*{s}*" for s in skipped] + [""]
    for title, _, header, rows in tables:
        md += [f"## {title}", "", _md_table(header, rows), ""]
    md += ["## Arms: status and cost", "", _md_table(*status), ""]

    h = html.escape
    body = [
        f"<h1>Study report: {h(name)}</h1>",
        f"<p>Dataset: <code>{h(dataset)}</code></p>",
        "<h2>Verdict</h2>",
        "<ul>" + "".join(f"<li>{h(x)}</li>" for x in verdict["lines"]) + "</ul>",
        "<h2>Figures</h2>",
    ]
    body += [
        f'<figure><img alt="{h(t)}" src="{_data_uri(p)}"><figcaption>{h(t)}</figcaption></figure>'
        for t, p in figures
    ]
    body += [f'<p class="skip">{h(s)}</p>' for s in skipped]
    for title, tid, header, rows in tables:
        body += [f"<h2>{h(title)}</h2>", _html_table(header, rows, tid, text_cols=5)]
    body += ["<h2>Arms: status and cost</h2>", _html_table(*status, "status", text_cols=8)]
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{h(name)}</title>'
        f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )

    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text("\n".join(md))
    html_path.write_text(page)
    fig_paths = [p for _, p in figures]
    return {
        "paths": [md_path, html_path, *fig_paths],
        "markdown": md_path,
        "html": html_path,
        "figures": fig_paths,
        "skipped": skipped,
    }
