"""The command line: exit codes and messages, never a traceback on bad input."""

import json
import shutil
import subprocess
import sys

import pytest

from scratchlab.cli import main
from scratchlab.config import DEFAULTS
from tests.conftest import MINI, TINY
from tests.data.test_check import CASES, _clean, _write


@pytest.mark.parametrize(
    "case_id, mutate, file, record, fragment, severity", CASES, ids=[c[0] for c in CASES]
)
def test_data_check_exit_code_and_line(tmp_path, capsys, case_id, mutate, file, record, fragment, severity):
    data, img_dir = _clean(tmp_path)
    raw = mutate(data, img_dir)
    ann = _write(tmp_path, raw if isinstance(raw, str) else data)
    code = main(["data", "check", str(ann), "--images", str(img_dir)])
    out = capsys.readouterr()
    assert code == (1 if severity == "error" else 0)
    expected_file = str(ann) if file == "json" else str(img_dir / file)
    assert any(
        line.startswith(f"{expected_file}: {record}: ") and fragment in line for line in out.out.splitlines()
    ), out.out
    assert "Traceback" not in out.out + out.err


def test_data_check_clean_exits_zero(tmp_path, capsys):
    data, img_dir = _clean(tmp_path)
    assert main(["data", "check", str(_write(tmp_path, data)), "--images", str(img_dir)]) == 0
    assert "clean" in capsys.readouterr().out


def test_train_validates_the_dataset_first(tmp_path, capsys):
    data, img_dir = _clean(tmp_path)
    data["annotations"][0]["bbox"] = [0, 0, float("nan"), 3]
    ann = _write(tmp_path, json.dumps(data))  # NaN is what json.dumps writes for float("nan")
    code = main(
        [
            "train",
            str(MINI),
            "--out",
            str(tmp_path / "run"),
            *TINY,
            f"data.train_json={ann}",
            f"data.train_images={img_dir}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "failed validation" in err and "annotation id 1" in err and str(ann) in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unknown_override_key_is_a_clean_error(tmp_path, capsys):
    assert main(["train", str(MINI), "--out", str(tmp_path), "solver.lrr=1"]) == 2
    assert "solver.lrr" in capsys.readouterr().err


def test_unavailable_torchvision_weights_are_a_clean_error(tmp_path, synth_data, monkeypatch, capsys):
    from urllib.error import URLError

    import torch

    def offline(*args, **kwargs):
        raise URLError("network disabled in tests")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    init = "model.init=ResNet18_Weights.IMAGENET1K_V1"
    assert main(["train", str(MINI), "--out", str(tmp_path / "run"), *TINY, *data, init]) == 2
    err = capsys.readouterr().err  # the loader's message (where to put the file), printed by the command
    assert "scratchlab: error: model.init: cannot load torchvision weights ResNet18_Weights" in err
    assert "download https://download.pytorch.org/models/resnet18" in err


def test_synth_command_is_deterministic(tmp_path):
    for name in ("a", "b"):
        assert (
            main(
                [
                    "data",
                    "synth",
                    "--out",
                    str(tmp_path / name),
                    "--num-train",
                    "3",
                    "--num-val",
                    "2",
                    "--image-size",
                    "48",
                    "--seed",
                    "7",
                ]
            )
            == 0
        )
    for split in ("train", "val"):
        rel = f"annotations/instances_{split}.json"
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    """`scratchlab data synth ... | head -0`: the pipe is closed before the command prints its JSON."""
    cmd = [sys.executable, "-m", "scratchlab", "data", "synth", "--out", str(tmp_path), "--num-train", "2"]
    proc = subprocess.Popen(
        [*cmd, "--num-val", "1", "--image-size", "32"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # before the interpreter has even imported scratchlab
    err = proc.stderr.read().decode()
    assert proc.wait() == 1 and "Traceback" not in err and "BrokenPipeError" not in err, err


def test_synth_classify_command_layout(tmp_path):
    assert (
        main(
            [
                "data",
                "synth-classify",
                "--out",
                str(tmp_path),
                "--classes",
                "3",
                "--per-class",
                "4",
                "--image-size",
                "32",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    train_dirs = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert len(train_dirs) == 3 and sorted(p.name for p in (tmp_path / "val").iterdir()) == train_dirs
    assert all(len(list((tmp_path / "train" / d).glob("*.png"))) == 4 for d in train_dirs)


def test_synth_commands_take_their_defaults_from_the_config_and_key_value_overrides(tmp_path, capsys):
    classify = tmp_path / "classify"
    assert main(["data", "synth-classify", "--out", str(classify), "--classes", "2", "image_size=24"]) == 0
    per_class = DEFAULTS["classify"]["synth"]["per_class"]
    assert all(len(list(d.glob("*.png"))) == per_class for d in (classify / "train").iterdir())
    detect = tmp_path / "detect"
    argv = ["data", "synth", "--out", str(detect), "--num-train", "4", "--num-val", "1"]
    assert main([*argv, "data.synth.image_size=40", "max_objects=1"]) == 0
    train = json.loads((detect / "annotations" / "instances_train.json").read_text())
    assert max(max(i["width"], i["height"]) for i in train["images"]) == 40
    per_image = [sum(a["image_id"] == i["id"] for a in train["annotations"]) for i in train["images"]]
    assert max(per_image) == 1
    capsys.readouterr()
    assert main(["data", "synth", "--out", str(tmp_path / "bad"), "max_object=1"]) == 2
    assert "data.synth.max_object" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "scratchlab", "--help"], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0 and "scratchlab" in res.stdout and "demo" in res.stdout


MINI_DIR = MINI.parent


@pytest.mark.parametrize(
    "name", sorted(p.name for p in MINI_DIR.glob("*.yaml") if p.name != "mask_rcnn_gn_pretrained.yaml")
)
def test_every_mini_config_trains_with_nothing_else(tmp_path, name):
    # No data keys: the run generates its own set (made tiny here, like the model).
    out = tmp_path / "run"
    assert (
        main(["train", str(MINI_DIR / name), "--out", str(out), *TINY, "solver.max_iter=2", "eval.period=0"])
        == 0
    )
    assert (out / "data" / "annotations" / "instances_train.json").is_file()
    assert json.loads((out / "final_metrics.json").read_text())["iteration"] == 2


def test_pretrained_mini_config_without_backbone_says_how_to_make_one(tmp_path, capsys):
    code = main(
        [
            "train",
            str(MINI_DIR / "mask_rcnn_gn_pretrained.yaml"),
            "--out",
            str(tmp_path),
            *TINY,
            "model.init=" + str(tmp_path / "missing" / "backbone.pth"),
        ]
    )
    assert code == 2 and "scratchlab pretrain classify" in capsys.readouterr().err


def test_recipes_check_then_write_then_check_again(tmp_path, capsys):
    from tests.conftest import ROOT

    folder = tmp_path / "configs" / "coco"
    shutil.copytree(ROOT / "configs" / "coco", folder)
    assert main(["recipes", str(folder), "--check"]) == 0
    base = folder / "base.yaml"
    base.write_text(base.read_text().replace("hflip_prob: 0.5", "hflip_prob: 0.0"))
    assert main(["recipes", str(folder), "--check"]) == 1
    assert "resolved/mask_rcnn_R50_FPN_gn_scratch_3x.yaml: differs" in capsys.readouterr().out
    assert main(["recipes", str(folder)]) == 0
    assert "hflip_prob: 0.0" in (folder / "resolved" / "mask_rcnn_R50_FPN_gn_scratch_3x.yaml").read_text()
    assert main(["recipes", str(folder), "--check"]) == 0
