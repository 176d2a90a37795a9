"""Faults and hostile input through the command line, as a user meets them: each refusal is one line on
stderr naming the file, no traceback, and every file that was there before is still there, unchanged."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import MINI, ROOT, TINY


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "scratchlab", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def cli(capsys, *args: str) -> subprocess.CompletedProcess:
    """``scratchlab ARGS`` in this process (no interpreter start-up): exit code, stdout and stderr."""
    from scratchlab.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["scratchlab", *args], code, out, err)


def checksums(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> SHA-256)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_kept(before: dict[str, str], folder: Path) -> None:
    """Every file of ``before`` (``checksums``) is still in ``folder`` with the same content."""
    now = checksums(folder)
    assert {name: now.get(name) for name in before} == before


def one_line_error(res: subprocess.CompletedProcess, *named: str) -> str:
    """The refusal's stderr: a single ``scratchlab:`` line naming each of ``named``, no traceback."""
    assert res.returncode != 0, res.stdout
    lines = [line for line in res.stderr.splitlines() if line.startswith("scratchlab:")]
    assert "Traceback" not in res.stderr, res.stderr
    assert len(lines) == 1, res.stderr
    assert res.stderr.rstrip().splitlines()[-1] == lines[0], "the error is one line, the last one"
    for name in named:
        assert name in lines[0], lines[0]
    return lines[0]


def train_args(synth_data: dict[str, str], out: Path, *extra: str) -> list[str]:
    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    return ["train", str(MINI), "--out", str(out), *extra, *TINY, *data, "eval.period=0"]


@pytest.mark.slow
def test_resume_with_every_checkpoint_unreadable_refuses_and_deletes_nothing(tmp_path, synth_data):
    import argparse

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    (ckpts / "last.pth").write_bytes(b"PK\x03\x04 truncated")
    torch.save({"x": argparse.Namespace(cmd="echo owned")}, ckpts / "previous.pth")  # weights_only refuses it
    (tmp_path / "metrics.jsonl").write_text('{"iteration": 2, "loss": 1.0}\n')
    before = checksums(tmp_path)
    res = run_cli(*train_args(synth_data, tmp_path, "--resume"))
    one_line_error(res, str(ckpts), "last.pth", "previous.pth", "kept")
    assert_kept(before, tmp_path)


@pytest.fixture
def photos(tmp_path, synth_data) -> Path:
    """A copy of the tiny training images with their annotation file, in a folder of the test's own."""
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(synth_data["train_images"], folder)
    shutil.copy(synth_data["train_json"], tmp_path / "train.json")
    return folder


@pytest.mark.parametrize("out", ["photos/.", "link"])
def test_data_show_refuses_to_draw_over_its_input_images(tmp_path, photos, out, capsys):
    (tmp_path / "link").symlink_to(photos)
    before = checksums(photos)
    res = run_cli(
        "data", "show", str(tmp_path / "train.json"), "--images", str(photos), "--out", str(tmp_path / out)
    )
    one_line_error(res, "--out", str(tmp_path / out))
    assert checksums(photos) == before


@pytest.mark.parametrize("which", ["folder", "file"])
def test_predict_refuses_to_draw_over_its_input_images(tmp_path, tiny_run, photos, which, capsys):
    image = next(photos.iterdir())
    before = checksums(photos)
    res = run_cli(
        "predict", str(tiny_run[0]), str(photos if which == "folder" else image), "--out", str(photos)
    )
    one_line_error(res, "--out", str(photos))
    assert checksums(photos) == before


@pytest.mark.slow
def test_two_trains_on_one_out_exactly_one_runs(tmp_path, synth_data):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "scratchlab", *train_args(synth_data, tmp_path, "solver.iters_1x=100000")]
    runs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in "ab"
    ]
    try:
        deadline = time.monotonic() + 120
        while all(r.poll() is None for r in runs) and time.monotonic() < deadline:
            time.sleep(0.2)
        refused = [r for r in runs if r.poll() is not None]
        assert len(refused) == 1, "exactly one of the two stops; the other trains on"
        res = subprocess.CompletedProcess(cmd, refused[0].returncode, "", refused[0].stderr.read())
        running = next(r for r in runs if r is not refused[0])
        one_line_error(res, str(tmp_path), "in use by", f"pid {running.pid} on host")
    finally:
        for r in runs:
            r.kill()
            r.communicate()


def _via_file(src: Path, filename: str) -> Path:
    """A one-region VIA export listing ``filename`` (which may point anywhere)."""
    import json

    region = {
        "shape_attributes": {"name": "rect", "x": 2, "y": 2, "width": 8, "height": 8},
        "region_attributes": {},
    }
    meta = {"k": {"filename": filename, "size": 1, "regions": [region], "file_attributes": {}}}
    src.mkdir(parents=True, exist_ok=True)
    (src / "via.json").write_text(json.dumps(meta))
    return src / "via.json"


@pytest.mark.parametrize("name", ["../outside.png", "sub/../../outside.png", "ABSOLUTE", "..\\outside.png"])
def test_via_convert_refuses_image_names_outside_its_folder(tmp_path, name, capsys):
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "outside.png")
    name = str(tmp_path / "outside.png") if name == "ABSOLUTE" else name
    via = _via_file(tmp_path / "src", name)
    res = run_cli(
        "data", "convert", "--from", "via", str(via), "--out", str(tmp_path / "coco"), "--class-name", "x"
    )
    one_line_error(res, str(via), "file_name")
    assert not (tmp_path / "coco").exists()


@pytest.mark.parametrize("command", ["train", "predict", "data show", "data synth", "data convert", "study"])
def test_an_out_naming_an_existing_file_is_one_line(tmp_path, tiny_run, synth_data, command, capsys):
    out = tmp_path / "taken.txt"
    out.write_text("the user's file")
    args = {
        "train": train_args(synth_data, out),
        "predict": ["predict", str(tiny_run[0]), synth_data["val_images"], "--out", str(out)],
        "data show": [
            "data",
            "show",
            synth_data["val_json"],
            "--images",
            synth_data["val_images"],
            "--out",
            str(out),
        ],
        "data synth": [
            "data",
            "synth",
            "--out",
            str(out),
            "--num-train",
            "1",
            "--num-val",
            "1",
            "--image-size",
            "32",
        ],
        "data convert": [
            "data",
            "convert",
            "--from",
            "via",
            str(_via_file(tmp_path / "src", "a.png")),
            "--out",
            str(out),
        ],
        "study": ["study", str(ROOT / "configs" / "studies" / "mini_architectures.yaml"), "--out", str(out)],
    }[command]
    if command == "data convert":
        from PIL import Image

        Image.new("RGB", (32, 32)).save(tmp_path / "src" / "a.png")
        args += ["--class-name", "x"]
    one_line_error(cli(capsys, *args), str(out))
    assert out.read_text() == "the user's file"


def test_data_show_skips_and_names_unreadable_images(tmp_path, photos, capsys):
    broken = sorted(photos.iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:30])
    before = checksums(photos)
    res = cli(
        capsys,
        "data",
        "show",
        str(tmp_path / "train.json"),
        "--images",
        str(photos),
        "--out",
        str(tmp_path / "drawn"),
    )
    assert res.returncode == 1
    one_line_error(res, broken.name, "unreadable")
    drawn = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert broken.name not in drawn and len(drawn) == len(before) - 1
    assert checksums(photos) == before


@pytest.mark.parametrize("hostile", ["0-d cls_score", "1-d conv1", "stride-0 view"])
def test_predict_with_a_hostile_model_final_is_one_line(tmp_path, tiny_run, synth_data, hostile, capsys):
    ckpt = torch.load(tiny_run[0] / "model_final.pth", weights_only=True)
    state = ckpt["model"]
    cls = next(k for k in state if k.endswith("cls_score.weight"))
    conv1 = next(k for k in state if k.endswith("conv1.weight"))
    if hostile == "0-d cls_score":
        state[cls] = torch.tensor(1.0)
    elif hostile == "1-d conv1":
        state[conv1] = torch.zeros(5)
    else:
        state[conv1] = torch.zeros(1).as_strided((64, 3, 100000, 100000), (0, 0, 0, 0))
    path = tmp_path / "model_final.pth"
    torch.save(ckpt, path)
    res = cli(capsys, "predict", str(path), synth_data["val_images"], "--out", str(tmp_path / "drawn"))
    one_line_error(res, str(path))
    assert not (tmp_path / "drawn").exists()
