"""An Ultralytics dataset YAML: its class names, root folder, train/val image lists and keypoint shape.

The rules are Ultralytics' own: ``path`` is the dataset root (relative to the YAML's folder here, the
YAML's folder when absent); ``train`` / ``val`` are folders of images (searched recursively) or ``.txt``
lists of image paths (``./x`` relative to the list's folder, other relative lines to the root), or lists
of those; an entry ``../x`` that does not exist is tried as ``x`` (Roboflow's exports). Every image must
lie inside the root: an absolute or ``..`` path that leaves it is refused, naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ._common import IMAGE_EXTENSIONS, ConvertError, list_images

SPLITS = ("train", "val")


@dataclass
class Keypoints:
    """``kpt_shape`` [K, D] (D = 2: x y, D = 3: x y visibility) and the COCO category fields it gives."""

    count: int
    dims: int
    names: list[str]
    flip_map: list[list[str]] = field(default_factory=list)


@dataclass
class Dataset:
    """What the YAML says: names in index order, the root, each split's images, keypoints if any."""

    yaml_file: Path
    names: list[str]
    root: Path
    splits: dict[str, list[Path]] = field(default_factory=dict)
    keypoints: Keypoints | None = None
    warnings: list[str] = field(default_factory=list)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConvertError(f"{path}: not a readable YAML file: {err}") from err
    if not isinstance(data, dict):
        raise ConvertError(f"{path}: expected a mapping with 'names:' (an Ultralytics dataset YAML)")
    return data


def yaml_names(path: Path, data: dict[str, Any]) -> list[str]:
    """``names:`` as a list or as ``{index: name}``, in index order (index i becomes category id i + 1)."""
    names = data.get("names")
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise ConvertError(f"{path}: 'names' keys must be class indices 0..K-1") from None
        if keys != list(range(len(keys))):
            raise ConvertError(f"{path}: 'names' indices must be 0..{len(keys) - 1} without gaps, got {keys}")
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if not isinstance(names, list) or not names:
        raise ConvertError(f"{path}: needs a non-empty 'names:' list (or {{index: name}} map)")
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        raise ConvertError(f"{path}: nc={nc} but 'names' lists {len(names)} classes")
    return [str(n).strip() for n in names]


def inside(root: Path, rel: str, where: str) -> Path:
    """``root / rel`` when ``rel`` is relative and stays inside ``root`` (checked on the path's text, so
    a symlinked folder inside the dataset is fine); else a ConvertError naming ``where``."""
    if os.path.isabs(rel) or PurePosixPath(rel.replace("\\", "/")).is_absolute():
        raise ConvertError(f"{where}: {rel!r} is an absolute path; paths must stay inside the dataset {root}")
    norm = os.path.normpath(rel)
    if norm == ".." or norm.startswith(".." + os.sep):
        raise ConvertError(f"{where}: {rel!r} leaves the dataset folder {root}")
    return root / norm


def label_path(root: Path, image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder of the path becomes ``labels``, the suffix ``.txt``."""
    parts = list(image.relative_to(root).parts)
    last = max((i for i, p in enumerate(parts[:-1]) if p == "images"), default=None)
    if last is not None:
        parts[last] = "labels"
    return root.joinpath(*parts).with_suffix(".txt")


def _root(yaml_file: Path, data: dict[str, Any], default: Path) -> Path:
    path = data.get("path")
    if path is None or str(path).strip() == "":
        return default
    root = Path(str(path)).expanduser()
    return root if root.is_absolute() else yaml_file.parent / root


def _list_file(root: Path, txt: Path) -> list[Path]:
    try:
        lines = txt.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConvertError(f"{txt}: not a readable image list: {err}") from err
    images = []
    for i, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry:
            continue
        where = f"{txt}:{i}"
        if entry.startswith("./"):  # Ultralytics: relative to the list's own folder
            entry = os.path.relpath(txt.parent / entry[2:], root)
        image = inside(root, entry, where)
        if image.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ConvertError(f"{where}: {line.strip()!r} is not an image file name")
        if not image.is_file():
            raise ConvertError(f"{where}: no such image {image}")
        images.append(image)
    return images


def _split_images(root: Path, yaml_file: Path, key: str, value: Any) -> list[Path]:
    entries = value if isinstance(value, list) else [value]
    images: list[Path] = []
    for entry in map(str, entries):
        where = f"{yaml_file}: {key}"
        if entry.startswith("../") and (root / entry[3:]).exists():  # Roboflow: YAML inside the root
            entry = entry[3:]
        target = inside(root, entry, where)
        if target.is_dir():
            images += list_images(target, recursive=True)
        elif target.is_file() and target.suffix == ".txt":
            images += _list_file(root, target)
        else:
            raise ConvertError(
                f"{where}: {entry} is neither an image folder nor a .txt image list ({target})"
            )
    if not images:
        raise ConvertError(f"{yaml_file}: {key}: {value} holds no image files")
    return sorted(set(images))


def _keypoints(yaml_file: Path, data: dict[str, Any]) -> Keypoints | None:
    shape = data.get("kpt_shape")
    if shape is None:
        return None
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape)):
        raise ConvertError(f"{yaml_file}: kpt_shape must be [K, 2] or [K, 3], got {shape!r}")
    count, dims = shape
    if count < 1 or dims not in (2, 3):
        raise ConvertError(f"{yaml_file}: kpt_shape must be [K, 2] or [K, 3] with K >= 1, got {shape!r}")
    names = data.get("kpt_names")
    # Ultralytics: {class index: [keypoint names]}, also seen as [[keypoint names]]; one list for all classes
    if isinstance(names, dict) and names:
        names = names[sorted(names)[0]]
    elif isinstance(names, list) and names and isinstance(names[0], list):
        names = names[0]
    names = [str(n) for n in names] if isinstance(names, list) else [f"kp{i}" for i in range(count)]
    if len(names) != count or len(set(names)) != count:
        raise ConvertError(f"{yaml_file}: kpt_names must be {count} distinct names, got {names}")
    flip = data.get("flip_idx")
    if flip is None:
        return Keypoints(count, dims, names)
    if sorted(flip) != list(range(count)) or any(flip[flip[i]] != i for i in range(count)):
        raise ConvertError(
            f"{yaml_file}: flip_idx must give each of the {count} keypoints its mirror (a permutation that "
            f"is its own inverse), got {flip}"
        )
    pairs = [[names[i], names[j]] for i, j in enumerate(flip) if i < j]
    return Keypoints(count, dims, names, pairs)


def read_dataset(yaml_file: Path, default_root: Path) -> Dataset:
    """The dataset ``yaml_file`` describes; ``default_root`` is the root when it has no ``path``."""
    data = read_yaml(yaml_file)
    names = yaml_names(yaml_file, data)
    root = _root(yaml_file, data, default_root)
    ds = Dataset(yaml_file, names, root, keypoints=_keypoints(yaml_file, data))
    if not root.is_dir():  # a YAML copied next to its data often keeps the path of the machine it came from
        ds.warnings.append(
            f"{yaml_file}: path: {data['path']} is not a folder ({root}; a relative path is taken from the "
            f"YAML's folder); reading the dataset from {default_root}"
        )
        ds.root = root = default_root
    given = [k for k in SPLITS if data.get(k)]
    if given == ["val"]:
        raise ConvertError(f"{yaml_file}: has val: but no train:")
    for key in given:
        ds.splits[key] = _split_images(root, yaml_file, key, data[key])
    if len(given) == 2:
        both = set(ds.splits["train"]) & set(ds.splits["val"])
        if both:
            ds.warnings.append(f"{yaml_file}: {len(both)} image(s) are in both train and val")
    if data.get("test"):
        ds.warnings.append(f"{yaml_file}: the test split is not converted (train and val are)")
    return ds
