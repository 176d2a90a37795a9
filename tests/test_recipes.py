"""configs/coco/RECIPES.md is the contract for the full-size recipes: every file under configs/coco/ has a
row there (two for the direct recipe: one per stage), and every checked cell equals what the file
resolves to. The table is parsed, not copied, so a changed value, a new file without a row or a row
without a file fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig

from scratchlab.config import load_config, max_iter, schedule_steps
from scratchlab.models.norm import resolve_part_norm
from scratchlab.pretrain.direct import stage_configs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COCO = CONFIGS / "coco"
TABLE = COCO / "RECIPES.md"
NOT_RECIPES = {"base.yaml"}  # shared settings, inherited by every recipe
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
STAGE_OUT = "OUT"  # the run dir the direct recipe's stage configs are resolved under
# COCO train2017's images with at least one instance: what direct.stage1_epochs counts passes over.
COCO_TRAIN_IMAGES = 117_266


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


def shipped_rows() -> dict[str, DictConfig]:
    """Row name -> resolved config, for every recipe file under configs/coco/ (a direct pre-training
    recipe gives one row per stage)."""
    rows = {}
    for f in sorted(COCO.glob("*.yaml")):
        if f.name in NOT_RECIPES:
            continue
        cfg = load_config(f)
        if cfg.direct.stage1 or cfg.direct.stage2:
            stage1, stage2 = stage_configs(cfg, STAGE_OUT, COCO_TRAIN_IMAGES)
            rows[f"{f.name} stage 1"], rows[f"{f.name} stage 2"] = stage1, stage2
        else:
            rows[f.name] = cfg
    return rows


def parse_table(text: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The one Markdown table in ``text``: its header and its rows keyed by the first cell (backticks
    stripped)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
    cells = [[c.strip().strip("`").strip() for c in ln.strip("|").split("|")] for ln in lines]
    header, body = cells[0], cells[2:]
    rows = {}
    for row in body:
        assert len(row) == len(header), (
            f"RECIPES.md row {row[0]!r} has {len(row)} cells, header {len(header)}"
        )
        assert row[0] not in rows, f"RECIPES.md lists {row[0]!r} twice"
        rows[row[0]] = dict(zip(header, row, strict=True))
    return header, rows


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
    """Item 9 and item 1 on the real models: each distinct full-size model builds from its recipe with no
    data (model.num_classes 80), and the optimizer puts every trainable norm parameter in a group without
    weight decay and every other trainable parameter in the recipe's weight-decay group."""
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
    assert c.zero_init_residual and c.weight_decay_norm == 0.0 and c.weight_decay == 1e-4
