"""benchmarks/run.py (``make bench``): rendering, marker handling and failure reporting, with fake row
scripts (nothing is timed)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_run():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run = _load_run()

RESULT = {
    "title": "1. Fake row",
    "command": "python fake.py",
    "columns": ["what", "s/iter", "count"],
    "rows": [["trainer", 0.123456, 400], ["bare", 1234.5, 7]],
    "notes": ["a note"],
}


def _fake_scripts(folder: Path) -> Path:
    folder.mkdir()
    (folder / "bench_loop.py").write_text(
        f"import sys\nprint('progress')\nprint('warming up', file=sys.stderr)\nprint({json.dumps(json.dumps(RESULT))})\n"
    )
    (folder / "bench_data.py").write_text(
        "import sys\nprint('boom: no data', file=sys.stderr)\nsys.exit(3)\n"
    )
    (folder / "bench_demo.py").write_text("print('not json')\n")
    return folder


@pytest.mark.parametrize(
    "value, text",
    [
        (0.123456, "0.123"),
        (1234.5, "1230"),
        (12.345, "12.3"),
        (400, "400"),
        (None, "n/a"),
        ("a|b", "a\\|b"),
        (0.0, "0"),
    ],
)
def test_numbers_are_rendered_to_three_significant_digits(value, text):
    assert run.fmt(value) == text


def test_outcomes_render_results_failures_and_absent_scripts(tmp_path):
    scripts = _fake_scripts(tmp_path / "bench")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = {r.name: r for r in run.ROWS}
    ok = run.render_row(rows["loop"], run.run_row(rows["loop"], env, 60, scripts))
    assert "### 1. Fake row" in ok and "Command: `python fake.py`" in ok
    assert "| trainer | 0.123 | 400 |" in ok and "- a note" in ok and "Machine: CPU " in ok
    failed = run.render_row(rows["data"], run.run_row(rows["data"], env, 60, scripts))
    assert "**failed**" in failed and "exit code 3" in failed and "boom: no data" in failed
    garbled = run.render_row(rows["demo"], run.run_row(rows["demo"], env, 60, scripts))
    assert "**failed**" in garbled and "not JSON" in garbled
    absent = run.render_row(rows["eval"], run.run_row(rows["eval"], env, 60, scripts))
    assert "Not present: `benchmarks/bench_eval.py`" in absent


def test_result_without_the_schema_keys_is_refused():
    with pytest.raises(ValueError, match="lacks"):
        run.parse_result(json.dumps({"title": "x"}))
    with pytest.raises(ValueError, match="cell count"):
        run.parse_result(json.dumps({**RESULT, "rows": [[1]]}))


def test_hand_written_text_is_kept_and_rows_replace_only_themselves(tmp_path, monkeypatch):
    doc = tmp_path / "BENCHMARKS.md"
    history = "## Old numbers\n\nmeasured by hand, kept verbatim |x|\n"
    doc.write_text("# Benchmarks\n\nIntro.\n\n" + history)
    scripts = _fake_scripts(tmp_path / "bench")
    monkeypatch.setattr(run, "HERE", scripts)
    assert run.main(["--only", "loop", "eval", "--file", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nIntro.\n\n" + run.BEGIN)
    assert text.endswith(run.END + "\n\n" + history)
    assert "### 1. Fake row" in text and "Not present" in text
    # A second run of another row keeps the first one's section and the history.
    assert run.main(["--only", "data", "--file", str(doc)]) == 1
    again = doc.read_text()
    assert (
        "### 1. Fake row" in again and "boom: no data" in again and again.endswith(run.END + "\n\n" + history)
    )
    head, sections, tail = run.split_document(again)
    assert set(sections) == {"loop", "eval", "data"} and tail == "\n\n" + history
    assert run.join_document(head, sections, tail) == again


def test_repeats_reach_the_scripts_through_the_environment(tmp_path, monkeypatch):
    scripts = tmp_path / "bench"
    scripts.mkdir()
    echo = {**RESULT, "rows": [["repeats", "{}", 0]]}
    code = f"import json, os\nr = {echo!r}\nr['rows'][0][1] = os.environ.get('{run.REPEATS_ENV}')\nprint(json.dumps(r))\n"
    (scripts / "bench_loop.py").write_text(code)
    monkeypatch.setattr(run, "HERE", scripts)
    doc = tmp_path / "B.md"
    assert run.main(["--only", "loop", "--repeats", "5", "--file", str(doc)]) == 0
    assert "| repeats | 5 | 0 |" in doc.read_text()
