"""Training and evaluation: the loop, checkpoints, schedules, writers. Uses data, models, evaluation."""

from .trainer import NonFiniteLossError, evaluate_checkpoint, train

__all__ = ["train", "evaluate_checkpoint", "NonFiniteLossError"]
