"""Under torch.distributed each rank sees a share of the images; evaluate() must score all of them."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.evaluation.test_coco_evaluator import LABEL_TO_CAT, _output, _perfect, make_gt


def _worker(rank: int, world: int, port: int, queue) -> None:
    from scratchlab.evaluation import COCOEvaluator

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        gt = make_gt()
        ev = COCOEvaluator(gt, label_to_category_id=LABEL_TO_CAT)
        for img in gt["images"][rank::world]:  # this rank's share only
            preds = [p for a in gt["annotations"] if a["image_id"] == img["id"] for p in _perfect(a)]
            ev.process([{"image_id": torch.tensor(img["id"])}], [_output(img, preds)])
        metrics = ev.evaluate()
        queue.put((rank, sorted(ev._gather()[0]), metrics["bbox"]["AP"], metrics["segm"]["AP"]))
    finally:
        dist.destroy_process_group()


def test_evaluate_gathers_every_rank():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, 2, 29541, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    all_ids = sorted(img["id"] for img in make_gt()["images"])
    for _, ids, box_ap, segm_ap in results:
        assert ids == all_ids  # both ranks scored every image, not just their own half
        assert box_ap == pytest.approx(100.0) and segm_ap == pytest.approx(100.0)
