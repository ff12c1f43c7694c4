"""Small MLPs (flax.linen) and a running observation normaliser.

Every network maps one observation (or a batch through broadcasting over leading axes); the
trainer vmaps nothing here, it just calls `apply` on arrays with leading (..., ) axes.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from msdiversity.learning import linalg


class MLP(nn.Module):
    """Dense layers with `swish` between them; the last layer's kernel is scaled by `out_scale`.

    A small `out_scale` (e.g. 0.01 for the policy mean) starts the policy close to its bias, so the
    initial excitations do not depend much on the observation (PPO practice, Andrychowicz et al. 2021).
    """

    hidden: Sequence[int]
    out: int
    out_scale: float = 1.0
    zero_out: bool = False

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.swish(nn.Dense(h, kernel_init=linalg.orthogonal(jnp.sqrt(2.0)))(x))
        init = nn.initializers.zeros if self.zero_out else linalg.orthogonal(self.out_scale)
        return nn.Dense(self.out, kernel_init=init)(x)


class GaussianActor(nn.Module):
    """Mean of a diagonal Gaussian over pre-activations u (nu,) and a state-independent log std.

    Returns (mean (..., nu), log_std (nu,)).
    """

    hidden: Sequence[int]
    action_size: int
    init_mean: float = 0.0
    init_log_std: float = -0.5

    @nn.compact
    def __call__(self, obs):
        mean = MLP(self.hidden, self.action_size, out_scale=0.01)(obs) + self.init_mean
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (self.action_size,))
        return mean, log_std


class ScalarNet(nn.Module):
    """V(s) or D(e): an MLP with one output, squeezed. Input (..., n) -> (...,)."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, x):
        return MLP(self.hidden, 1)(x)[..., 0]


class QNet(nn.Module):
    """Q(s, u): concatenates the normalised observation and the pre-activation action. -> (...,)"""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, obs, u):
        return MLP(self.hidden, 1)(jnp.concatenate([obs, u], axis=-1))[..., 0]


class FlowNet(nn.Module):
    """Velocity field v(s, x, tau) of the flow policy, (..., nu).

    The output layer starts at zero, so the untrained flow is the identity map and the flow policy
    starts as exactly the Gaussian baseline.
    """

    hidden: Sequence[int]
    action_size: int

    @nn.compact
    def __call__(self, obs, x, tau):
        tau = jnp.broadcast_to(jnp.asarray(tau, x.dtype), x.shape[:-1] + (1,))
        return MLP(self.hidden, self.action_size, zero_out=True)(jnp.concatenate([obs, x, tau], axis=-1))


@struct.dataclass
class RunningStats:
    """Running mean/variance of observations (parallel Welford update, Chan et al.)."""

    count: jax.Array  # () float32
    mean: jax.Array  # (obs,)
    m2: jax.Array  # (obs,) sum of squared deviations

    @staticmethod
    def init(size: int) -> "RunningStats":
        return RunningStats(count=jnp.zeros((), jnp.float32), mean=jnp.zeros(size, jnp.float32),
                            m2=jnp.zeros(size, jnp.float32))

    def update(self, x: jax.Array) -> "RunningStats":
        """Fold in a batch x (..., obs)."""
        x = x.reshape(-1, x.shape[-1])
        n = jnp.asarray(x.shape[0], jnp.float32)
        bmean = x.mean(0)
        bm2 = ((x - bmean) ** 2).sum(0)
        tot = self.count + n
        delta = bmean - self.mean
        mean = self.mean + delta * n / tot
        m2 = self.m2 + bm2 + delta**2 * self.count * n / tot
        return RunningStats(count=tot, mean=mean, m2=m2)

    def normalize(self, x: jax.Array, clip: float = 10.0) -> jax.Array:
        std = jnp.sqrt(self.m2 / jnp.maximum(self.count, 1.0) + 1e-6)
        std = jnp.where(self.count > 1.0, std, 1.0)
        return jnp.clip((x - self.mean) / std, -clip, clip)
