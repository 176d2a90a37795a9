"""scratchlab: train detectors from random init, ImageNet-style or direct detection pre-training, and
measure what pre-training buys."""

__version__ = "0.1.0"
