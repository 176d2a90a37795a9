"""Write a scratchlab/torchvision-named ResNet state dict in the other formats' names, as those tools
save them: timm (same names, training-checkpoint wrapper), Detectron's Caffe2 blobs and Detectron2."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

EPS = 1e-5
C2_NORM = {"bn1": "branch2a", "bn2": "branch2b", "bn3": "branch2c", "downsample.1": "branch1"}
C2_CONV = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "downsample.0": "branch1"}


def to_caffe2(sd: dict[str, torch.Tensor], norm: str) -> dict[str, object]:
    """Caffe2 blobs (numpy): BN folded to ``_bn_s``/``_bn_b`` (``norm='bn'``) or ``_gn_s``/``_gn_b``."""
    blobs = {}
    for key, value in sd.items():
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        m = re.match(r"^layer(\d)\.(\d+)\.(conv\d|bn\d|downsample\.[01])\.(weight|bias)$", key)
        if key == "conv1.weight":
            name = "conv1_w"
        elif key.startswith("bn1."):
            name, value = (
                f"res_conv1_{norm}_" + ("s" if key.endswith("weight") else "b"),
                _fold(sd, "bn1", key, norm),
            )
        elif m:
            stage, block, module, param = m.groups()
            prefix = f"res{int(stage) + 1}_{block}"
            if module in C2_CONV:
                name = f"{prefix}_{C2_CONV[module]}_w"
            else:
                name = f"{prefix}_{C2_NORM[module]}_{norm}_" + ("s" if param == "weight" else "b")
                value = _fold(sd, key.rsplit(".", 1)[0], key, norm)
        else:
            raise AssertionError(key)
        blobs[name] = value.numpy().copy()
    return blobs


def _fold(sd, module: str, key: str, norm: str) -> torch.Tensor:
    """A BN's inference affine, as Caffe2's AffineChannel stores it; GN affines are stored as they are."""
    if norm == "gn":
        return sd[key]
    scale = sd[f"{module}.weight"] / torch.sqrt(sd[f"{module}.running_var"] + EPS)
    if key.endswith("weight"):
        return scale
    return sd[f"{module}.bias"] - sd[f"{module}.running_mean"] * scale


def to_detectron2(
    sd: dict[str, torch.Tensor], prefix: str = "backbone.bottom_up."
) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sd.items():
        if key.endswith("num_batches_tracked"):
            continue
        k = re.sub(r"^conv1\.", "stem.conv1.", key)
        k = re.sub(r"^bn1\.", "stem.conv1.norm.", k)
        k = re.sub(r"^layer(\d)\.", lambda m: f"res{int(m.group(1)) + 1}.", k)
        k = re.sub(r"\.bn(\d)\.", r".conv\1.norm.", k)
        k = k.replace(".downsample.0.", ".shortcut.").replace(".downsample.1.", ".shortcut.norm.")
        out[prefix + k] = value
    return out


def write_pickle(obj, path: Path) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def bgr(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same network fed BGR images: conv1's input channels reversed (what a Caffe2 file holds)."""
    return {**sd, "conv1.weight": sd["conv1.weight"].flip(1).contiguous()}


def detector_to_detectron2(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A scratchlab (torchvision) GN Mask R-CNN state dict in Detectron2's names and class layout."""
    body = {k[len("backbone.body.") :]: v for k, v in sd.items() if k.startswith("backbone.body.")}
    out = to_detectron2(bgr(body))
    rules = [
        (r"^backbone\.fpn\.inner_blocks\.(\d)\.0\.", lambda m: f"backbone.fpn_lateral{int(m.group(1)) + 2}."),
        (
            r"^backbone\.fpn\.inner_blocks\.(\d)\.1\.",
            lambda m: f"backbone.fpn_lateral{int(m.group(1)) + 2}.norm.",
        ),
        (r"^backbone\.fpn\.layer_blocks\.(\d)\.0\.", lambda m: f"backbone.fpn_output{int(m.group(1)) + 2}."),
        (
            r"^backbone\.fpn\.layer_blocks\.(\d)\.1\.",
            lambda m: f"backbone.fpn_output{int(m.group(1)) + 2}.norm.",
        ),
        (r"^rpn\.head\.conv\.0\.0\.", "proposal_generator.rpn_head.conv."),
        (r"^rpn\.head\.cls_logits\.", "proposal_generator.rpn_head.objectness_logits."),
        (r"^rpn\.head\.bbox_pred\.", "proposal_generator.rpn_head.anchor_deltas."),
        (r"^roi_heads\.box_head\.([0-3])\.0\.", lambda m: f"roi_heads.box_head.conv{int(m.group(1)) + 1}."),
        (
            r"^roi_heads\.box_head\.([0-3])\.1\.",
            lambda m: f"roi_heads.box_head.conv{int(m.group(1)) + 1}.norm.",
        ),
        (r"^roi_heads\.box_head\.5\.", "roi_heads.box_head.fc1."),
        (
            r"^roi_heads\.mask_head\.(\d)\.0\.",
            lambda m: f"roi_heads.mask_head.mask_fcn{int(m.group(1)) + 1}.",
        ),
        (
            r"^roi_heads\.mask_head\.(\d)\.1\.",
            lambda m: f"roi_heads.mask_head.mask_fcn{int(m.group(1)) + 1}.norm.",
        ),
        (r"^roi_heads\.mask_predictor\.conv5_mask\.", "roi_heads.mask_head.deconv."),
    ]
    for key, value in sd.items():
        if key.startswith("backbone.body."):
            continue
        if key.startswith("roi_heads.box_predictor.cls_score."):  # background first -> last
            out[key] = torch.cat([value[1:], value[:1]])
        elif key.startswith("roi_heads.box_predictor.bbox_pred."):  # no background rows
            out[key] = value[4:]
        elif key.startswith("roi_heads.mask_predictor.mask_fcn_logits."):
            out[key.replace("mask_predictor.mask_fcn_logits", "mask_head.predictor")] = value[1:]
        else:
            for pattern, repl in rules:
                key = re.sub(pattern, repl, key)
            out[key] = value
    return out
