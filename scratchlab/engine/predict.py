"""``scratchlab predict``: a trained detector on new images; each image drawn with its detections, a
COCO results JSON, and a one-line summary per image.

``model_final.pth`` carries the config, the class names and the category ids next to the weights, so a
run directory (or that one file) is all prediction needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torchvision.transforms.v2.functional import pil_to_tensor

from .. import run_dir
from ..config import config_from_yaml
from ..data.image_io import ImageLoadError, load_image
from ..evaluation import instances_to_coco_results
from ..models import build_model
from ..models.weights.read import as_state_dict
from ..utils.io import write_json
from ..utils.runtime import device_named
from ..vis.draw import count_phrase, draw_instances, refuse_input_folder, save_image, unique_path
from .inference import binary_mask_paste

__all__ = ["IMAGE_SUFFIXES", "Predictor", "list_images", "load_predictor", "predict"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
NEEDED = ("model", "config", "classes", "category_ids")


@dataclass
class Predictor:
    """A detector in eval mode with what its outputs mean: ``classes[k-1]`` / ``category_ids[k-1]``
    name label ``k``."""

    model: torch.nn.Module
    cfg: DictConfig
    classes: list[str]
    category_ids: list[int]
    device: torch.device


def _weights_file(path: Path) -> Path:
    if path.is_dir():
        if not (path / run_dir.MODEL_FINAL).is_file():
            last = path / run_dir.CHECKPOINTS / run_dir.LAST
            unfinished = f"; for this unfinished run, pass {last}" if last.is_file() else ""
            raise FileNotFoundError(
                f"{path}: no model_final.pth (a run directory writes it when training "
                f"finishes; pass a run that has finished, or the .pth file itself{unfinished})"
            )
        return path / run_dir.MODEL_FINAL
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such run directory or weights file")
    return path


def load_predictor(run_or_weights: str | Path, device: str = "auto") -> Predictor:
    """Build the detector a run's ``model_final.pth`` describes and load its weights (all of them:
    a missing or unexpected key is an error). ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda``."""
    path = _weights_file(Path(run_or_weights))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"{path}: cannot read checkpoint: {type(exc).__name__}: {exc}") from exc
    missing = [k for k in NEEDED if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(
            f"{path}: lacks {missing}; prediction needs a model_final.pth written by "
            "`scratchlab train` (it stores the config and the class names with the weights)"
        )
    cfg = config_from_yaml(ckpt["config"], f"{path} (config)")
    cfg.model.init = "random"  # the weights come from the checkpoint, not from the run's init source
    model = build_model(cfg, num_classes=len(ckpt["classes"]))
    state = as_state_dict(ckpt["model"], str(path))  # every tensor checked before anything copies it
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # torch lists each mismatch on a line of its own: one line here
        why = "; ".join(line.strip() for line in str(exc).splitlines()[1:] if line.strip())
        raise ValueError(f"{path}: weights do not fit the model its config builds: {why[:500]}") from exc
    dev = device_named(device)
    return Predictor(
        model.to(dev).eval(), cfg, list(ckpt["classes"]), [int(c) for c in ckpt["category_ids"]], dev
    )


def list_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Image files named directly, and the image files (by suffix, sorted) directly inside folders."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such image file or folder")
    if not files:
        raise ValueError(
            f"no images found in {', '.join(map(str, inputs))} "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files


@torch.no_grad()
def _detect(
    p: Predictor, image: torch.Tensor, score_thresh: float
) -> tuple[dict[str, torch.Tensor], float | None]:
    """The detections scoring ``score_thresh`` or more, on the CPU (masks binary, ``> 0.5``), and the
    best score of all of them (None when the model returned none): the number to lower the threshold to
    when nothing passes."""
    with binary_mask_paste(p.model):
        out = p.model([image.to(p.device)])[0]
    best = float(out["scores"].max()) if len(out["scores"]) else None
    keep = out["scores"] >= score_thresh
    kept = {k: v[keep.to(v.device)].cpu() for k, v in out.items()}  # binary masks are on the CPU already
    return kept, best


def _summary(names: list[str], best: float | None, score_thresh: float) -> str:
    if names:
        return f"{count_phrase(names)} (best {best:.2f}) at score >= {score_thresh}"
    below = "" if best is None else f" (the best scored {best:.2f})"
    return f"no detection at score >= {score_thresh}{below}"


def _unreadable(file: Path, exc: ImageLoadError, on_image: Callable[[str], Any] | None) -> dict[str, Any]:
    summary = f"{exc}; skipped"  # the loader's message names the file
    if on_image is not None:
        on_image(summary)
    empty = torch.zeros(0)
    return {
        "file": str(file),
        "image_id": None,
        "boxes": torch.zeros(0, 4),
        "scores": empty,
        "labels": empty.long(),
        "classes": [],
        "masks": None,
        "drawn": None,
        "keypoints": None,
        "summary": summary,
        "error": str(exc),
    }


def predict(
    run_or_weights: str | Path | Predictor,
    images: Iterable[str | Path],
    out: str | Path | None = None,
    score_thresh: float = 0.5,
    device: str = "auto",
    on_image: Callable[[str], Any] | None = None,
) -> list[dict[str, Any]]:
    """Detect objects in ``images`` (files or folders) with a trained run.

    With ``out``: each image is written there with its masks, boxes, class names and scores drawn,
    plus ``results.json`` (COCO results: one record per detection, ``image_id`` as in ``images.json``)
    and ``images.json`` (the COCO ``images`` and ``categories`` those ids refer to, so
    ``COCO("images.json").loadRes("results.json")`` works). ``on_image`` receives a one-line summary per
    image. Returns, per image, ``file``, ``image_id``, ``boxes`` (XYXY), ``scores``, ``labels``,
    ``classes`` (names), ``masks`` ([N, H, W] bool, Mask R-CNN only), ``keypoints`` ([N, K, 3], Keypoint
    R-CNN only), ``drawn`` (path or None), ``summary``, ``error``: None, or why the file could not be
    read (such an image is skipped, with no detections and ``image_id`` None; the others still run).

    Example::

        from scratchlab import predict
        for p in predict("runs/mini", ["photos/"], out="runs/mini/predictions", score_thresh=0.5):
            print(p["summary"])
    """
    p = run_or_weights if isinstance(run_or_weights, Predictor) else load_predictor(run_or_weights, device)
    out_dir = Path(out) if out is not None else None
    inputs = list(images)  # read twice: an iterator would be spent by the first
    files = list_images(inputs)
    if out_dir is not None:
        refuse_input_folder(out_dir, [*files, *inputs], "predict")
    taken: set[str] = set()
    results, records, images_json = [], [], []
    for file in files:
        try:
            pil = load_image(file)
        except ImageLoadError as exc:  # one broken file in a folder of photos must not cost the others
            results.append(_unreadable(file, exc, on_image))
            continue
        image_id = len(images_json) + 1
        det, best = _detect(p, pil_to_tensor(pil).float() / 255, score_thresh)
        labels = det["labels"].tolist()
        names = [p.classes[label - 1] for label in labels]
        masks = det["masks"][:, 0] if "masks" in det else None
        drawn = None
        if out_dir is not None:
            captions = [f"{n} {s:.2f}" for n, s in zip(names, det["scores"].tolist(), strict=True)]
            drawn = save_image(
                draw_instances(pil, det["boxes"], labels, captions, masks, keypoints=det.get("keypoints")),
                unique_path(out_dir, file.name, taken),
            )
        records += instances_to_coco_results(image_id, det, p.category_ids)
        images_json.append({"id": image_id, "file_name": str(file), "width": pil.width, "height": pil.height})
        summary = f"{file}: {_summary(names, best, score_thresh)}" + (f" -> {drawn}" if drawn else "")
        if on_image is not None:
            on_image(summary)
        results.append(
            {
                "file": str(file),
                "image_id": image_id,
                "boxes": det["boxes"],
                "scores": det["scores"],
                "labels": det["labels"],
                "classes": names,
                "masks": masks,
                "drawn": drawn,
                "keypoints": det.get("keypoints"),
                "summary": summary,
                "error": None,
            }
        )
    if out_dir is not None:
        categories = [{"id": c, "name": n} for c, n in zip(p.category_ids, p.classes, strict=True)]
        write_json(
            out_dir / "images.json", {"images": images_json, "categories": categories, "annotations": []}
        )
        write_json(out_dir / "results.json", records)
    return results
