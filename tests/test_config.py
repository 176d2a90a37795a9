import re
from pathlib import Path

import pytest
import yaml

from scratchlab.config import (
    DEFAULTS,
    LEAF_TYPES,
    ConfigError,
    config_from_yaml,
    load_config,
    max_iter,
    schedule_steps,
    to_yaml,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_base_chain_merges_and_leaf_wins():
    cfg = load_config(CONFIGS / "coco" / "mask_rcnn_R101_FPN_gn_scratch_6x.yaml")
    assert cfg.model.backbone.depth == 101
    assert cfg.model.norm == "GN" and cfg.model.fpn.norm == "GN" and cfg.model.roi_mask_head.norm == "GN"
    assert cfg.solver.base_lr == 0.02 and cfg.solver.ims_per_batch == 16
    assert max_iter(cfg) == 540_000


def test_override_sets_typed_values():
    cfg = load_config(
        CONFIGS / "mini" / "mask_rcnn_gn_scratch.yaml",
        ["solver.base_lr=0.01", "input.min_size_train=[96, 128]", "data.subset=null"],
    )
    assert cfg.solver.base_lr == 0.01
    assert list(cfg.input.min_size_train) == [96, 128]
    assert cfg.data.subset is None


@pytest.mark.parametrize("bad", ["solver.base_lrr=0.1", "modle.norm=GN", "model.backbone.dept=50"])
def test_unknown_override_key_is_named(bad):
    with pytest.raises(ConfigError, match=bad.split("=")[0].replace(".", r"\.")):
        load_config(CONFIGS / "mini" / "mask_rcnn_gn_scratch.yaml", [bad])


@pytest.mark.parametrize("bad", ["solver.max_iters=20", "solver: {max_iters: 20}"])
def test_unknown_key_suggests_the_declared_one(tmp_path, bad):
    f = tmp_path / "c.yaml"
    f.write_text(bad if ":" in bad else "{}")
    with pytest.raises(ConfigError, match=r"did you mean solver\.max_iter\b"):
        load_config(f, [] if ":" in bad else [bad])


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["solver.base_lr"])


def test_unknown_key_in_file_is_named(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("_base_: " + str(CONFIGS / "coco" / "base.yaml") + "\nsolver: {warmup_iter: 5}\n")
    with pytest.raises(ConfigError, match="solver.warmup_iter"):
        load_config(f)


def test_base_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


@pytest.mark.parametrize("x", [2, 3, 4, 6])
def test_coco_scratch_schedules_drop_at_last_60k_and_20k(x):
    cfg = load_config(CONFIGS / "coco" / f"mask_rcnn_R50_FPN_gn_scratch_{x}x.yaml")
    total = x * 90_000
    assert max_iter(cfg) == total
    assert schedule_steps(cfg) == [total - 60_000, total - 20_000]


def test_every_shipped_config_loads():
    files = sorted(f for f in CONFIGS.rglob("*.yaml") if "studies" not in f.parts)  # studies: tests/study
    assert len(files) >= 15
    for f in files:
        load_config(f)


def test_paper_recipe_values_in_coco_base():
    cfg = load_config(CONFIGS / "coco" / "mask_rcnn_R50_FPN_gn_scratch_3x.yaml")
    s = cfg.solver
    assert (s.base_lr, s.ims_per_batch, s.momentum, s.weight_decay) == (0.02, 16, 0.9, 1e-4)
    assert cfg.model.backbone.freeze_at == 0 and cfg.model.init == "random"
    assert s.weight_decay_norm == 0.0  # Detectron WEIGHT_DECAY_GN
    assert (s.warmup_iters, s.warmup_factor) == (500, pytest.approx(1 / 3))  # Detectron's defaults
    assert list(cfg.input.min_size_train) == [800]  # Table 1 runs: fixed 800, flips only
    assert cfg.input.max_size_train == 1333 and cfg.input.min_size_test == 800
    assert cfg.data.aspect_ratio_grouping
    assert cfg.model.roi_box_head.num_conv == 4 and cfg.model.roi_box_head.num_fc == 1


@pytest.mark.parametrize(
    ("overrides", "steps"),
    [
        ([], [60_000, 80_000]),  # Detectron/Detectron2 1x
        (["solver.max_iter=60000"], [40_000, 53_333]),  # shorter than 1x: the same fractions
        (["solver.schedule=2"], [120_000, 160_000]),  # the paper: last 60k and last 20k
        (["solver.schedule=3"], [210_000, 250_000]),  # also Detectron2's 3x
        (["solver.schedule=6"], [480_000, 520_000]),
        (["solver.constant_lr=true"], []),
    ],
)
def test_schedule_rule(overrides, steps):
    assert schedule_steps(load_config(None, overrides)) == steps


def test_mini_keeps_the_last_fraction_drops():
    cfg = load_config(CONFIGS / "mini" / "mask_rcnn_gn_scratch.yaml", ["solver.schedule=3"])
    total = max_iter(cfg)
    steps = schedule_steps(cfg)
    # Low-LR phases last as long as in a 2x (133 and 44 iterations of a 200-iteration 1x).
    assert steps == [total - 133, total - 44]


MINI = CONFIGS / "mini" / "mask_rcnn_gn_scratch.yaml"


def test_float_written_1e_3_is_a_float_in_override_and_yaml(tmp_path):
    cfg = load_config(MINI, ["solver.base_lr=1e-3", "solver.iters_1x=9e1"])
    assert isinstance(cfg.solver.base_lr, float) and cfg.solver.base_lr == 1e-3
    assert isinstance(cfg.solver.iters_1x, int) and cfg.solver.iters_1x == 90
    f = tmp_path / "c.yaml"
    f.write_text(f"_base_: {MINI}\nsolver: {{base_lr: 1e-3, warmup_factor: 1e-2}}\n")
    assert isinstance(yaml.safe_load(f.read_text())["solver"]["base_lr"], str)  # what PyYAML gives
    cfg = load_config(f)
    assert isinstance(cfg.solver.base_lr, float) and cfg.solver.base_lr == 1e-3
    assert cfg.solver.warmup_factor == 0.01


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("solver.base_lr=abc", "solver.base_lr='abc': expected float"),
        ("solver.ims_per_batch=2.5", "solver.ims_per_batch=2.5: expected int"),
        ("data.check=maybe", "data.check='maybe': expected bool"),
        (
            "input.min_size_train=[600, big]",
            "input.min_size_train=[600, 'big']: expected int >= 1 | list[int >= 1] of at least 1",
        ),
        ("model.arch=retinanet", "model.arch='retinanet': expected one of 'mask_rcnn' | 'faster_rcnn'"),
        ("model.norm=gn", "model.norm='gn': expected one of 'GN'"),
        ("model.fpn.norm=LN", "model.fpn.norm='LN': expected one of"),
        ("model.backbone.depth=200", "model.backbone.depth=200: expected one of 18 | 34 | 50 | 101 | 152"),
        ("solver.amp_dtype=fp16", "solver.amp_dtype='fp16': expected one of 'float16' | 'bfloat16'"),
        ("classify.lr_schedule=poly", "classify.lr_schedule='poly': expected one of 'step' | 'cosine'"),
        ("device=gpu", "device='gpu': expected auto | cpu | cuda"),
        ("data.num_workers=-1", "data.num_workers=-1: expected one of 'auto' | int >= 0"),
        ("data.num_workers=many", "data.num_workers='many': expected one of 'auto' | int >= 0"),
        ("solver=3", "solver=3: expected a mapping"),
    ],
)
def test_value_of_the_wrong_type_is_refused_naming_key_value_and_type(override, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(MINI, [override])


def test_wrong_type_in_yaml_is_refused_naming_the_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("solver: {base_lr: abc}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{f}: solver.base_lr='abc': expected float")):
        load_config(f)


def test_optional_and_union_keys_keep_what_was_written():
    cfg = load_config(
        MINI,
        [
            "data.subset=1",
            "solver.clip_grad_norm=null",
            "device=cuda:1",
            "model.fpn.norm=''",
            "input.min_size_train=96",
        ],
    )
    assert cfg.data.subset == 1 and isinstance(cfg.data.subset, int)  # one image, not the whole set
    assert isinstance(load_config(MINI, ["data.subset=1.0"]).data.subset, float)
    assert cfg.solver.clip_grad_norm is None and cfg.device == "cuda:1"
    assert cfg.model.fpn.norm == "" and cfg.input.min_size_train == 96


def test_every_key_has_a_type():
    def leaves(tree, prefix=""):
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]

    assert set(LEAF_TYPES) == set(leaves(DEFAULTS))


def test_checkpoint_config_text_is_typed_like_a_file():
    cfg = config_from_yaml(to_yaml(load_config(MINI)), "ckpt", ["solver.base_lr=2e-3"])
    assert cfg.solver.base_lr == 2e-3
    with pytest.raises(ConfigError, match="ckpt: model.arch='x'"):
        config_from_yaml("model: {arch: x}\n", "ckpt")


MINI_STEPS = {  # every shipped mini recipe (and direct stage): the 90k rule scaled to its 1x (200 or 150)
    "mask_rcnn_gn_scratch.yaml": [133, 178],
    "mask_rcnn_bn_scratch.yaml": [133, 178],
    "mask_rcnn_gn_pretrained.yaml": [133, 178],
    "faster_rcnn_gn_scratch.yaml": [133, 178],
    "keypoint_rcnn_gn_scratch.yaml": [100, 133],
    "cascade_mask_rcnn_gn_scratch.yaml": [100, 133],
    "mask_rcnn_swin_t.yaml": [100, 133],
    "classify_gn.yaml": [133, 178],
    "direct_gn.yaml stage 1": [],
    "direct_gn.yaml stage 2": [133, 178],
    "direct_bn.yaml stage 1": [],
    "direct_bn.yaml stage 2": [133, 178],
    "tiny.yaml": [4, 5],  # the tests' and demo --quick's 6-iteration 1x
}


def test_every_mini_recipe_drops_at_the_scaled_1x_steps(tmp_path):
    from scratchlab.pretrain.direct import stage_configs

    found = {}
    for f in sorted((CONFIGS / "mini").glob("*.yaml")):
        cfg = load_config(f)
        if cfg.direct.stage1:
            s1, s2 = stage_configs(cfg, tmp_path)
            found[f"{f.name} stage 1"], found[f"{f.name} stage 2"] = schedule_steps(s1), schedule_steps(s2)
        else:
            found[f.name] = schedule_steps(cfg)
    assert found == MINI_STEPS


@pytest.mark.parametrize(
    "override",
    [
        "solver.schedule=0",
        "solver.schedule=-1",
        "solver.base_lr=1e39",  # overflows float32
        "solver.ims_per_batch=0",
        "solver.iters_1x=0",
        "solver.max_iter=-3",
        "solver.accumulate=0",
        "log.period=0",
        "checkpoint.period=0",
        "eval.period=-1",
        "input.min_size_train=[]",
        "input.min_size_train=0",
        "input.max_size_test=0",
        "model.num_classes=0",
        "model.roi_box_head.score_thresh=nan",
        "model.roi_box_head.score_thresh=1.5",
        "model.rpn.nms_thresh=-0.1",
        "model.fpn.channels=0",
        "classify.batch_size=0",
    ],
)
def test_out_of_range_values_are_refused_at_load_time(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(key) + r"=.*: expected"):
        load_config(MINI, [override])


@pytest.mark.parametrize("value", ["1e39", "1e300", "-1e300"])
def test_a_float_beyond_float32_says_it_overflows(value):
    with pytest.raises(ConfigError, match=r"solver\.base_lr=.*: expected float > 0\.0: overflows float32"):
        load_config(MINI, [f"solver.base_lr={value}"])


def test_a_refused_yaml_alias_bomb_is_not_printed_whole(tmp_path):
    import time

    # 10**10 integers once the aliases are expanded, in a file of a few hundred bytes
    levels = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text(f"_base_: {MINI}\nsolver:\n  ims_per_batch: [{', '.join(levels)}]\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="solver.ims_per_batch=") as refused:
        load_config(path)
    assert time.perf_counter() - start < 5
    assert len(str(refused.value)) < 500


def test_a_run_evaluates_every_period_but_at_its_end():
    from scratchlab.config import evaluates_at

    cfg = load_config(CONFIGS / "mini" / "tiny.yaml", ["eval.period=3"])  # 6 iterations
    assert [m for m in range(1, 7) if evaluates_at(cfg, m)] == [3]  # 6 is the final evaluation
    cfg.eval.period = 0
    assert not any(evaluates_at(cfg, m) for m in range(1, 7))
