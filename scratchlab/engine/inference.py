"""Run a detector over a dataset and feed an evaluator (Detectron2's inference_on_dataset)."""

from __future__ import annotations

import torch

from .dist import get_rank, get_world_size

__all__ = ["inference_on_dataset"]


@torch.no_grad()
def inference_on_dataset(model: torch.nn.Module, dataset, evaluator, device: torch.device,
                         batch_size: int = 2) -> dict:
    """Predict every image of ``dataset`` (each rank a strided share) and return ``evaluator.evaluate()``.
    The model's own transform resizes for testing and maps outputs back to the original image size."""
    was_training = model.training
    model.eval()
    evaluator.reset()
    indices = list(range(get_rank(), len(dataset), get_world_size()))
    for start in range(0, len(indices), batch_size):
        images, targets = zip(*(dataset[i] for i in indices[start:start + batch_size]), strict=True)
        outputs = model([img.to(device) for img in images])
        evaluator.process(list(targets), [{k: v.cpu() for k, v in o.items()} for o in outputs])
    results = evaluator.evaluate()
    model.train(was_training)
    return results
