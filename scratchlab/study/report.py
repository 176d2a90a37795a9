"""Write a study's report: ``report.md``, a self-contained ``report.html`` and ``figures/*.png``.

The report is built once as a list of sections (heading, paragraphs, bullets, table, figures, notes) and
rendered to Markdown and to HTML from that same list, so both carry the same numbers. It opens with the
answer (which start reached the best AP, at what cost, how sure), then the paper check, the findings
grouped by question, the figures and the tables. The HTML embeds its figures as base64 data URIs and its
CSS inline, so the one file can be mailed or archived; a figure whose data is missing is skipped with a
line that says why.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import run_dir
from ..run_dir import EXTERNAL
from ..utils.io import write_text
from .figures import INIT_COLOURS, Skip, compute_figure, curves_figure, final_ap_figure
from .groups import INITS, METRICS, TASKS, fmt_interval, regime_order, sched_label, validate_arms
from .provenance import external_cost, pretraining_label
from .verdict import compute_verdict

__all__ = [
    "write_report",
    "load_study",
    "build_sections",
    "to_markdown",
    "to_html",
    "Section",
    "Table",
    "final_table",
    "status_table",
    "ARM_COLUMNS",
    "PAPER_COLUMNS",
    "INIT_COLOURS",
    "TABLE_HEAD_COLOUR",
]

TABLE_HEAD_COLOUR = "#dbe4f0"
_CSS = f"""
body {{ font-family: Helvetica, Arial, sans-serif; max-width: 1100px; margin: 1em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }}
th {{ background: {TABLE_HEAD_COLOUR}; }}
th, td {{ border: 1px solid #999; padding: 3px 7px; text-align: right; }}
td.t {{ text-align: left; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0; }}
.headline {{ font-size: 1.1em; background: #f4f6fa; padding: 0.6em 0.9em; border-left: 4px solid #1f77b4; }}
.skip {{ color: #8a5a00; font-style: italic; }}
.bad {{ color: #b00000; font-weight: bold; }}
"""


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    table_id: str
    text_cols: int = 1  # leading columns aligned left (names, not numbers)


@dataclass
class Section:
    heading: str | None
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    table: Table | None = None
    figures: list[tuple[str, Path]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. why a figure was skipped
    css: str = ""  # HTML class of the paragraphs


def load_study(path: str | Path) -> dict[str, Any]:
    """Read ``study.json``; a clear ``ValueError`` names the file (and the arm) when it is malformed."""
    path = Path(path)
    if not path.is_file():  # the usual slip: a folder that is not a study's --out
        raise ValueError(
            f"{path} not found: is {path.parent} a study directory (scratchlab study ... --out)?"
        )
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
    _refuse_inconsistent_arms(study["arms"])


def _refuse_inconsistent_arms(arms: list[dict[str, Any]]) -> None:
    """Arm records the verdict would silently mis-pair: a name recorded twice, a finished arm with a
    task's final AP but without the per-image data the others carry for it (its intervals would be left
    out; an arm without that task, e.g. no keypoint head, needs none), a final AP that is not a number."""
    names = [str(arm.get("name")) for arm in arms]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"arm record(s) listed more than once: {', '.join(twice[:5])}")
    done = [arm for arm in arms if arm["status"] == "finished" and arm.get("final")]
    for task in sorted({t for arm in done for t in (arm.get("per_image") or {})}):
        measured = [arm for arm in done if task in arm["final"]]
        if lacking := [str(arm.get("name")) for arm in measured if task not in (arm.get("per_image") or {})]:
            raise ValueError(f"finished arm(s) without per-image {task} data: {', '.join(lacking[:5])}")
    for arm in done:
        for task, metrics in arm["final"].items():
            for metric, value in metrics.items() if isinstance(metrics, dict) else ():
                if isinstance(value, float) and value != value:
                    raise ValueError(f"arm {str(arm.get('name'))[:80]!r}: final.{task}.{metric} is NaN")


# -------------------------------------------------------------------------------------------- tables


def _cell(stat: dict[str, Any] | None) -> str:
    """``29.5 ± 0.7 [26.1, 32.9]``: mean, ± seed std, and the widest 95% interval the record has: images
    and training noise together, else the images' bootstrap, else the seeds' t-interval."""
    if stat is None:
        return "n/a"
    txt = f"{stat['mean']:.1f}" + (f" ± {stat['std']:.1f}" if stat.get("std") is not None else "")
    iv = stat.get("noise_interval") or stat.get("bootstrap_interval") or stat.get("interval")
    return txt + (" " + fmt_interval(iv) if iv else "")


def final_table(groups: list[dict[str, Any]], arms: list[dict[str, Any]], task: str) -> Table:
    """Final ``task`` AP per configuration (the verdict's group records), scratch next to pre-trained at
    each schedule; rows is empty when no configuration has ``task`` metrics."""
    order = regime_order(arms)
    rows = sorted(
        (g for g in groups if g.get(task)),
        key=lambda g: (order.index(g["data"]), g["schedule"], INITS.index(g["init"]), g["norm"]),
    )
    header = ["Data", "Schedule", "Init", "Pre-trained on", "Norm", "Seeds", *METRICS]
    body = [
        [
            g["data"],
            sched_label(g["schedule"]),
            g["init"],
            g.get("pretrained_on", ""),
            g["norm"],
            str(g["n_finished"]),
            *(_cell(g[task].get(m)) for m in METRICS),
        ]
        for g in rows
    ]
    return Table(header, body, f"final-{task}", text_cols=5)


def _num(d: dict[str, Any] | None, k: str, fmt: str = "{:,}") -> str:
    return "n/a" if not d or d.get(k) is None else fmt.format(d[k])


# Columns of the arms table: (header, value of an arm record). One line adds a column.
ARM_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("Arm", lambda a: a["name"]),
    ("Init", lambda a: a["init"]),
    ("Pre-trained on", pretraining_label),
    ("Norm", lambda a: a["norm"]),
    ("Schedule", lambda a: sched_label(a["schedule"])),
    ("Data", lambda a: a["data"]),
    ("Seed", lambda a: str(a.get("seed", ""))),
    ("Status", lambda a: a["status"]),
    ("Error", lambda a: a.get("error") or ""),
    ("Images seen (total)", lambda a: _num((a.get("cost") or {}).get("total"), "images_seen")),
    ("Pixels seen (total)", lambda a: _num((a.get("cost") or {}).get("total"), "pixels_seen")),
    ("Wall s (total)", lambda a: _num((a.get("cost") or {}).get("total"), "wall_s", "{:.1f}")),
    (
        "Pre-training images",
        lambda a: (
            EXTERNAL if external_cost(a) else _num((a.get("cost") or {}).get("pretrain"), "images_seen")
        ),
    ),
]


def status_table(arms: list[dict[str, Any]]) -> Table:
    """Every arm's status, error text and cost (totals include pre-training)."""
    header = [h for h, _ in ARM_COLUMNS]
    return Table(
        header,
        [[get(a) for _, get in ARM_COLUMNS] for a in arms],
        "status",
        text_cols=header.index("Error") + 1,
    )


PAPER_COLUMNS = ["Claim", "Result", "95% interval (AP)", "Arms", "Compared", "Why not testable"]


def _paper_table(paper: list[dict[str, Any]]) -> Table:
    """One row per claim: besides the outcome, what the deciding finding compared (so a reader can
    check it is the paper's comparison) and, for a claim not testable here, why. A verdict stored
    before these fields existed shows them empty rather than failing."""
    rows = [
        [
            c["claim"],
            c["result"],
            fmt_interval(c.get("interval"), signed=True),
            ", ".join(c.get("arms") or []),
            c.get("compared") or "",
            c.get("reason") or "",
        ]
        for c in paper
    ]
    return Table(PAPER_COLUMNS, rows, "paper", text_cols=len(PAPER_COLUMNS))


# ------------------------------------------------------------------------------------------ sections


def _figures(study: dict[str, Any], verdict: dict[str, Any], fig_dir: Path) -> tuple[list, list[str]]:
    arms, groups = study["arms"], verdict.get("groups") or []
    # Keypoint AP only where a detector had a keypoint head: no note of a figure no study could have.
    tasks = [t for t in TASKS if t != "keypoints" or any((a.get("final") or {}).get(t) for a in arms)]
    jobs = [
        (f"AP vs iteration ({t})", lambda p, t=t: curves_figure(groups, arms, t, p), f"curves_{t}.png")
        for t in tasks
    ]
    jobs += [
        ("Final AP per configuration", lambda p: final_ap_figure(groups, arms, p), "final_ap.png"),
        ("AP vs total compute", lambda p: compute_figure(groups, arms, p), "compute.png"),
    ]
    figures, skipped = [], []
    for title, make, name in jobs:
        try:
            figures.append((title, make(fig_dir / name)))
        except Skip as why:
            skipped.append(str(why))
            (fig_dir / name).unlink(missing_ok=True)  # a stale figure from an earlier run would mislead
    return figures, skipped


def build_sections(study: dict[str, Any], verdict: dict[str, Any], fig_dir: Path) -> list[Section]:
    """The whole report, top to bottom, as sections (figures are drawn into ``fig_dir``)."""
    boot = verdict.get("bootstrap") or {}
    noise = boot.get("noise")
    calibration = (
        f"a calibrated per-run sigma (noise block, from {noise.get('from') or 'the study file'}, "
        f"{noise.get('df'):g} degrees of freedom)"
        if noise
        else "no calibration (an arm with one seed adds no training noise, and a claim resting on it is "
        "only 'consistent' or 'inconsistent' with the paper in this one run)"
    )
    method = (
        f"Intervals are 95%, in AP points: a paired bootstrap over the validation images "
        f"({boot.get('resamples')} resamples, seed {boot.get('seed')}, bias-corrected percentile), with "
        f"training noise added: the spread of each configuration's seeds (Welch-Satterthwaite t) or, for "
        f"one seed, {calibration}. Without per-image data, the training noise alone. Each finding says "
        f"which noise it includes. A claim is decided only when its interval excludes the other outcome "
        f"and its p-value, Holm-adjusted over every claim of the study ({boot.get('adjusted', 'holm')}), is "
        f"below 0.05; 'caught up' means the interval of scratch minus pre-trained lies above "
        f"-{boot.get('margin', 1.0):g} AP (the equivalence margin). 'No interval': nothing measures that "
        "finding's spread, so it cannot decide."
    )
    sections = [
        Section("Answer", [verdict.get("headline") or ""], css="headline"),
        Section(None, [method]),
        Section("Paper check", table=_paper_table(verdict.get("paper") or [])),
    ]
    sections += [Section(q["title"], bullets=q["lines"]) for q in verdict.get("questions") or []]
    figures, skipped = _figures(study, verdict, fig_dir)
    sections.append(Section("Figures", figures=figures, notes=skipped))
    for task in TASKS:
        table = final_table(verdict.get("groups") or [], study["arms"], task)
        if table.rows:
            sections.append(
                Section(
                    f"Final {task} AP",
                    [
                        "mean ± seed std [95% interval: the validation images' bootstrap with the "
                        "training noise added (seeds or calibration); without per-image data, the "
                        "training noise alone]"
                    ],
                    table=table,
                )
            )
    sharing = sharing_line(study.get("sharing"))
    sections.append(
        Section("Arms: status and cost", [sharing] if sharing else [], table=status_table(study["arms"]))
    )
    return sections


def sharing_line(sharing: dict[str, Any] | None) -> str | None:
    """What running shared schedule trunks once saved (None when no arm forked from another)."""
    if not sharing or not sharing.get("saved_iterations"):
        return None
    s = sharing
    return (
        f"Shared trunks: the study ran {s['iterations_run']:,} of its arms' {s['iterations_sum']:,} "
        f"iterations ({100 * s['iterations_run'] / s['iterations_sum']:.1f}%); sharing saved "
        f"{s['saved_iterations']:,} iterations and {s['saved_wall_s']:.1f} s of training wall time "
        f"({s['wall_s_run']:.1f} s run against {s['wall_s_alone']:.1f} s alone). Each arm's cost is what "
        "it would cost alone, its trunk's iterations included."
    )


# ----------------------------------------------------------------------------------------- renderers


def _md_table(t: Table) -> list[str]:
    def cell(x: str) -> str:  # a pipe or newline in error text would break the markdown table
        return str(x).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
    return out + ["| " + " | ".join(cell(c) for c in r) + " |" for r in t.rows]


def to_markdown(title: str, sections: list[Section]) -> str:
    md = [f"# {title}", ""]
    for s in sections:
        if s.heading:
            md += [f"## {s.heading}", ""]
        md += [x for p in s.paragraphs for x in (p, "")]
        md += [f"- {b}" for b in s.bullets] + ([""] if s.bullets else [])
        md += [f"![{t}](figures/{p.name})" for t, p in s.figures] + [f"*{n}*" for n in s.notes]
        if s.table is not None:
            md += [*_md_table(s.table), ""]
        if s.figures or s.notes:
            md.append("")
    return "\n".join(md)


def _html_table(t: Table) -> str:
    h = html.escape
    out = [f'<table id="{t.table_id}"><tr>' + "".join(f"<th>{h(c)}</th>" for c in t.header) + "</tr>"]
    for r in t.rows:
        tds = []
        for i, c in enumerate(r):
            cls = ' class="t"' if i < t.text_cols else ""
            if t.header[i] == "Status" and c in ("failed", "diverged"):
                cls = ' class="t bad"'
            tds.append(f"<td{cls}>{h(str(c))}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    return "\n".join(out) + "\n</table>"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(title: str, sections: list[Section]) -> str:
    h = html.escape
    body = [f"<h1>{h(title)}</h1>"]
    for s in sections:
        if s.heading:
            body.append(f"<h2>{h(s.heading)}</h2>")
        cls = f' class="{s.css}"' if s.css else ""
        body += [f"<p{cls}>{h(p)}</p>" for p in s.paragraphs]
        if s.bullets:
            body.append("<ul>" + "".join(f"<li>{h(b)}</li>" for b in s.bullets) + "</ul>")
        body += [
            f'<figure><img alt="{h(t)}" src="{_data_uri(p)}"><figcaption>{h(t)}</figcaption></figure>'
            for t, p in s.figures
        ]
        body += [f'<p class="skip">{h(n)}</p>' for n in s.notes]
        if s.table is not None:
            body.append(_html_table(s.table))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{h(title)}</title>'
        f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _dataset_line(dataset: dict[str, Any]) -> str:
    train, val = dataset.get("train_json"), dataset.get("val_json")
    if not train and not val:
        return "Dataset: generated by the base config's `data.synth` (no data files given)."
    return f"Dataset: training annotations `{train}`, validation annotations `{val}`."


def write_report(study: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` under ``out_dir``.

    Uses ``study["verdict"]`` when it has a headline, else computes it. Returns ``{"paths": [every
    written file], "markdown": Path, "html": Path, "figures": [Path], "skipped": [why a figure was left
    out]}``. Raises ``ValueError`` naming the arm when a record is malformed.
    """
    _check_study(study)
    out_dir = Path(out_dir)
    fig_dir = out_dir / run_dir.FIGURES
    fig_dir.mkdir(parents=True, exist_ok=True)
    verdict = study.get("verdict") or {}
    if not verdict.get("headline"):
        verdict = compute_verdict(study["arms"])
    sections = build_sections(study, verdict, fig_dir)
    title = f"Study report: {study.get('name', 'study')}"
    sections.insert(0, Section(None, [_dataset_line(study.get("dataset") or {})]))
    md_path, html_path = out_dir / run_dir.REPORT_MD, out_dir / run_dir.REPORT_HTML
    write_text(md_path, to_markdown(title, sections))
    write_text(html_path, to_html(title, sections))
    figures = [p for s in sections for _, p in s.figures]
    return {
        "paths": [md_path, html_path, *figures],
        "markdown": md_path,
        "html": html_path,
        "figures": figures,
        "skipped": [n for s in sections for n in s.notes],
    }
