"""write_report: files, self-contained HTML, tables that read back to study.json, escaping, skips, and a
headless-Chromium screenshot of the page (skipped when chromium is not installed)."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import shutil
import statistics
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scratchlab.study.groups import METRICS
from scratchlab.study.paper import CLAIMS
from scratchlab.study.report import (
    INIT_COLOURS,
    PAPER_COLUMNS,
    TABLE_HEAD_COLOUR,
    final_table,
    load_study,
    status_table,
    write_report,
)
from scratchlab.study.stats import seed_summary

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Tables(HTMLParser):
    """Collect ``<table id=...>`` cells (unescaped text) and every img src."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.srcs: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.srcs.append(a.get("src", ""))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _html_tables(page: str) -> _Tables:
    p = _Tables()
    p.feed(page)
    return p


def _md_tables(text: str) -> dict[str, list[list[str]]]:
    """Tables under each ``## heading``; cells split on unescaped pipes and unescaped."""
    out: dict[str, list[list[str]]] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("|") and not line.startswith("|---"):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            out.setdefault(heading, []).append([c.strip().replace("\\|", "|") for c in cells])
    return out


def _expected_final(study: dict, task: str) -> dict[tuple[str, str, str], list[str]]:
    """(data, schedule, init) -> expected metric cells, computed here straight from the arm records."""
    vals: dict[tuple[str, str, str], list[dict]] = {}
    for a in study["arms"]:
        if a["status"] == "finished" and a["final"] and task in a["final"]:
            vals.setdefault((a["data"], f"{a['schedule']:g}x", a["init"]), []).append(a["final"][task])
    out = {}
    for key, finals in vals.items():
        cells = []
        for m in METRICS:
            xs = [f[m] for f in finals]
            cell = f"{statistics.mean(xs):.1f}"
            if len(xs) > 1:  # seeds: their std and the t-interval of their mean
                lo, hi = seed_summary(xs).interval
                cell += f" ± {statistics.stdev(xs):.1f} [{lo:.1f}, {hi:.1f}]"
            cells.append(cell)
        out[key] = cells
    return out


@pytest.fixture(scope="module")
def written(study, tmp_path_factory):
    res = write_report(study, tmp_path_factory.mktemp("report"))
    return res, study


def test_files_written_and_figures_are_png(written):
    res, _ = written
    assert res["markdown"].is_file() and res["html"].is_file()
    names = sorted(p.name for p in res["figures"])
    assert names == ["compute.png", "curves_bbox.png", "curves_segm.png", "final_ap.png"]
    assert set(res["paths"]) == {res["markdown"], res["html"], *res["figures"]} and not res["skipped"]
    for p in res["figures"]:
        assert p.read_bytes()[:8] == PNG_MAGIC
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            assert im.size[0] >= 600 and np.asarray(im.convert("L")).std() > 5


def test_html_self_contained_and_escaped(written):
    res, study = written
    page = res["html"].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    parsed = _html_tables(page)
    assert len(parsed.srcs) == len(res["figures"])
    for src in parsed.srcs:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.verify()
    err = next(a["error"] for a in study["arms"] if a["status"] == "failed")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more | pipe" in page
    status = {r[0]: r for r in parsed.tables["status"][1:]}
    header = parsed.tables["status"][0]
    failed = status["direct_gn_1x_10pct"]
    assert failed[header.index("Status")] == "failed" and failed[header.index("Error")] == err
    assert status["scratch_bn_2x"][header.index("Error")] == "loss became NaN at iteration 40"


@pytest.mark.parametrize("task", ["bbox", "segm"])
def test_final_tables_match_study(written, task):
    res, study = written
    expected = _expected_final(study, task)
    md = _md_tables(res["markdown"].read_text())[f"Final {task} AP"]
    html_rows = _html_tables(res["html"].read_text()).tables[f"final-{task}"]
    for rows in (md, html_rows):
        header, body = rows[0], rows[1:]
        assert header[-len(METRICS) :] == list(METRICS)
        got = {(r[0], r[1], r[2]): r[-len(METRICS) :] for r in body}
        assert got == expected
    # The two-seed group really is averaged: 29.0 and 30.0 -> 29.5 ± 0.7, t-interval 29.5 ± 6.4.
    assert expected["100%", "2x", "random"][0] == (
        "29.5 ± 0.7 [23.1, 35.9]" if task == "bbox" else "27.5 ± 0.7 [21.1, 33.9]"
    )


def test_status_table_md_matches_study(written):
    res, study = written
    rows = _md_tables(res["markdown"].read_text())["Arms: status and cost"]
    header, body = rows[0], {r[0]: r for r in rows[1:]}
    assert set(body) == {a["name"] for a in study["arms"]}
    for a in study["arms"]:
        r = body[a["name"]]
        assert r[header.index("Status")] == a["status"]
        assert r[header.index("Error")] == (a["error"] or "")
        total = a["cost"]["total"]["pixels_seen"]
        assert int(r[header.index("Pixels seen (total)")].replace(",", "")) == total


def test_tables_name_what_each_arm_was_pre_trained_on(make_arm):
    from scratchlab.study.verdict import compute_verdict

    arms = [
        make_arm("rnd", "random", 25.0),
        make_arm("cls", "classify", 30.0),
        make_arm("tv", "weights", 33.0, weights="R-50.pkl"),
        make_arm("timm", "weights", 31.0, weights="r50.pth"),
    ]
    final = final_table(compute_verdict(arms, resamples=0)["groups"], arms, "bbox")
    assert final.header[2:4] == ["Init", "Pre-trained on"]
    assert [r[2:4] for r in final.rows] == [
        ["random", "none (random init)"],
        ["classify", "classification pre-training"],
        ["weights", "ImageNet-1k (file R-50.pkl)"],
        ["weights", "ImageNet-1k (file r50.pth)"],
    ]
    status = status_table(arms)
    rows = {r[0]: dict(zip(status.header, r, strict=True)) for r in status.rows}
    assert (
        status.header[1:3] == ["Init", "Pre-trained on"]
        and status.text_cols == status.header.index("Error") + 1
    )
    assert rows["tv"]["Pre-trained on"] == "ImageNet-1k (file R-50.pkl)"
    assert rows["tv"]["Pre-training images"] == "not counted: external"
    assert rows["cls"]["Pre-training images"] == "100,000" and rows["rnd"]["Pre-training images"] == "n/a"


def test_report_opens_with_the_answer_then_questions_in_both_formats(written):
    res, study = written
    md, page = res["markdown"].read_text(), res["html"].read_text()
    from html import escape

    from scratchlab.study.verdict import compute_verdict

    v = compute_verdict(study["arms"])
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert md.splitlines()[2].startswith("Dataset: ") and "{" not in md.splitlines()[2]
    assert headings[:2] == ["Answer", "Paper check"]
    assert headings[2 : 2 + len(v["questions"])] == [q["title"] for q in v["questions"]]
    assert md.index(v["headline"]) < md.index("## Paper check")
    assert escape(v["headline"]) in page and page.index(escape(v["headline"])) < page.index("<h2>Paper check")
    lines = [x for q in v["questions"] for x in q["lines"]]
    assert len(lines) > 5
    for line in lines:
        assert f"- {line}" in md and escape(line) in page


def test_paper_table_same_in_both_formats(written):
    res, study = written
    md = _md_tables(res["markdown"].read_text())["Paper check"]
    html_rows = _html_tables(res["html"].read_text()).tables["paper"]
    assert md == html_rows
    assert md[0] == [*PAPER_COLUMNS] and len(md) == 1 + len(CLAIMS)
    assert md[0][4:] == ["Compared", "Why not testable"]
    results = {r[1] for r in md[1:]}
    allowed = {"reproduced", "not reproduced", "mixed", "inconclusive", "not tested", "not testable here"}
    assert results <= allowed | {"consistent", "inconsistent"}
    # Each row shows what its claim compared and, only when it cannot be tested, why: as in study.json.
    from scratchlab.study.verdict import compute_verdict

    paper = compute_verdict(study["arms"])["paper"]
    assert [r[4] for r in md[1:]] == [c["compared"] or "" for c in paper]
    assert [r[5] for r in md[1:]] == [c["reason"] or "" for c in paper]
    assert any(r[4] for r in md[1:])
    for row in md[1:]:
        assert bool(row[5]) == (row[1] == "not testable here"), row


def test_paper_table_shows_a_stored_reason_escaped_in_both_formats(never_arms, tmp_path):
    """A claim not testable here carries its reason into both renderings, a pipe or tag in it intact."""
    from scratchlab.study.verdict import compute_verdict

    verdict = compute_verdict(never_arms)
    entry = verdict["paper"][0]
    entry.update(result="not testable here", reason="curves | never <meet>", compared="a - b, AP75")
    res = write_report({"name": "s", "arms": never_arms, "verdict": verdict}, tmp_path)
    md = _md_tables(res["markdown"].read_text())["Paper check"]
    assert md == _html_tables(res["html"].read_text()).tables["paper"]
    assert md[1][1] == "not testable here" and md[1][4:] == ["a - b, AP75", "curves | never <meet>"]
    assert "curves \\| never <meet>" in res["markdown"].read_text()
    assert "curves | never &lt;meet&gt;" in res["html"].read_text()
    # A verdict stored before these fields existed renders them empty.
    del entry["compared"], entry["reason"]
    res = write_report({"name": "s", "arms": never_arms, "verdict": verdict}, tmp_path)
    assert _md_tables(res["markdown"].read_text())["Paper check"][1][4:] == ["", ""]


def test_stored_verdict_is_used(never_arms, tmp_path):
    from scratchlab.study.verdict import compute_verdict

    verdict = compute_verdict(never_arms)
    verdict["headline"] = "Stored headline <b>."
    verdict["questions"] = [{"key": "early", "title": "Q?", "lines": ["Stored verdict line <b>."]}]
    res = write_report({"name": "s", "arms": never_arms, "verdict": verdict}, tmp_path)
    assert "- Stored verdict line <b>." in res["markdown"].read_text()
    page = res["html"].read_text()
    assert "<li>Stored verdict line &lt;b&gt;.</li>" in page and "Stored headline &lt;b&gt;." in page


def test_missing_data_skips_figures_with_reason(make_arm, tmp_path):
    # Faster R-CNN (no segm) and no cost totals: two figures cannot be drawn.
    arms = [make_arm("cls", "classify", 30.0), make_arm("rnd", "random", 25.0, schedule=2.0)]
    for a in arms:
        a["cost"]["total"] = None
    res = write_report({"name": "frcnn", "dataset": {}, "arms": arms}, tmp_path)
    assert [p.name for p in res["figures"]] == ["curves_bbox.png", "final_ap.png"]
    assert len(res["skipped"]) == 2
    assert any("segm" in s and "no arm has a segm AP curve" in s for s in res["skipped"])
    assert any("AP-vs-compute figure skipped" in s for s in res["skipped"])
    md, page = res["markdown"].read_text(), res["html"].read_text()
    assert all(s in md for s in res["skipped"]) and "Final segm AP" not in md
    assert 'id="final-segm"' not in page and 'id="final-bbox"' in page


def test_load_study_errors_name_file_and_arm(study, tmp_path):
    good = tmp_path / "study.json"
    good.write_text(json.dumps(study))
    assert load_study(good)["name"] == "tiny-study"
    with pytest.raises(ValueError, match=r"is .*nowhere a study directory \(scratchlab study \.\.\. --out\)"):
        load_study(tmp_path / "nowhere" / "study.json")
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: cannot read study"):
        load_study(bad)
    arms = copy.deepcopy(study)
    arms["arms"][3]["init"] = "imagenet"
    bad.write_text(json.dumps(arms))
    with pytest.raises(ValueError, match=r"broken.json: arm #3 \('scratch_gn_3x'\): init must be"):
        load_study(bad)


# ----------------------------------------------------------------------------------- screenshot


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], float)


def _screenshot_problems(png: Path) -> list[str]:
    """Why a screenshot does not look like a rendered report: blank, no table header colour, or no
    figure line colours (scratch red / classification blue, drawn only inside the embedded PNGs)."""
    if not png.is_file() or png.stat().st_size == 0:
        return ["no screenshot"]
    with Image.open(png) as im:
        px = np.asarray(im.convert("RGB"), float).reshape(-1, 3)
    problems = []
    if px.std() < 10:
        problems.append(f"blank page (pixel std {px.std():.1f})")
    for what, colour, tol, need in (
        ("table header", TABLE_HEAD_COLOUR, 6, 500),
        ("scratch curve", INIT_COLOURS["random"], 30, 200),
        ("pre-trained curve", INIT_COLOURS["classify"], 30, 200),
    ):
        n = int((np.abs(px - _rgb(colour)).max(axis=1) <= tol).sum())
        if n < need:
            problems.append(f"{what} colour {colour}: {n} pixels < {need}")
    return problems


def _screenshot(chromium: str, page: Path, tmp: Path) -> Path:
    shot = tmp / f"{page.stem}.png"
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        f"file://{page.resolve()}",
    ]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    return shot


def test_chromium_screenshot_not_blank(caught_up_arms, make_arm, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip(
            "chromium not on PATH (Debian package 'chromium'); the headless screenshot check needs it"
        )
    # A small study keeps the figures and the first table inside the 1200x2000 window.
    arms = caught_up_arms + [make_arm("direct_oom", "direct", None, status="failed", error="<OOM> & co")]
    res = write_report({"name": "shot", "dataset": {}, "arms": arms}, tmp_path / "ok")
    problems = _screenshot_problems(_screenshot(chromium, res["html"], tmp_path))
    assert not problems, problems

    # The same check must fail on a page whose images are corrupt and on an empty page.
    page = res["html"].read_text()
    corrupt = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,AAAAnotapng", page)
    assert corrupt != page
    broken = tmp_path / "broken.html"
    broken.write_text(corrupt)
    empty = tmp_path / "empty.html"
    empty.write_text("<!DOCTYPE html><html><head></head><body></body></html>")
    bad_img = _screenshot_problems(_screenshot(chromium, broken, tmp_path))
    assert any("curve colour" in p for p in bad_img), bad_img
    bad_empty = _screenshot_problems(_screenshot(chromium, empty, tmp_path))
    assert any("blank" in p for p in bad_empty), bad_empty


@pytest.mark.parametrize("fault", ["duplicate", "no per-image", "NaN AP"])
def test_report_only_refuses_inconsistent_arm_records_naming_them(study, tmp_path, fault, capsys):
    from scratchlab.cli import main

    faulty = copy.deepcopy(study)
    arms = faulty["arms"]
    if fault == "duplicate":
        arms.append(copy.deepcopy(arms[0]))
        named = "listed more than once: scratch_gn_1x"
    elif fault == "no per-image":
        arms[0]["per_image"] = {"bbox": {"image_ids": [1], "cells": []}}  # the others have none
        named = "without per-image bbox data: scratch_gn_2x_s0, scratch_gn_2x_s1"
    else:
        arms[0]["final"]["bbox"]["AP"] = float("nan")
        named = "'scratch_gn_1x': final.bbox.AP is NaN"
    (tmp_path / "study.json").write_text(json.dumps(faulty))
    before = (tmp_path / "study.json").read_bytes()
    assert main(["study", "--report-only", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(tmp_path / "study.json") in err and named in err, err
    assert (tmp_path / "study.json").read_bytes() == before


def test_per_image_data_is_required_only_for_the_tasks_an_arm_measured(make_arm, tmp_path):
    """A keypoint arm's per-image keypoint data does not make box-only arms incomplete; a second keypoint
    arm without it is refused by name."""
    data = {"image_ids": [1], "cells": []}
    kp = make_arm("kp", "classify", 20.0)
    kp["final"]["keypoints"] = {"AP": 30.0}
    kp["per_image"] = {"bbox": data, "keypoints": data}
    box = {**make_arm("box", "random", 18.0), "per_image": {"bbox": data}}
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"name": "s", "arms": [kp, box]}))
    assert [a["name"] for a in load_study(path)["arms"]] == ["kp", "box"]
    other = copy.deepcopy(kp) | {"name": "kp2", "per_image": {"bbox": data}}
    path.write_text(json.dumps({"name": "s", "arms": [kp, box, other]}))
    with pytest.raises(ValueError, match="without per-image keypoints data: kp2$"):
        load_study(path)


def test_report_only_on_a_study_written_before_the_claims_changed(study, tmp_path):
    """A study.json of the earlier format: curves with bbox AP only, no peak memory in the costs, a
    verdict whose paper entries lack noise, adjusted, compared and reason. --report-only rebuilds it, and
    each claim says what it compared or why it cannot be tested on these records."""
    from scratchlab.cli import main

    old = json.loads(json.dumps(study))
    old["verdict"] = {"headline": "old", "paper": [{"claim": "x", "result": "reproduced", "interval": None}]}
    (tmp_path / "study.json").write_text(json.dumps(old))
    assert main(["study", "--report-only", str(tmp_path)]) == 0
    rebuilt = json.loads((tmp_path / "study.json").read_text())["verdict"]
    assert {c["claim"] for c in rebuilt["paper"]} == {c for _, _, c in CLAIMS.values()}
    for check in rebuilt["paper"]:
        assert {"noise", "adjusted", "compared", "reason"} <= set(check)
        assert check["result"] != "not testable here" or check["reason"]
    by_claim = {c["claim"]: c for c in rebuilt["paper"]}
    # Its records have no pre-training peak memory: that claim is not tested, the others are judged.
    assert by_claim[CLAIMS["direct_vs_classify:peak_memory_mb"][2]]["result"] == "not tested"
    assert by_claim[CLAIMS["direct_vs_classify:pixels_seen"][2]]["compared"]
    assert (tmp_path / "report.md").is_file()


def test_report_only_never_imports_torch(study, tmp_path):
    """--report-only builds no model: the command line, its lock errors, the verdict and the report stay
    torch-free, so rebuilding a report costs seconds, not torch's import."""
    (tmp_path / "study.json").write_text(json.dumps(study))
    code = (
        "import sys; from scratchlab.cli import main; "
        f"rc = main(['study', '--report-only', {str(tmp_path)!r}]); "
        "assert rc == 0, rc; assert 'torch' not in sys.modules, 'study --report-only pulled in torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
    assert (tmp_path / "report.md").is_file()
