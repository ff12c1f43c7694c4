"""The Gaussian policy over excitations and its mapping into [0, 1].

The policy samples a pre-activation u ~ N(mu(s), diag(sigma^2)) in R^nu and the environment gets the
excitation a = m(u) in [0, 1]^nu with either
- `sigmoid`: a = 1 / (1 + exp(-u)), a bijection; log p(a) = log N(u) - sum log(a (1 - a)), or
- `clip`: a = clip(u, 0, 1), the brax convention (not invertible at the bounds).
PPO is computed on u, where the density is exact: the probability ratio of two policies at the same
sample is identical in u and in a (the sigmoid Jacobian cancels), so the clipped surrogate is the
same as PPO on a. The entropy bonus is the Gaussian entropy in u-space (for `sigmoid` the entropy of
a differs by E[log a(1-a)], which depends on the mean; we do not add it, a documented choice).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)
ACTION_MAPS = ("sigmoid", "clip")


def to_excitation(u: jax.Array, mapping: str) -> jax.Array:
    """Pre-activation (..., nu) -> excitation (..., nu) in [0, 1]."""
    if mapping == "sigmoid":
        return jax.nn.sigmoid(u)
    if mapping == "clip":
        return jnp.clip(u, 0.0, 1.0)
    raise ValueError(f"unknown action map {mapping!r}; expected one of {ACTION_MAPS}")


def from_excitation(a: jax.Array, mapping: str) -> jax.Array:
    """Inverse map (for initialising the mean at a chosen excitation)."""
    if mapping == "sigmoid":
        a = jnp.clip(a, 1e-4, 1 - 1e-4)
        return jnp.log(a) - jnp.log1p(-a)
    return a


def gaussian_log_prob(u: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Log density of u under N(mean, exp(log_std)^2), summed over the last axis. -> (...,)"""
    z = (u - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * LOG_2PI, axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    """Entropy of the diagonal Gaussian in u-space (nats). -> ()"""
    return jnp.sum(log_std + 0.5 * (1.0 + LOG_2PI))


def excitation_log_prob(u: jax.Array, mean: jax.Array, log_std: jax.Array, mapping: str) -> jax.Array:
    """Log density of the excitation a = m(u) (sigmoid map only; change of variables)."""
    lp = gaussian_log_prob(u, mean, log_std)
    if mapping != "sigmoid":
        raise ValueError("the clip map has no density at the bounds; use log-probs in u-space")
    # d a / d u = a (1 - a); log|.| computed stably as -softplus(-u) - softplus(u)
    return lp + jnp.sum(jax.nn.softplus(-u) + jax.nn.softplus(u), axis=-1)


def sample(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sample u (..., nu) and its log-prob (...,)."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return u, gaussian_log_prob(u, mean, log_std)
