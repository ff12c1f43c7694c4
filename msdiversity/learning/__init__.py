"""Learning: PPO (Gaussian policy over excitations in [0, 1]; `ppo.py`) and Qflex (off-policy
value-guided flow exploration, the method's own learner; `qflex.py`), adversarial reward
aggregation, per-member regularizers. See docs/METHODS_training.md."""

from msdiversity.learning.ppo import LEARNERS, TrainConfig, Trainer, TrainState, train
from msdiversity.learning.qflex import QflexConfig, QflexState, QflexTrainer
from msdiversity.learning.regularizers import Regularizers


def make_trainer(env, config: TrainConfig, qflex: QflexConfig | None = None):
    """The learner that `config.learner` names, behind the common contract (`learning.common`)."""
    config = config.validate()
    if config.learner == "qflex":
        return QflexTrainer(env, config, qflex)
    return Trainer(env, config)


__all__ = ["LEARNERS", "TrainConfig", "Trainer", "TrainState", "QflexConfig", "QflexState", "QflexTrainer",
           "Regularizers", "make_trainer", "train"]
