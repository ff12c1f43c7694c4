"""Ensemble trainer: members = seeds x regularizers in one vmapped, jitted, sharded program."""

from msdiversity.ensemble.config import EnsembleConfig, expand_members
from msdiversity.ensemble.trainer import TrainResult, load_trained, train_experiment

__all__ = ["EnsembleConfig", "TrainResult", "expand_members", "load_trained", "train_experiment"]
