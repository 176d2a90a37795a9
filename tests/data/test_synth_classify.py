"""The generated classification set: ImageFolder layout, counts, determinism, distinct classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scratchlab.data.synth_classify import MAX_CLASSES, class_list, make_synth_classify


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_layout_counts_and_default_val(tmp_path: Path) -> None:
    summary = make_synth_classify(tmp_path, classes=5, per_class=3, image_size=32, seed=1)
    names = summary["classes"]
    assert len(names) == len(set(names)) == 5
    for split, n in (("train", 3), ("val", 2)):  # val default: max(2, 3 // 5)
        assert sorted(p.name for p in (tmp_path / split).iterdir()) == sorted(names)
        for name in names:
            files = sorted((tmp_path / split / name).glob("*.png"))
            assert len(files) == n
            with Image.open(files[0]) as img:
                assert img.size == (32, 32) and img.mode == "RGB"
        assert summary[split]["images"] == 5 * n
    make_synth_classify(tmp_path / "v", classes=2, per_class=20, image_size=32, seed=1, val_per_class=1)
    assert len(list((tmp_path / "v" / "val").rglob("*.png"))) == 2
    assert len(list((tmp_path / "v" / "train").rglob("*.png"))) == 40


def test_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        make_synth_classify(tmp_path / name, classes=3, per_class=2, image_size=32, seed=seed)
    a, b, c = (_files(tmp_path / n) for n in "abc")
    assert a == b
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a)


def test_adding_classes_keeps_existing_ones(tmp_path: Path) -> None:
    make_synth_classify(tmp_path / "few", classes=2, per_class=2, image_size=32, seed=0)
    make_synth_classify(tmp_path / "more", classes=4, per_class=2, image_size=32, seed=0)
    few, more = _files(tmp_path / "few"), _files(tmp_path / "more")
    assert all(more[k] == v for k, v in few.items())


def test_all_classes_are_distinct_shape_texture_pairs() -> None:
    spec = class_list(MAX_CLASSES)
    assert MAX_CLASSES >= 30
    assert len({(shape, tex) for _, shape, tex in spec}) == MAX_CLASSES
    two = class_list(2)
    assert two[0][1] != two[1][1] and two[0][2] != two[1][2]  # even two classes differ in shape and texture
    for bad in (1, MAX_CLASSES + 1):
        with pytest.raises(ValueError, match="classes"):
            class_list(bad)


def _edge_density(path: Path) -> float:
    g = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    return float((np.abs(np.diff(g, axis=0)) > 40).mean() + (np.abs(np.diff(g, axis=1)) > 40).mean())


def test_class_texture_is_drawn(tmp_path: Path) -> None:
    """Images labelled striped/checkered carry far more strong edges than plain ones of the same shapes."""
    make_synth_classify(tmp_path, classes=MAX_CLASSES, per_class=3, image_size=48, seed=0, val_per_class=1)
    density: dict[str, list[float]] = {}
    for cls, _, tex in class_list(MAX_CLASSES):
        density.setdefault(tex, []).extend(_edge_density(p) for p in (tmp_path / "train" / cls).glob("*.png"))
    plain = np.mean(density["solid"])
    assert np.mean(density["stripes"]) > 1.5 * plain
    assert np.mean(density["checker"]) > 1.5 * plain


def test_bad_arguments_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="classes"):
        make_synth_classify(tmp_path, classes=MAX_CLASSES + 1, per_class=2, image_size=32, seed=0)
    with pytest.raises(ValueError, match="per_class"):
        make_synth_classify(tmp_path, classes=3, per_class=0, image_size=32, seed=0)
    with pytest.raises(ValueError, match="image_size"):
        make_synth_classify(tmp_path, classes=3, per_class=2, image_size=8, seed=0)
