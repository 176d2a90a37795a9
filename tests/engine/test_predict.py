import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from scratchlab.cli import main
from scratchlab.engine.predict import list_images, load_predictor, predict


def test_model_final_is_self_contained(tiny_run, synth_data):
    run, _ = tiny_run
    ckpt = torch.load(run / "model_final.pth", map_location="cpu", weights_only=True)
    cats = json.loads(open(synth_data["train_json"]).read())["categories"]
    assert ckpt["classes"] == [c["name"] for c in cats]
    assert ckpt["category_ids"] == [c["id"] for c in cats]
    assert "solver:" in ckpt["config"] and set(ckpt["model"]) == set(load_predictor(run).model.state_dict())


def test_predict_draws_detections_and_writes_loadable_coco_results(tiny_run, synth_data, tmp_path):
    run, _ = tiny_run
    lines = []
    results = predict(run, [synth_data["val_images"]], out=tmp_path, score_thresh=0.0, on_image=lines.append)
    files = sorted(p for p in (tmp_path).iterdir() if p.suffix == ".png")
    assert len(results) == len(files) == 4 and len(lines) == 4
    with_dets = [r for r in results if len(r["boxes"])]
    assert with_dets, "score_thresh 0 keeps every detection of the tiny model"
    for r in with_dets:
        src = np.asarray(Image.open(r["file"]).convert("RGB")).astype(int)
        drawn = np.asarray(Image.open(r["drawn"])).astype(int)
        assert drawn.shape == src.shape
        for x1, y1, x2, y2 in r["boxes"].round().int().tolist()[:3]:
            region = (slice(max(y1, 0), y2 + 1), slice(max(x1, 0), x2 + 1))
            assert (drawn[region] != src[region]).any(), f"nothing drawn in box {(x1, y1, x2, y2)}"
        assert r["masks"] is not None and r["masks"].shape[-2:] == src.shape[:2]
        assert all(name in r["summary"] for name in r["classes"])
    gt = COCO(str(tmp_path / "images.json"))
    dt = gt.loadRes(str(tmp_path / "results.json"))
    assert len(dt.anns) == sum(len(r["boxes"]) for r in results)
    assert all("segmentation" in a for a in dt.anns.values())
    assert {gt.imgs[r["image_id"]]["file_name"] for r in results} == {r["file"] for r in results}


def test_score_threshold_filters(tiny_run, synth_data):
    run, _ = tiny_run
    image = sorted(list_images([synth_data["val_images"]]))[0]
    everything = predict(run, [image], score_thresh=0.0)[0]
    strict = predict(run, [image], score_thresh=float(everything["scores"].max()) + 1e-6)[0]
    assert len(strict["boxes"]) == 0 and "no detection" in strict["summary"] and strict["drawn"] is None
    # the summary says how far below the threshold the best detection was, so the user knows what to pass
    assert f"the best scored {float(everything['scores'].max()):.2f}" in strict["summary"]


def test_predict_command(tiny_run, synth_data, tmp_path, capsys):
    run, _ = tiny_run
    image = sorted(list_images([synth_data["val_images"]]))[0]
    assert (
        main(
            [
                "predict",
                str(run),
                str(image),
                "--out",
                str(tmp_path),
                "--score-thresh",
                "0.0",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"{image}: " in out and (tmp_path / image.name).is_file() and (tmp_path / "results.json").is_file()


def test_missing_inputs_are_named(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    assert main(["predict", str(run), str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.jpg" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no model_final.pth"):
        load_predictor(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"model": {}}, tmp_path / "checkpoints" / "last.pth")  # an interrupted run
    with pytest.raises(FileNotFoundError, match=r"for this unfinished run, pass .*checkpoints/last\.pth"):
        load_predictor(tmp_path)
    torch.save({"model": {}}, tmp_path / "old.pth")
    with pytest.raises(ValueError, match="lacks"):
        load_predictor(tmp_path / "old.pth")


def test_bad_device_is_a_clear_error(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    assert main(["predict", str(run), str(image), "--out", str(tmp_path / "o"), "--device", "gpu"]) == 2
    assert "device 'gpu': expected auto, cpu, cuda, cuda:N or mps" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["predict", str(run), str(image), "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
        assert "CUDA is not available on this machine" in capsys.readouterr().err


def test_an_unreadable_image_is_skipped_and_named(tiny_run, synth_data, tmp_path, capsys):
    run, _ = tiny_run
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a_broken.jpg").write_bytes(b"not a jpeg")
    good = sorted(list_images([synth_data["val_images"]]))[0]
    (photos / good.name).write_bytes(good.read_bytes())
    out = tmp_path / "out"
    assert main(["predict", str(run), str(photos), "--out", str(out), "--score-thresh", "0.0"]) == 1
    captured = capsys.readouterr()
    assert "1 unreadable image(s) skipped" in captured.err and "a_broken.jpg" in captured.err
    assert (out / good.name).is_file() and (out / "results.json").is_file()
    by_file = {Path(r["file"]).name: r for r in predict(run, [photos])}
    broken, ok = by_file["a_broken.jpg"], by_file[good.name]
    assert "a_broken.jpg" in broken["error"] and broken["image_id"] is None and len(broken["boxes"]) == 0
    assert ok["error"] is None and ok["image_id"] == 1
