"""Pre-training paths: ImageNet-style classification of the backbone, and direct detection pre-training."""
