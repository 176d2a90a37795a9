"""configs/coco/RECIPES.md is the contract for the full-size recipes: every file under configs/coco/ has a
row there (two for the direct recipe: one per stage), and every checked cell equals what the file
resolves to. The table is parsed, not copied, so a changed value, a new file without a row or a row
without a file fails here. Every other value is in the checked-in snapshots (configs/coco/resolved/,
written by `scratchlab recipes`): a recipe that resolves to anything else, or a changed AP cell, fails
here; the models built from the recipes are checked for what no config value shows (RoIAlign, anchors,
which modules are normalised, initialisation)."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from torch import nn
from torchvision.ops import roi_align
from torchvision.ops.misc import FrozenBatchNorm2d

from scratchlab.config import load_config, max_iter, schedule_steps
from scratchlab.models.norm import SyncBatchNorm, resolve_part_norm
from scratchlab.recipes import STAGE_OUT, parse_ap_cell, parse_table, recipe_rows, stale_snapshots

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COCO = CONFIGS / "coco"
TABLE = COCO / "RECIPES.md"
# Columns rendered from the config; the others (what the row reproduces, the AP to expect) are prose.
CHECKED = (
    "model",
    "data",
    "schedule",
    "iterations",
    "LR drops",
    "batch",
    "LR",
    "warm-up",
    "weight decay",
    "train size",
    "test size",
    "norm (backbone/FPN/box/mask)",
    "freeze_at",
    "grouping",
    "init",
)
PROSE = ("reproduces", "box AP", "mask AP")


def _k(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def _sizes(sizes, max_size) -> str:
    sizes = [int(sizes)] if isinstance(sizes, int | float) else [int(s) for s in sizes]
    if len(sizes) == 1:
        return f"{sizes[0]}, max {max_size}"
    step = sizes[1] - sizes[0]
    return f"{sizes[0]}-{sizes[-1]} step {step}, max {max_size}"


def _train_size(cfg: DictConfig) -> str:
    i = cfg.input
    if i.crop_size:
        lo, hi = i.scale_jitter or (1.0, 1.0)
        return f"long side {i.crop_size} x U({lo:g}, {hi:g}), crop + pad {i.crop_size}"
    return _sizes(i.min_size_train, i.max_size_train)


ARCH_NAMES = {
    "mask_rcnn": "Mask R-CNN",
    "faster_rcnn": "Faster R-CNN",
    "keypoint_rcnn": "Keypoint R-CNN",
    "cascade_mask_rcnn": "Cascade Mask R-CNN",
    "cascade_rcnn": "Cascade R-CNN",
}


def _norms(cfg: DictConfig) -> str:
    """backbone/FPN/box/mask; a keypoint model's last part is its keypoint head, written "kp NORM"."""
    m = cfg.model
    parts = [str(m.norm)] + [resolve_part_norm(p.norm, str(m.norm)) for p in (m.fpn, m.roi_box_head)]
    parts = [p or "none" for p in parts]
    if str(m.backbone.get("name", "resnet")) == "swin_t":
        parts[0] = "LN"  # Swin's own LayerNorms
    if m.arch in ("mask_rcnn", "cascade_mask_rcnn"):
        parts.append(resolve_part_norm(m.roi_mask_head.norm, str(m.norm)) or "none")
    elif m.arch == "keypoint_rcnn":
        parts.append("kp " + (resolve_part_norm(m.roi_keypoint_head.norm, str(m.norm)) or "none"))
    else:
        parts.append("-")
    return "/".join(parts)


def _backbone(m: DictConfig) -> str:
    """R50, X101-32x8d (ResNeXt: groups x width per group), Swin-T."""
    b = m.backbone
    if str(b.get("name", "resnet")) == "swin_t":
        return "Swin-T"
    if int(b.get("groups", 1)) > 1:
        return f"X{b.depth}-{b.groups}x{b.width_per_group}d"
    return f"R{b.depth}"


def _data(d: DictConfig) -> str:
    split = "train2017 person keypoints" if "person_keypoints" in str(d.train_json) else "train2017"
    return split if d.subset is None else f"{_k(int(d.subset))} of {split} (seed {d.subset_seed})"


def render(cfg: DictConfig) -> dict[str, str]:
    """The checked cells of ``cfg``'s row, as RECIPES.md writes them."""
    m, s, d = cfg.model, cfg.solver, cfg.data
    arch = ARCH_NAMES[str(m.arch)]
    head = f"{m.roi_box_head.num_conv}conv{m.roi_box_head.num_fc}fc"
    steps = schedule_steps(cfg)
    total = max_iter(cfg)
    return {
        "model": f"{arch} {_backbone(m)}-FPN {head}",
        "data": _data(d),
        "schedule": f"{total / int(s.iters_1x):.3g}x",
        "iterations": _k(total),
        "LR drops": "none (constant)" if not steps else ", ".join(_k(x) for x in steps) + f" (x{s.gamma:g})",
        "batch": str(s.ims_per_batch),
        "LR": f"{s.base_lr:g}",
        "warm-up": f"{s.warmup_iters} from {s.warmup_factor:.3g}",
        "weight decay": f"{s.weight_decay:g} (norm {s.weight_decay_norm:g})"
        + (" AdamW" if str(s.get("optimizer", "sgd")) == "adamw" else ""),
        "train size": _train_size(cfg),
        "test size": _sizes(cfg.input.min_size_test, cfg.input.max_size_test),
        "norm (backbone/FPN/box/mask)": _norms(cfg),
        "freeze_at": str(m.backbone.freeze_at),
        "grouping": "yes" if d.aspect_ratio_grouping else "no",
        "init": str(m.init).replace(f"{STAGE_OUT}/stage1/model_final.pth", "stage 1 detector"),
    }


@functools.cache
def shipped_rows() -> dict[str, DictConfig]:
    """Row name -> resolved config of every recipe under configs/coco/ (read once: callers copy before
    changing one)."""
    return recipe_rows(COCO)


@pytest.fixture(scope="module")
def table():
    return parse_table(TABLE.read_text())


def test_table_has_every_column(table):
    header, _ = table
    assert header[0] == "recipe"
    assert set(CHECKED) | set(PROSE) <= set(header)


def test_every_recipe_has_a_row_and_every_row_a_recipe(table):
    _, rows = table
    shipped = shipped_rows()
    assert sorted(set(shipped) - set(rows)) == [], "recipes without a RECIPES.md row"
    assert sorted(set(rows) - set(shipped)) == [], "RECIPES.md rows without a recipe file"


def test_every_row_matches_its_recipe(table):
    _, rows = table
    drift = []
    for name, cfg in shipped_rows().items():
        want = render(cfg)
        drift += [
            f"{name}: {col}: table says {rows[name][col]!r}, the file gives {want[col]!r}"
            for col in CHECKED
            if rows[name][col] != want[col]
        ]
        drift += [f"{name}: {col} is empty" for col in PROSE if not rows[name][col]]
    assert drift == [], "\n".join(drift)


def test_a_drifted_value_is_caught(table):
    _, rows = table
    cfg = load_config(COCO / "mask_rcnn_R50_FPN_gn_scratch_6x.yaml", ["solver.weight_decay_norm=0.0001"])
    assert render(cfg)["weight decay"] != rows["mask_rcnn_R50_FPN_gn_scratch_6x.yaml"]["weight decay"]


@pytest.mark.slow
def test_every_recipe_builds_its_full_size_model_and_optimizer():
    """Each distinct full-size model builds from its recipe with no data (model.num_classes 80) and has
    what check_model wants, and the optimizer puts every trainable norm parameter in the recipe's norm
    weight-decay group and every other trainable parameter in its weight-decay group."""
    from scratchlab.config import apply_overrides
    from scratchlab.engine.schedule import NO_DECAY_PARAMS, NORM_TYPES, build_optimizer
    from scratchlab.models import build_model

    built = set()
    for name, cfg in shipped_rows().items():
        cfg = apply_overrides(
            cfg, ["model.init=random"]
        )  # no download, no stage-1 file: init is not tested here
        key = (str(cfg.model), float(cfg.solver.weight_decay), float(cfg.solver.weight_decay_norm))
        if key in built:
            continue
        built.add(key)
        model = build_model(cfg)
        assert model.roi_heads.box_predictor.cls_score.out_features == cfg.model.num_classes + 1, name
        check_model(name, cfg, model)
        decay = {
            id(p): g["weight_decay"] for g in build_optimizer(cfg, model).param_groups for p in g["params"]
        }
        trainable = [p for p in model.parameters() if p.requires_grad]
        assert len(decay) == len(trainable), name
        for module in model.modules():
            for pname, p in module.named_parameters(recurse=False):
                if p.requires_grad:
                    want = (
                        cfg.solver.weight_decay_norm
                        if isinstance(module, NORM_TYPES) or pname in NO_DECAY_PARAMS
                        else cfg.solver.weight_decay
                    )
                    assert decay[id(p)] == want, (name, type(module).__name__)
    assert len(built) >= 6


def test_imagenet_gn_recipe_follows_the_gn_paper():
    cfg = load_config(CONFIGS / "imagenet" / "classify_R50_gn.yaml")
    c = cfg.classify
    assert (cfg.model.norm, cfg.model.gn_groups, cfg.model.backbone.depth) == ("GN", 32, 50)
    assert (c.epochs, list(c.lr_steps), c.base_lr, c.batch_size) == (100, [30, 60, 90], 0.1, 256)
    # Sec. 4.1: decay 1e-4 on all weight layers, gamma and beta included; fb.resnet.torch's augmentation
    assert c.zero_init_residual and c.weight_decay_norm == 1e-4 and c.weight_decay == 1e-4
    assert (c.min_crop_scale, c.color_jitter, c.pca_lighting) == (0.08, 0.4, 0.1)


@pytest.mark.parametrize("folder", [COCO, CONFIGS / "imagenet"], ids=["coco", "imagenet"])
def test_every_recipe_resolves_to_its_checked_in_snapshot(folder):
    stale = stale_snapshots(folder)
    assert stale == [], f"{stale}: run `scratchlab recipes` and review the diff of {folder.name}/resolved/"


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("base.yaml", "pre_nms_top_n_train: 2000", "pre_nms_top_n_train: 12000"),
        ("base.yaml", "batch_size_per_image: 512}", "batch_size_per_image: 64}"),
        ("base.yaml", "hflip_prob: 0.5", "hflip_prob: 0.0"),
        ("RECIPES.md", "41.3 (He et al. 2019", "99.9 (He et al. 2019"),
    ],
)
def test_a_changed_value_anywhere_makes_a_snapshot_stale(tmp_path, file, old, new):
    """The drifts the table's columns cannot see: each makes the snapshots it touches stale."""
    folder = tmp_path / "configs" / "coco"
    shutil.copytree(COCO, folder)
    text = (folder / file).read_text()
    assert text.count(old) == 1
    (folder / file).write_text(text.replace(old, new))
    stale = stale_snapshots(folder)
    if file == "RECIPES.md":
        assert stale == ["published_ap.json"]
    else:  # every recipe inherits base.yaml (the direct stage-1 rows override the RoI batch and flips)
        assert len(stale) >= 25 and "published_ap.json" not in stale


def test_every_ap_cell_is_a_sourced_number_or_says_not_published(table):
    _, rows = table
    shipped = shipped_rows()
    for name, row in rows.items():
        cfg = shipped[name]
        assert parse_ap_cell(row["box AP"]) is not None, f"{name}: every detector has box AP"
        has_second_output = str(cfg.model.arch) in ("mask_rcnn", "cascade_mask_rcnn", "keypoint_rcnn")
        assert (parse_ap_cell(row["mask AP"]) is not None) == has_second_output, name


def test_published_numbers_of_the_keypoint_and_x152_rows(table):
    _, rows = table

    def aps(row: str, col: str) -> list[tuple[float, bool]]:
        return [(e["ap"], e["tta"]) for e in parse_ap_cell(rows[row][col]) if "ap" in e]

    assert aps("keypoint_rcnn_R50_FPN_gn_scratch_2x.yaml", "mask AP") == [(65.6, False)]
    assert aps("keypoint_rcnn_R50_FPN_gn_pretrained_2x.yaml", "mask AP") == [(65.5, False)]
    x152 = "cascade_mask_rcnn_X152_32x8d_FPN_gn_scratch_9x_trainaug.yaml"
    assert aps(x152, "box AP") == [(48.6, False), (50.9, True)]
    assert aps(x152, "mask AP") == [(41.4, False), (43.2, True)]


@pytest.mark.parametrize(
    "cell",
    [
        "",
        "41.3",
        "see Table 3",
        "41.3 (my notes)",
        "not printed",
        "not published",
        "41.3 (He et al. 2019 Table 2);",
    ],
)
def test_an_empty_or_unparsable_ap_cell_is_refused(cell):
    with pytest.raises(ValueError, match="AP cell entry"):
        parse_ap_cell(cell)


def test_the_x152_recipe_switches_to_the_cascade_for_the_final_270k_and_votes_boxes():
    cfg = shipped_rows()["cascade_mask_rcnn_X152_32x8d_FPN_gn_scratch_9x_trainaug.yaml"]
    assert max_iter(cfg) - cfg.model.cascade.start_iter == 270_000
    assert cfg.eval.tta.vote_thresh == 0.9  # Detectron's configs/test_time_aug BBOX_VOTE VOTE_TH


NORM_MODULES = {
    "GN": {nn.GroupNorm},
    "BN": {nn.BatchNorm2d},
    "SyncBN": {SyncBatchNorm},
    "FrozenBN": {FrozenBatchNorm2d},
    "": set(),
}


def _norm_types(module: nn.Module) -> set[type]:
    kinds = (nn.GroupNorm, nn.BatchNorm2d, nn.SyncBatchNorm, FrozenBatchNorm2d, nn.LayerNorm)
    return {type(m) for m in module.modules() if isinstance(m, kinds)}


def _std_close(weight: torch.Tensor, want: float) -> bool:
    return abs(float(weight.detach().std()) / want - 1) < 0.1


def check_model(name: str, cfg: DictConfig, model: nn.Module) -> None:
    """What the built model must be beyond what the table shows: RoIAlign (sampling ratio 2, the P2-P5
    scales, torchvision's aligned=False: Detectron's RoIAlign), anchors, GN groups, the norm of every
    part, and the init of the backbone convs, the RPN head, the box head fcs and every predictor."""
    m, heads = cfg.model, model.roi_heads
    pools = {"box": (heads.box_roi_pool, 7), "mask": (heads.mask_roi_pool, 14)}
    pools["keypoint"] = (getattr(heads, "keypoint_roi_pool", None), 14)
    features = {k: torch.rand(1, 2, 256 >> i, 256 >> i) for i, k in enumerate(("0", "1", "2", "3"))}
    box = torch.tensor([[8.0, 8.0, 40.0, 40.0]])  # 32 px: pooled from P2 (stride 4)
    for part, (pool, size) in pools.items():
        if pool is None:
            continue
        assert (pool.sampling_ratio, tuple(pool.output_size)) == (2, (size, size)), (name, part)
        assert pool.scales == [1 / 4, 1 / 8, 1 / 16, 1 / 32], (name, part)
        want = roi_align(features["0"], [box], size, spatial_scale=1 / 4, sampling_ratio=2, aligned=False)
        assert torch.allclose(pool(features, [box], [(1024, 1024)]), want), (name, part)
    anchors = model.rpn.anchor_generator
    assert anchors.sizes == tuple((int(s),) for s in m.rpn.anchor_sizes), name
    assert all(list(a) == list(m.rpn.aspect_ratios) for a in anchors.aspect_ratios), name
    assert all(g.num_groups == m.gn_groups for g in model.modules() if isinstance(g, nn.GroupNorm)), name
    swin = str(m.backbone.get("name", "resnet")) == "swin_t"
    backbone_norm = {nn.LayerNorm} if swin else NORM_MODULES[str(m.norm)]
    if not swin and int(m.backbone.freeze_at) > 0 and str(m.norm) in ("BN", "SyncBN"):
        assert isinstance(model.backbone.body.bn1, FrozenBatchNorm2d), name
    parts = {
        # the last stage: freeze_at never reaches it (frozen stages' BN becomes FrozenBN, checked below)
        "backbone": (model.backbone.body if swin else model.backbone.body.layer4, backbone_norm),
        "fpn": (model.backbone.fpn, NORM_MODULES[resolve_part_norm(m.fpn.norm, str(m.norm))]),
        "rpn": (model.rpn.head, set()),
        "box": (
            nn.ModuleList([heads.box_head, *getattr(heads, "cascade_heads", [])]),
            NORM_MODULES[resolve_part_norm(m.roi_box_head.norm, str(m.norm))],
        ),
    }
    if heads.has_mask():
        parts["mask"] = (heads.mask_head, NORM_MODULES[resolve_part_norm(m.roi_mask_head.norm, str(m.norm))])
        parts["mask predictor"] = (heads.mask_predictor, set())
    if heads.has_keypoint():
        kh = resolve_part_norm(m.roi_keypoint_head.norm, str(m.norm))
        parts["keypoint"] = (heads.keypoint_head, NORM_MODULES[kh])
    for part, (module, want) in parts.items():
        assert _norm_types(module) == want, (name, part, _norm_types(module))
    if not swin:  # MSRA: kaiming normal, fan-out (torchvision's ResNet, Detectron2's c2_msra_fill)
        conv = model.backbone.body.layer3[0].conv2
        assert _std_close(conv.weight, (2 / (conv.out_channels * 9)) ** 0.5), name
    rpn = model.rpn.head
    assert all(_std_close(c.weight, 0.01) for c in (rpn.conv[0][0], rpn.cls_logits, rpn.bbox_pred)), name
    fc = [x for x in heads.box_head.modules() if isinstance(x, nn.Linear)][-1]
    assert _std_close(fc.weight, fc.in_features**-0.5) and not fc.bias.any(), name  # Xavier (c2_xavier_fill)
    predictors = [heads.box_predictor, *getattr(heads, "cascade_predictors", [])]
    for p in predictors:
        assert _std_close(p.cls_score.weight, 0.01) and _std_close(p.bbox_pred.weight, 0.001), name
        assert not p.cls_score.bias.any() and not p.bbox_pred.bias.any(), name
    if heads.has_keypoint():  # MSRA fan-out (Detectron's keypoint recipe: KRCNN.CONV_INIT MSRAFill)
        deconv = heads.keypoint_predictor.kps_score_lowres
        fan_out = deconv.weight.shape[0] * deconv.weight[0, 0].numel()
        assert _std_close(deconv.weight, (2 / fan_out) ** 0.5) and not deconv.bias.any(), name
    if heads.has_mask():
        logits = heads.mask_predictor.mask_fcn_logits
        assert _std_close(logits.weight, 0.001) and not logits.bias.any(), name
        assert not heads.mask_predictor.conv5_mask.bias.any(), name
