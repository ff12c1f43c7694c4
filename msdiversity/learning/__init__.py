"""Learning: PPO (Gaussian policy over excitations in [0, 1]), adversarial reward aggregation,
value-guided flow exploration, per-member regularizers. See docs/METHODS_training.md."""

from msdiversity.learning.ppo import TrainConfig, Trainer, TrainState, train
from msdiversity.learning.regularizers import Regularizers

__all__ = ["TrainConfig", "Trainer", "TrainState", "Regularizers", "train"]
