"""Row 7: the full-size R50-FPN GN-all Mask R-CNN (configs/coco/mask_rcnn_R50_FPN_gn_scratch_3x.yaml) on one
GPU, 2 images per step (one GPU's share of the batch-16 recipe): s/iter and peak memory in fp32, bf16
and fp16 autocast, channels_last off/on, torch.compile off/on, against Detectron2's published s/iter for
the same model, and a profile of where AMP's time goes with GroupNorm.

    python benchmarks/bench_gpu.py [--steps N] [--warmup N] [--config YAML] [--device cuda|cpu]

Without CUDA it prints the row as "no GPU on this machine" and measures nothing (``--device cpu`` with a
mini config runs the same code path as a smoke test). Batches are made once from 16 generated 800 px
images with the recipe's own transforms (short side 640-800, long side <= 1333) and reused, so the
figure is the step alone (forward, backward, SGD step), synchronised before and after.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from common import ROOT, emit, log, spread

from scratchlab.config import load_config
from scratchlab.data.synth import make_synth_detection
from scratchlab.engine.data import build_datasets, build_train_loader

FULL = ROOT / "configs" / "coco" / "mask_rcnn_R50_FPN_gn_scratch_3x.yaml"
# Detectron2 MODEL_ZOO.md, "Ablations for normalization methods", GN (scratch) 3x
# (Misc/scratch_mask_rcnn_R_50_FPN_3x_gn.yaml): 0.400 s/iter and 9.8 GB on 8 V100s at 2 images per GPU.
DETECTRON2_S_PER_ITER, DETECTRON2_MEM_GB = 0.400, 9.8
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# (precision, channels_last, compile): the precision x layout grid eagerly, compile on the fp32 and bf16
# defaults (a compile costs minutes).
VARIANTS = [(p, cl, False) for p in DTYPES for cl in (False, True)] + [
    ("fp32", False, True),
    ("bf16", False, True),
]


def batches(cfg, device: torch.device, count: int) -> list:
    train_set, _ = build_datasets(cfg)
    it = iter(build_train_loader(cfg, train_set, 0, 0, 1))
    out = []
    for _ in range(count):
        images, targets = next(it)
        out.append(([i.to(device) for i in images], [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]))  # fmt: skip
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(cfg, data, device, precision: str, channels_last: bool, compile_: bool, warmup: int, steps: int):
    """(s/iter list, peak memory GB) of training steps in one setting."""
    from scratchlab.models import build_model

    torch.manual_seed(0)
    model = build_model(cfg, num_classes=80).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    dtype = DTYPES[precision]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    step_model = torch.compile(model) if compile_ else model
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + steps):
        images, targets = data[i % len(data)]
        _sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = sum(step_model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
    return times, peak


def gn_profile(cfg, data, device, precision: str) -> str:
    """Share of one step's device time in GroupNorm and in dtype casts under ``precision``."""
    from torch.profiler import ProfilerActivity, profile

    from scratchlab.models import build_model

    model = build_model(cfg, num_classes=80).to(device).train()
    dtype = DTYPES[precision]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    images, targets = data[0]

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = sum(model(images, targets).values())
        loss.backward()
        _sync(device)

    step()  # warm-up: kernel selection and allocator growth stay out of the profile
    with profile(activities=activities) as prof:
        step()
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = prof.key_averages()
    total = sum(getattr(e, key) for e in events) or 1.0
    gn = sum(getattr(e, key) for e in events if "group_norm" in e.key.lower())
    casts = sum(getattr(e, key) for e in events if e.key in ("aten::copy_", "aten::_to_copy"))
    return f"{precision}: GroupNorm {gn / total:.0%} of the step's {'GPU' if device.type == 'cuda' else 'CPU'} time, dtype casts {casts / total:.0%}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--config", type=Path, default=FULL)
    p.add_argument("--device", default="cuda")
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    title = "7. Full-size R50-FPN GN-all Mask R-CNN on one GPU"
    command = f"python benchmarks/bench_gpu.py --steps {a.steps} --warmup {a.warmup}"
    columns = ["precision", "channels_last", "torch.compile", "s/iter median", "min", "max", "peak memory GB"]
    if a.device == "cuda" and not torch.cuda.is_available():
        emit(title, command, columns, [["no GPU on this machine", "", "", None, None, None, None]],
             ["torch.cuda.is_available() is False: nothing measured; `make bench` runs this row where a GPU is present"])  # fmt: skip
        return
    device = torch.device(a.device)
    work = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    make_synth_detection(work, 16, 2, 800, 0)
    data_keys = [
        f"data.train_json={work / 'annotations' / 'instances_train.json'}",
        f"data.train_images={work / 'train'}",
    ]
    no_val = ["data.val_json=null", "data.val_images=null"]  # the recipe names COCO's val2017
    cfg = load_config(
        a.config, [*data_keys, *no_val, "solver.ims_per_batch=2", "data.num_workers=0", *a.overrides]
    )
    data = batches(cfg, device, 8)
    rows, notes = [], []
    for precision, channels_last, compile_ in VARIANTS:
        label = [precision, "on" if channels_last else "off", "on" if compile_ else "off"]
        try:
            times, peak = measure(cfg, data, device, precision, channels_last, compile_, a.warmup, a.steps)
        except Exception as err:  # noqa: BLE001 - a setting that fails (an unsupported compile) is a finding
            rows.append([*label, f"failed: {type(err).__name__}: {str(err)[:120]}", None, None, None])
            log(f"{label} failed: {err}")
            continue
        rows.append([*label, *spread(times), peak])
        log(f"{label}: {rows[-1][3:]}")
    for precision in DTYPES:
        try:
            notes.append(gn_profile(cfg, data, device, precision))
        except Exception as err:  # noqa: BLE001
            notes.append(f"{precision} profile failed: {type(err).__name__}: {err}")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    notes += [
        f"{gpu}; {a.config.relative_to(ROOT) if a.config.is_relative_to(ROOT) else a.config}, 2 images per step, "
        f"{a.steps} timed steps after {a.warmup} warm-up steps (compile time in the warm-up)",
        f"Detectron2's published figure for this model (Misc/scratch_mask_rcnn_R_50_FPN_3x_gn): "
        f"{DETECTRON2_S_PER_ITER} s/iter, {DETECTRON2_MEM_GB} GB, 8 V100s at 2 images per GPU (DDP included)",
    ]
    emit(title, command, columns, rows, notes)


if __name__ == "__main__":
    main()
