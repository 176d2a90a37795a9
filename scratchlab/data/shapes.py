"""Drawing primitives shared by the generated detection and classification sets.

Both generated sets draw from the same shape outlines, object textures and background textures, so
that a network pre-trained on one has seen the image statistics of the other (as ImageNet relates to
COCO) while the tasks differ. Everything takes an explicit ``numpy.random.Generator`` so output is a
pure function of the seed.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "SHAPES",
    "OBJECT_TEXTURES",
    "CLASS_COLOURS",
    "class_colour",
    "unit_outline",
    "place_outline",
    "rasterize",
    "random_colour",
    "distinct_colour",
    "texture_patch",
    "background",
    "paint",
    "finish",
]

# Shape families. Order matters: the detection set's category ids are 1 + index.
SHAPES: tuple[str, ...] = ("circle", "ellipse", "square", "triangle", "star", "hexagon", "cross", "crescent")
# Fill patterns an object may carry; they are also used (at other scales) for backgrounds.
OBJECT_TEXTURES: tuple[str, ...] = ("solid", "stripes", "checker", "dots", "noise", "gradient")
# One base colour per shape family (same order as SHAPES), for sets whose classes keep their colour as
# many real categories do (``class_colours``): a cue a small network picks up within minutes, where
# shape alone under random colours takes thousands of steps.
CLASS_COLOURS: tuple[tuple[int, int, int], ...] = (
    (225, 45, 45),
    (45, 175, 65),
    (55, 85, 225),
    (235, 210, 45),
    (200, 60, 205),
    (45, 200, 210),
    (245, 135, 35),
    (235, 235, 235),
)


def _crescent(rng: np.random.Generator) -> np.ndarray:
    """Outline of a unit disc minus a disc of radius ``r`` centred at ``(d, 0)``."""
    r, d = rng.uniform(0.72, 0.85), rng.uniform(0.35, 0.5)
    x = (1 - r * r + d * d) / (2 * d)  # where the two circles cross
    y = math.sqrt(max(1 - x * x, 1e-6))
    t_out = math.atan2(y, x)
    outer = np.linspace(t_out, 2 * math.pi - t_out, 28)
    t_in = math.atan2(y, x - d)
    inner = np.linspace(2 * math.pi - t_in, t_in, 20)  # back along the inner circle, through its far side
    return np.concatenate(
        [np.c_[np.cos(outer), np.sin(outer)], np.c_[d + r * np.cos(inner), r * np.sin(inner)]]
    )


def unit_outline(name: str, rng: np.random.Generator) -> np.ndarray:
    """Vertices (N, 2) of a randomly proportioned ``name`` shape, centred, circumradius 1."""
    if name in ("circle", "ellipse"):
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        aspect = 1.0 if name == "circle" else rng.uniform(0.4, 0.62)
        pts = np.c_[np.cos(t), aspect * np.sin(t)]
    elif name == "square":
        a = rng.uniform(0.75, 1.0)
        pts = np.array([(-1, -a), (1, -a), (1, a), (-1, a)], dtype=float)
    elif name == "triangle":
        t = -math.pi / 2 + 2 * math.pi / 3 * np.arange(3) + rng.normal(0, 0.08, 3)
        pts = np.c_[np.cos(t), np.sin(t)] * rng.uniform(0.92, 1.08, (3, 1))
    elif name == "star":
        t = -math.pi / 2 + math.pi / 5 * np.arange(10)
        radius = np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.38, 0.5))
        pts = np.c_[np.cos(t), np.sin(t)] * radius[:, None]
    elif name == "hexagon":
        t = math.pi / 6 * rng.integers(0, 2) + math.pi / 3 * np.arange(6)
        pts = np.c_[np.cos(t), np.sin(t)]
    elif name == "cross":
        w = rng.uniform(0.28, 0.4)
        arm = np.array([(-w, -1), (w, -1), (w, -w)])  # one arm's end and the inner corner after it
        pts = np.concatenate([arm @ np.linalg.matrix_power(np.array([[0, 1], [-1, 0]]), k) for k in range(4)])
    elif name == "crescent":
        pts = _crescent(rng)
    else:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    # A little vertex jitter so instances of a family are not pixel-identical templates.
    pts = pts * (1 + rng.normal(0, 0.015, (len(pts), 1)))
    pts = pts - (pts.max(0) + pts.min(0)) / 2
    return pts / np.linalg.norm(pts, axis=1).max()


def place_outline(outline: np.ndarray, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    """Rotate ``outline`` by ``angle`` (radians), scale to diameter ``size`` px, centre at (cx, cy)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = outline @ np.array([[c, s], [-s, c]])
    return rot * (size / 2) + np.array([cx, cy])


def rasterize(poly: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean (height, width) mask of the filled polygon, clipped to the image."""
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in poly], fill=1)
    return np.asarray(canvas, dtype=bool)


def class_colour(shape: str) -> np.ndarray:
    """The base colour of shape family ``shape`` (float32 RGB)."""
    return np.asarray(CLASS_COLOURS[SHAPES.index(shape)], dtype=np.float32)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random RGB colour (float32, 0..255)."""
    return rng.uniform(0, 255, 3).astype(np.float32)


def distinct_colour(rng: np.random.Generator, other: np.ndarray, min_dist: float = 70.0) -> np.ndarray:
    """A random colour at least ``min_dist`` (RGB Euclidean) from ``other``, so a pattern stays visible."""
    for _ in range(20):
        c = random_colour(rng)
        if np.linalg.norm(c - other) >= min_dist:
            return c
    return (255 - other).astype(np.float32)  # the complement is always far enough


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: float) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled bicubically."""
    gh, gw = max(2, round(height / cells)), max(2, round(width / cells))
    grid = Image.fromarray(rng.random((gh, gw)).astype(np.float32), mode="F")
    out = np.asarray(grid.resize((width, height), Image.BICUBIC), dtype=np.float32)
    lo, hi = out.min(), out.max()
    return (out - lo) / max(hi - lo, 1e-6)


def _pattern(kind: str, rng: np.random.Generator, height: int, width: int, period: float) -> np.ndarray:
    """Blend weights in [0, 1] of shape (height, width) for texture ``kind`` with feature size ``period``."""
    period = max(period, 3.0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    v = -xx * math.sin(theta) + yy * math.cos(theta)
    if kind == "solid":
        return np.zeros((height, width), np.float32)
    if kind == "stripes":
        return (np.sin(2 * math.pi * u / period + rng.uniform(0, 2 * math.pi)) > 0).astype(np.float32)
    if kind == "checker":
        off = rng.uniform(0, period, 2)
        return ((np.floor((u + off[0]) / period) + np.floor((v + off[1]) / period)) % 2).astype(np.float32)
    if kind == "dots":
        fu = (u / period + rng.random()) % 1 - 0.5
        fv = (v / period + rng.random()) % 1 - 0.5
        return (fu * fu + fv * fv < rng.uniform(0.2, 0.32) ** 2).astype(np.float32)
    if kind == "noise":
        return _smooth_noise(rng, height, width, period)
    if kind == "gradient":
        span = max(float(u.max() - u.min()), 1.0)
        return (u - u.min()) / span
    raise ValueError(f"unknown texture {kind!r}; known: {', '.join(OBJECT_TEXTURES)}")


def texture_patch(
    kind: str,
    rng: np.random.Generator,
    height: int,
    width: int,
    c1: np.ndarray,
    c2: np.ndarray,
    period: float,
) -> np.ndarray:
    """An RGB float32 (height, width, 3) patch of texture ``kind`` mixing colours ``c1`` and ``c2``."""
    t = _pattern(kind, rng, height, width, period)[..., None]
    return c1 * (1 - t) + c2 * t


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured RGB float32 background: noise, stripes, gradient, blotches or checker."""
    scale = min(height, width) / 128
    kind = rng.choice(["noise", "stripes", "gradient", "blotches", "checker"])
    c1 = random_colour(rng)
    # Background patterns are lower contrast than objects on average, but not always.
    c2 = np.clip(c1 + rng.normal(0, rng.uniform(25, 80), 3), 0, 255).astype(np.float32)
    if kind == "noise":
        img = np.stack([_smooth_noise(rng, height, width, rng.uniform(8, 40) * scale) for _ in range(3)], -1)
        img = c1 + (img - 0.5) * rng.uniform(40, 140)
    elif kind == "blotches":
        t = _smooth_noise(rng, height, width, rng.uniform(10, 30) * scale) > rng.uniform(0.35, 0.65)
        t = t[..., None].astype(np.float32)
        img = c1 * (1 - t) + c2 * t
    elif kind == "gradient":
        img = texture_patch("gradient", rng, height, width, c1, c2, 1)
    else:
        img = texture_patch(str(kind), rng, height, width, c1, c2, rng.uniform(6, 24) * scale)
    # Faint large-scale shading on every background so no two flat regions are alike.
    shade = _smooth_noise(rng, height, width, 48 * scale)[..., None] - 0.5
    return np.clip(img + shade * rng.uniform(0, 50), 0, 255).astype(np.float32)


def paint(
    canvas: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    texture: str,
    size: float,
    min_contrast: float = 45.0,
    colour: np.ndarray | None = None,
) -> None:
    """Fill ``mask`` on ``canvas`` (H, W, 3 float32, in place) with a ``texture``.

    Without ``colour``, colours are random per instance so colour never identifies the class; with it
    (a class's base colour), the fill is that colour jittered, patterned with a darker shade of it.
    Colours are re-drawn a few times when the fill's mean would match what lies beneath it, so objects
    stay visible.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    sub = mask[y0:y1, x0:x1]
    under = canvas[y0:y1, x0:x1][sub].mean(0)
    for _ in range(6):
        if colour is None:
            c1 = random_colour(rng)
            c2 = distinct_colour(rng, c1)
        else:
            c1 = np.clip(colour + rng.normal(0, 18, 3), 0, 255).astype(np.float32)
            c2 = (c1 * rng.uniform(0.45, 0.7)).astype(np.float32)
        patch = texture_patch(texture, rng, y1 - y0, x1 - x0, c1, c2, size * rng.uniform(0.12, 0.22))
        if np.linalg.norm(patch[sub].mean(0) - under) >= min_contrast:
            break
    canvas[y0:y1, x0:x1][sub] = patch[sub]


def finish(canvas: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Add sensor-like noise and a slight blur (soft edges), and return an 8-bit RGB image."""
    noisy = canvas + rng.normal(0, rng.uniform(1, 7), canvas.shape).astype(np.float32)
    img = Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8), mode="RGB")
    if rng.random() < 0.6:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    return img
