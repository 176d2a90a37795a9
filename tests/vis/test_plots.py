import json

from PIL import Image

from scratchlab.vis.plots import plot_run, read_metrics


def test_resumed_rows_merge_and_torn_lines_are_skipped(tmp_path):
    f = tmp_path / "metrics.jsonl"
    rows = [
        {"iteration": 2, "loss": 3.0, "lr": 0.1},
        {"iteration": 2, "loss": 2.5},
        {"iteration": 4, "loss": 2.0, "loss_mask": 0.5, "lr": 0.01, "bbox/AP": 1.5},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"iteration": 6, "lo')
    assert read_metrics(f) == [{"iteration": 2, "loss": 2.5, "lr": 0.1}, rows[2]]
    written = plot_run(f, tmp_path / "plots")
    assert sorted(p.name for p in written) == ["ap.png", "loss.png", "lr.png"]
    assert all(Image.open(p).format == "PNG" for p in written)


def test_no_ap_figure_without_validation(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text(json.dumps({"iteration": 1, "loss": 1.0, "lr": 0.1}))
    assert sorted(p.name for p in plot_run(f, tmp_path / "plots")) == ["loss.png", "lr.png"]
