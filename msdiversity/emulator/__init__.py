"""Muscle-driven motion-imitation environment (pure JAX reset/step over a physics backend)."""

from msdiversity.emulator.env import Env, EnvConfig, State, make_env

__all__ = ["Env", "EnvConfig", "State", "make_env"]
