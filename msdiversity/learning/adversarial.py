"""Adversarial reward aggregation (ADD, Zhang et al. 2025, arXiv 2505.04961; MS-Emulator, arXiv 2603.29332).

A discriminator D(e) = sigmoid(f(e)) sees the vector of normalised tracking errors e (n_err,) >= 0.
Its only positive sample is the zero vector (perfect tracking); negatives are the errors the policy
actually produced. Objective (maximised by D):  log D(0) + E[log(1 - D(e))] - w_gp E||grad_e f(e)||^2,
the gradient penalty taken at the negatives as in ADD, which keeps D from collapsing to a spike at 0
and gives the policy a smooth signal. The policy's per-step reward is
    r = -log(1 - D(e)) = softplus(f(e)),  clipped to [0, reward_clip],
high when D cannot tell the errors from zero. The aggregation (how much each error component
matters) is thus learned and changes as the policy improves, instead of hand-tuned weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def discriminator_loss(apply_fn, params, errors, gp_weight: float):
    """Binary cross-entropy (zero vector positive, `errors` negative) plus the gradient penalty.

    Args:
        apply_fn: (params, e (..., n_err)) -> logits (...,).
        errors: (B, n_err) policy samples (negatives).
    Returns:
        (loss (), metrics)
    """
    zero = jnp.zeros((1, errors.shape[-1]), errors.dtype)
    logit_pos = apply_fn(params, zero)  # (1,)
    logit_neg, vjp = jax.vjp(lambda e: apply_fn(params, e), errors)
    (grad_e,) = vjp(jnp.ones_like(logit_neg))  # (B, n_err) per-sample gradient (samples independent)
    bce_pos = jnp.mean(jax.nn.softplus(-logit_pos))  # -log D(0)
    bce_neg = jnp.mean(jax.nn.softplus(logit_neg))  # -log(1 - D(e))
    gp = jnp.mean(jnp.sum(grad_e**2, axis=-1))
    loss = bce_pos + bce_neg + gp_weight * gp
    return loss, {"disc/loss": bce_pos + bce_neg, "disc/gp": gp, "disc/D_pos": jax.nn.sigmoid(logit_pos).mean(),
                  "disc/D_neg": jax.nn.sigmoid(logit_neg).mean()}


def adversarial_reward(logits, reward_clip: float):
    """-log(1 - sigmoid(logit)) = softplus(logit), clipped to [0, reward_clip]. (...,) -> (...,)"""
    return jnp.clip(jax.nn.softplus(logits), 0.0, reward_clip)


def exp_reward(errors, weights, scale: float):
    """DeepMimic-style aggregation: sum_i w_i exp(-scale * e_i) / sum_i w_i, in (0, 1]. errors (..., n_err)."""
    w = jnp.asarray(weights, errors.dtype)
    return jnp.sum(w * jnp.exp(-scale * errors), axis=-1) / jnp.sum(w)
