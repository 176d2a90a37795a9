import pytest
import torch

from scratchlab.config import load_config
from scratchlab.engine.schedule import build_scheduler, follow_schedule
from tests.conftest import MINI


def _optimizer(cfg) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.solver.base_lr)


def lr_at(cfg, it: int) -> float:
    """The LR the trainer's scheduler gives iteration ``it``, without stepping through the ones before."""
    return cfg.solver.base_lr * build_scheduler(cfg, _optimizer(cfg)).lr_lambdas[0](it)


@pytest.fixture
def cfg():
    return load_config(None, ["solver.schedule=2", "solver.warmup_iters=1000", "solver.warmup_factor=0.001"])


def test_warmup_is_linear_from_warmup_factor(cfg):
    assert lr_at(cfg, 0) == pytest.approx(0.02 * 0.001)
    assert lr_at(cfg, 500) == pytest.approx(0.02 * (0.001 * 0.5 + 0.5))
    assert lr_at(cfg, 1000) == pytest.approx(0.02)


def test_drops_at_last_60k_and_last_20k(cfg):
    # 2x = 180k iterations: LR /10 at 120k and again at 160k.
    assert lr_at(cfg, 119_999) == pytest.approx(0.02)
    assert lr_at(cfg, 120_000) == pytest.approx(0.002)
    assert lr_at(cfg, 159_999) == pytest.approx(0.002)
    assert lr_at(cfg, 160_000) == pytest.approx(0.0002)
    assert lr_at(cfg, 179_999) == pytest.approx(0.0002)


def test_constant_lr_has_no_drops():
    cfg = load_config(None, ["solver.constant_lr=true", "solver.warmup_iters=10"])
    assert lr_at(cfg, 89_999) == pytest.approx(0.02)


def test_stepping_the_scheduler_reaches_each_iterations_lr(cfg):
    cfg.solver.max_iter = 30
    cfg.solver.lr_drops_from_end = [20, 5]
    cfg.solver.warmup_iters = 4
    opt = _optimizer(cfg)
    sched = build_scheduler(cfg, opt)
    for it in range(30):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(cfg, it)), it
        opt.step()
        sched.step()


def _lrs(cfg, opt, sched, n: int) -> list[float]:
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_resuming_a_longer_schedules_checkpoint_follows_this_configs_drops():
    # A 1x forked from a 3x's checkpoint at the 1x's first drop: the LR from there on is the 1x's, the
    # same floats as the 1x trained alone (and a plain resume keeps its own schedule).
    mini = [*(f"solver.{k}" for k in ("iters_1x=30", "lr_drops_from_end=[20,5]", "warmup_iters=4"))]
    short, long = (load_config(None, [*mini, f"solver.schedule={s}"]) for s in (1, 3))
    alone_opt = _optimizer(short)
    alone = _lrs(short, alone_opt, build_scheduler(short, alone_opt), 30)
    k = 20  # the 1x's first drop (2/3 of 30); the 3x drops at 70
    trunk_opt = _optimizer(long)
    trunk_sched = build_scheduler(long, trunk_opt)
    assert _lrs(long, trunk_opt, trunk_sched, k) == alone[:k]
    for cfg, expected in ((short, alone[k:]), (long, None)):
        opt = _optimizer(cfg)
        sched = build_scheduler(cfg, opt)
        opt.load_state_dict(trunk_opt.state_dict())
        sched.load_state_dict(trunk_sched.state_dict())
        follow_schedule(cfg, opt, sched)
        if expected is not None:
            assert _lrs(cfg, opt, sched, 30 - k) == expected
        else:
            assert opt.param_groups[0]["lr"] == trunk_opt.param_groups[0]["lr"]


@pytest.mark.parametrize("norm", ["GN", "BN", "SyncBN"])
def test_norm_parameters_get_weight_decay_norm(norm):
    from scratchlab.engine.schedule import NORM_TYPES, build_optimizer
    from scratchlab.models import build_model

    overrides = [
        f"model.norm={norm}",
        f"model.fpn.norm={norm}",
        f"model.roi_box_head.norm={norm}",
        f"model.roi_mask_head.norm={norm}",
        "model.backbone.freeze_at=2",
        "solver.weight_decay=0.001",
        "solver.weight_decay_norm=0.0",
    ]
    cfg = load_config(MINI, overrides)
    model = build_model(cfg, num_classes=2)
    groups = build_optimizer(cfg, model).param_groups
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    norm_params = [
        p
        for m in model.modules()
        if isinstance(m, NORM_TYPES)
        for p in m.parameters(recurse=False)
        if p.requires_grad
    ]
    assert norm_params and all(decay[id(p)] == 0.0 for p in norm_params)
    others = {id(p) for p in model.parameters() if p.requires_grad} - {id(p) for p in norm_params}
    assert others and all(decay[i] == 0.001 for i in others)
    assert set(decay) == {id(p) for p in model.parameters() if p.requires_grad}  # frozen ones left out


def test_reference_world_size_scales_batch_lr_and_iterations_linearly():
    from scratchlab.engine.schedule import scale_to_world

    recipe = load_config(
        None, ["solver.reference_world_size=8", "checkpoint.period=5000", "eval.period=10000"]
    )
    one, line = scale_to_world(
        recipe, world=1
    )  # 1 device keeps 2 images per device: batch 2, LR / 8, 8x longer
    assert (one.solver.ims_per_batch, one.solver.base_lr, one.solver.iters_1x) == (
        2,
        pytest.approx(0.0025),
        720000,
    )
    assert list(one.solver.lr_drops_from_end) == [480000, 160000] and one.solver.warmup_iters == 8000
    assert (one.checkpoint.period, one.eval.period) == (40000, 80000)
    assert one.model.cascade.start_iter == 0  # "from the start" stays so
    cascade = load_config(None, ["solver.reference_world_size=8", "model.cascade.start_iter=540000"])
    assert scale_to_world(cascade, world=1)[0].model.cascade.start_iter == 4320000
    assert "linear scaling" in line and "= 2 images per iteration" in line
    assert scale_to_world(one, world=1)[0] == one  # applying the rule again (a resume) changes nothing
    # Accumulation reaches the recipe's global batch on fewer devices: nothing to scale.
    same, line = scale_to_world(
        load_config(None, ["solver.reference_world_size=8", "solver.accumulate=4"]), world=2
    )
    assert (same.solver.ims_per_batch, same.solver.base_lr, same.solver.iters_1x) == (16, 0.02, 90000)
    assert "2 device(s) x 2 image(s) x 4 micro-step(s) = 16 images" in line and "scaling" not in line
    # Off (the default): ims_per_batch is the global batch whatever the world size.
    assert scale_to_world(load_config(None), world=4)[0].solver.ims_per_batch == 16
