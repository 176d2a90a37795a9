"""A generated ImageFolder classification set that shares image statistics with the detection set.

A class is a (object texture x shape family) pair, e.g. ``striped_star``: the same outlines, fills
and backgrounds as :mod:`scratchlab.data.synth`, but an image-level task with more classes, one
dominant object per image and some small clutter - as ImageNet relates to COCO.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from scratchlab.data.shapes import (
    OBJECT_TEXTURES,
    SHAPES,
    background,
    class_colour,
    finish,
    paint,
    place_outline,
    rasterize,
    unit_outline,
)
from scratchlab.data.synth import MARKER, prepare_output, write_canonical_json

__all__ = ["CLASS_TEXTURES", "MAX_CLASSES", "class_list", "make_synth_classify"]

# Texture part of a class: name used in the class name -> texture kind drawn. Only structured
# patterns that stay recognisable under random colours; noise and gradient remain clutter/background.
CLASS_TEXTURES: dict[str, str] = {
    "plain": "solid",
    "striped": "stripes",
    "checkered": "checker",
    "dotted": "dots",
}
MAX_CLASSES = len(SHAPES) * len(CLASS_TEXTURES)


def class_list(classes: int) -> list[tuple[str, str, str]]:
    """The first ``classes`` classes as ``(name, shape, texture_kind)``.

    Class ``k`` has shape ``k % 8`` and texture ``(k // 8 + k) % 4``: every (shape, texture) pair
    occurs once among the 32, and any prefix mixes shapes and textures, so even two classes differ
    in both.
    """
    if (
        isinstance(classes, bool)
        or not isinstance(classes, (int, np.integer))
        or not 2 <= classes <= MAX_CLASSES
    ):
        raise ValueError(
            f"make_synth_classify: classes must be an integer in 2..{MAX_CLASSES}, got {classes!r}"
        )
    tex_names = list(CLASS_TEXTURES)
    out = []
    for k in range(classes):
        shape = SHAPES[k % len(SHAPES)]
        tex = tex_names[(k // len(SHAPES) + k) % len(tex_names)]
        out.append((f"{tex}_{shape}", shape, CLASS_TEXTURES[tex]))
    return out


def _render(
    rng: np.random.Generator, size: int, shape: str, texture: str, class_colours: bool = False
) -> Any:
    """One image: textured background, small clutter, one large object of the class, maybe more clutter
    (``class_colours``: every shape in its family's base colour, as the detection set's option)."""
    canvas = background(rng, size, size)

    def colour(name: str) -> np.ndarray | None:
        return class_colour(name) if class_colours else None

    def clutter() -> None:
        d = rng.uniform(0.1, 0.25) * size
        name = SHAPES[int(rng.integers(len(SHAPES)))]
        outline = unit_outline(name, rng)
        cx, cy = rng.uniform(0.05, 0.95, 2) * size
        m = rasterize(place_outline(outline, cx, cy, d, rng.uniform(0, 2 * math.pi)), size, size)
        paint(
            canvas, m, rng, OBJECT_TEXTURES[int(rng.integers(len(OBJECT_TEXTURES)))], d, colour=colour(name)
        )

    for _ in range(int(rng.integers(0, 3))):
        clutter()
    d = rng.uniform(0.5, 0.9) * size
    cx, cy = (0.5 + rng.uniform(-0.15, 0.15, 2)) * size
    m = rasterize(place_outline(unit_outline(shape, rng), cx, cy, d, rng.uniform(0, 2 * math.pi)), size, size)
    paint(canvas, m, rng, texture, d, colour=colour(shape))
    if rng.random() < 0.3:  # a small thing in front, partly hiding the object
        clutter()
    return finish(canvas, rng)


def _check_count(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"make_synth_classify: {name} must be an integer >= {minimum}, got {value!r}")


def make_synth_classify(
    out: str | Path,
    classes: int,
    per_class: int,
    image_size: int,
    seed: int,
    val_per_class: int | None = None,
    class_colours: bool = False,
) -> dict:
    """Write ``out/{train,val}/<class_name>/NNNNNN.png`` and return a summary.

    ``val_per_class`` defaults to ``max(2, per_class // 5)``. Each image is drawn from its own stream
    seeded by ``(seed, split, class, index)``, so adding classes or images leaves the others unchanged.
    ``class_colours`` paints every shape in its family's base colour (see ``shapes.CLASS_COLOURS``).
    Raises ``ValueError`` for more than :data:`MAX_CLASSES` classes.
    """
    spec = class_list(classes)
    _check_count("per_class", per_class, 1)
    if val_per_class is None:
        val_per_class = max(2, per_class // 5)
    _check_count("val_per_class", val_per_class, 1)
    _check_count("image_size", image_size, 24)
    _check_count("seed", seed, 0)
    out = Path(out)
    prepare_output(out, "classify", ["train", "val", MARKER])
    summary: dict[str, Any] = {
        "kind": "classify",
        "out": str(out),
        "seed": seed,
        "image_size": image_size,
        "classes": [name for name, _, _ in spec],
        "class_colours": bool(class_colours),
    }
    for split_id, (split, count) in enumerate((("train", per_class), ("val", val_per_class))):
        for cls_id, (name, shape, texture) in enumerate(spec):
            cls_dir = out / split / name
            cls_dir.mkdir(parents=True)
            for index in range(count):
                rng = np.random.default_rng([seed, 10 + split_id, cls_id, index])  # 10+: apart from detection
                _render(rng, image_size, shape, texture, bool(class_colours)).save(
                    cls_dir / f"{index + 1:06d}.png", format="PNG", compress_level=1
                )
        summary[split] = {"dir": str(out / split), "per_class": count, "images": count * len(spec)}
    write_canonical_json(out / MARKER, summary)
    return summary
