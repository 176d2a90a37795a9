"""Data: COCO datasets with transforms.v2, the resumable sampler, generated sets, converters and checks.
Knows nothing of models, evaluation or the engine."""
