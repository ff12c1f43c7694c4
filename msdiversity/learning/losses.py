"""Generalised advantage estimation and the PPO clipped surrogate (Schulman et al. 2015, 2017).

Time-major arrays: (T, envs). `termination` = the episode ended because of the task (no
bootstrap); `truncation` = it ended at the time limit or the end of the reference (the TD error of
that step is masked, as in brax, since its successor is the next episode's first state).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from msdiversity.learning import distributions


def compute_gae(truncation, termination, rewards, values, bootstrap_value, lambda_: float, discount: float):
    """GAE(lambda) advantages and value targets.

    Args:
        truncation, termination, rewards, values: (T, envs) float32.
        bootstrap_value: (envs,) V of the state after the last step.
    Returns:
        (value_targets (T, envs), advantages (T, envs)), gradients stopped.
    """
    trunc_mask = 1.0 - truncation
    values_tp1 = jnp.concatenate([values[1:], bootstrap_value[None]], axis=0)
    deltas = (rewards + discount * (1.0 - termination) * values_tp1 - values) * trunc_mask

    def body(acc, x):  # (carry, x) -> (carry, y), scanned backwards in time
        mask, delta, term = x
        acc = delta + discount * (1.0 - term) * mask * lambda_ * acc
        return acc, acc

    _, adv = jax.lax.scan(body, jnp.zeros_like(bootstrap_value), (trunc_mask, deltas, termination), reverse=True)
    targets = adv + values
    return jax.lax.stop_gradient(targets), jax.lax.stop_gradient(adv)


def ppo_policy_loss(log_prob_new, log_prob_old, advantages, clip_eps: float):
    """Clipped surrogate, to be minimised. Inputs (...,); returns (loss (), approx_kl (), clip_frac ())."""
    ratio = jnp.exp(log_prob_new - log_prob_old)
    s1 = ratio * advantages
    s2 = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -jnp.mean(jnp.minimum(s1, s2))
    approx_kl = jnp.mean((ratio - 1.0) - (log_prob_new - log_prob_old))  # k3 estimator, >= 0
    clip_frac = jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32))
    return loss, approx_kl, clip_frac


def actor_critic_loss(mean, log_std, values, batch, clip_eps: float, entropy_cost: float, value_cost: float,
                      normalize_advantages: bool = True):
    """PPO loss on a minibatch.

    Args:
        mean: (B, nu) policy mean of u; log_std: (nu,).
        values: (B,) V(s) under the current parameters.
        batch: dict with `u` (B, nu) the sampled pre-activation, `log_prob` (B,) under the
            behaviour policy, `advantages` (B,), `targets` (B,).
    Returns:
        (loss (), metrics dict of scalars)
    """
    adv = batch["advantages"]
    if normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    lp = distributions.gaussian_log_prob(batch["u"], mean, log_std)
    pl, kl, cf = ppo_policy_loss(lp, batch["log_prob"], adv, clip_eps)
    vl = 0.5 * jnp.mean((values - batch["targets"]) ** 2)
    ent = distributions.gaussian_entropy(log_std)
    loss = pl + value_cost * vl - entropy_cost * ent
    return loss, {"loss/policy": pl, "loss/value": vl, "entropy": ent, "approx_kl": kl, "clip_frac": cf}
