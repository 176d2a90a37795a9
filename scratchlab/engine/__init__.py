"""Training and evaluation: the loop, checkpoints, schedules, writers. Uses data, models, evaluation."""

from .evaluate import evaluate_checkpoint
from .trainer import NonFiniteLossError, train

__all__ = ["train", "evaluate_checkpoint", "NonFiniteLossError"]
