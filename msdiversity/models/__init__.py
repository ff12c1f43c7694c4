"""Musculoskeletal model registry: built-in myo-sim models and any MJCF path."""

from msdiversity.models.registry import (BUILTIN_MODELS, LoadedModel, ModelSummary, list_models,
                                         load_model, summarize)

__all__ = ["BUILTIN_MODELS", "LoadedModel", "ModelSummary", "list_models", "load_model", "summarize"]
