"""Value-guided flow exploration (our reading of MS-Emulator arXiv 2603.29332 and Qflex arXiv 2601.19707).

The flow policy is the PPO Gaussian followed by a learned, state-conditioned flow:
    u0 ~ N(mu(s), sigma^2)                       (source: the PPO actor; PPO's action)
    x_{k+1} = x_k + (1/K) v_phi(s, x_k, k/K)    (K Euler steps, x_0 = u0)
    u1 = x_K,  excitation = m(u1)                (m: sigmoid or clip, see distributions.py)
Training, every iteration, on the on-policy batch:
1. Critic Q_psi(s, u1) regresses the GAE(lambda) value targets of the step (a Monte-Carlo-ish
   estimate of the return after taking u1 in s).
2. Guided targets: u1* = u1 + eta * g / rms(g), g = grad_u Q_psi(s, u)|_{u1} (gradient stopped),
   the transported sample moved a fixed step eta toward higher value; the total displacement
   u1* - u0 is clipped elementwise to +-max_displacement.
3. Conditional flow matching (Lipman et al. 2023) with the straight path from the source sample to
   its guided target: tau ~ U(0,1), x_tau = (1-tau) u0 + tau u1*, loss || v_phi(s, x_tau, tau) - (u1* - u0) ||^2.
4. PPO updates the source (mu, sigma) with exact Gaussian log-probs of u0; the flow is part of the
   action map during an iteration (fixed while the batch is collected), so the ratio is exact.
The velocity field starts at zero (identity flow), so the scheme starts as the Gaussian baseline.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def transport(flow_apply, flow_params, obs, u0, steps: int):
    """Integrate the flow from u0 (..., nu) with `steps` Euler steps. -> u1 (..., nu)"""
    def body(x, k):
        tau = k / steps
        return x + flow_apply(flow_params, obs, x, tau) / steps, None

    x, _ = jax.lax.scan(body, u0, jnp.arange(steps, dtype=jnp.float32))
    return x


def q_loss(q_apply, q_params, obs, u1, targets):
    """0.5 E (Q(s, u1) - target)^2. obs (B, obs), u1 (B, nu), targets (B,)."""
    return 0.5 * jnp.mean((q_apply(q_params, obs, u1) - targets) ** 2)


def guided_targets(q_apply, q_params, obs, u0, u1, eta: float, max_displacement: float):
    """u1* = u1 + eta g/rms(g), displacement from u0 clipped. -> (B, nu), gradient stopped."""
    g = jax.grad(lambda u: jnp.sum(q_apply(q_params, obs, u)))(u1)  # (B, nu) per-sample grads
    rms = jnp.sqrt(jnp.mean(g**2, axis=-1, keepdims=True)) + 1e-8
    target = u1 + eta * g / rms
    target = u0 + jnp.clip(target - u0, -max_displacement, max_displacement)
    return jax.lax.stop_gradient(target)


def flow_matching_loss(flow_apply, flow_params, key, obs, u0, target):
    """Conditional flow matching on straight paths u0 -> target. Shapes (B, ...). -> ()"""
    tau = jax.random.uniform(key, u0.shape[:-1] + (1,))
    x = (1.0 - tau) * u0 + tau * target
    v = flow_apply(flow_params, obs, x, tau)
    return jnp.mean(jnp.sum((v - (target - u0)) ** 2, axis=-1))
