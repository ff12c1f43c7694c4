"""What every learner shares: the member's regularizer costs of one env step, the map from a policy's
action to the env's action, and the deterministic evaluation. PPO (`ppo.py`) and Qflex (`qflex.py`)
are siblings behind the same contract:

    trainer = make_trainer(env, train_config, learner_config)
    state = trainer.init(key, regularizers)                  # one member
    state, metrics = trainer.iteration(state, regularizers)  # pure; the ensemble vmaps it
    trainer.evaluate(trainer.policy_params(state), key)      # eval/* metrics
    trainer.make_policy(policy_params, deterministic)(obs, key) -> env action (action_size,)
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from msdiversity.errors import ConfigError
from msdiversity.learning import adversarial, regularizers
from msdiversity.learning.regularizers import Regularizers


def info(state, name, default=None):
    """`state.info[name]` of an env State, or `default` when the env does not provide it."""
    v = state.info.get(name) if isinstance(state.info, dict) else None
    return default if v is None else v


def reg_weights(reg: Regularizers) -> dict:
    """Cost name -> the member's (traced) weight. The names are those of `step_costs`."""
    return {"effort": reg.effort_weight, "smoothness": reg.smoothness_weight, "emg": reg.emg_weight,
            "synergy": reg.synergy_weight, "residual": jnp.ones_like(reg.effort_weight)}


def step_costs(state, window, reg: Regularizers, synergy_rank: int) -> dict:
    """Per-env regularizer costs from a post-step env state, each (envs,): unweighted, except
    `residual` (the env's residual-root penalty, weighted by `[env] residual_weight`, weight 1 here).

    `window` (envs, W, nu) holds the last excitations for the low-rank penalty (ignored when
    `synergy_rank` is 0).
    """
    act = info(state, "activation")
    exc = info(state, "excitation")
    prev = info(state, "prev_excitation", exc)
    out = {"effort": regularizers.effort(act, reg.effort_exponent),
           "smoothness": regularizers.smoothness(exc, prev)}
    emg = info(state, "emg_ref")
    out["emg"] = regularizers.emg_tracking(act, emg) if emg is not None else jnp.zeros(act.shape[:-1])
    out["residual"] = info(state, "residual_cost", jnp.zeros(act.shape[:-1]))  # already weighted (env config)
    if synergy_rank:
        out["synergy"] = jax.vmap(lambda w: regularizers.low_rank_residual(w, synergy_rank))(window)
    else:
        out["synergy"] = jnp.zeros(act.shape[:-1])
    return out


def exp_weights(env, config) -> np.ndarray:
    """(n_err,) weights of the exp reward aggregation (`[train] exp_weights`, empty = all ones)."""
    n_err = len(env.error_names)
    w = np.ones(n_err) if not config.exp_weights else np.asarray(config.exp_weights, float)
    if w.shape != (n_err,):
        raise ConfigError(f"expected {n_err} weights (one per error {list(env.error_names)}), got {len(w)}",
                          field="train.exp_weights")
    return w


def task_reward(config, disc_apply: Callable, disc_params, errors, weights):
    """Task reward from the error vector errors (..., n_err) -> (...,): the adversarial (ADD)
    discriminator's, or the exp aggregation with `weights` (`[train] reward`)."""
    if config.reward == "adversarial":
        return adversarial.adversarial_reward(disc_apply(disc_params, errors), config.reward_clip)
    return adversarial.exp_reward(errors, weights, config.exp_scale)


def where_done(done, new, old):
    """Per env, the pytree `new` where `done` (envs,) is set, else `old` (auto-reset)."""
    d = done.astype(bool)
    return jax.tree_util.tree_map(lambda a, b: jnp.where(d.reshape(d.shape + (1,) * (a.ndim - 1)), a, b), new, old)


# per-step tracking errors; undefined on a diverged step (its state is the restored input, see the env)
ERROR_METRICS = ("joint_err_deg", "body_err_cm", "grf_err_pct_bw", "vgrf_sqerr_pct_bw")


def unroll_means(log: dict, termination, ep_len) -> dict:
    """Means over an unroll of per-transition logs (T, envs), honest about failures.

    Tracking errors (`ERROR_METRICS`) average the steps where they are defined (`log['diverged']`
    unset), so a diverged step never counts as a perfect one; when every step diverged they are NaN.
    Added: `alive`, the fraction of transitions that did not end in a termination (fall,
    divergence, tracking lost); `time_to_failure`, the mean length in control steps of the
    episodes that ended in a termination (NaN when none did). termination, ep_len: (T, envs); ep_len
    is the episode's length at its last step, 0 elsewhere.
    """
    div = log.get("diverged")
    valid = (lambda v: v) if div is None else (lambda v: jnp.where(div > 0, jnp.nan, v))  # noqa: E731
    out = {k: (jnp.nanmean(valid(v)) if k in ERROR_METRICS else jnp.mean(v)) for k, v in log.items()}
    n_fail = jnp.sum(termination)
    out["alive"] = 1.0 - jnp.mean(termination)
    out["time_to_failure"] = jnp.where(n_fail > 0, jnp.sum(ep_len * termination) / jnp.maximum(n_fail, 1.0), jnp.nan)
    return out


def split_action(env) -> tuple[int, int]:
    """(muscle actuators, residual root components) of the env's action vector."""
    n_res = int(getattr(env, "n_residual", 0))
    return int(env.action_size) - n_res, n_res


def evaluate_policy(env, act_fn: Callable, key: jax.Array, eval_envs: int, eval_steps: int, exp_weights,
                    exp_scale: float) -> dict:
    """Deterministic policy `act_fn(obs (envs, obs)) -> env action (envs, action_size)` from
    `eval_envs` fresh resets for `eval_steps` control steps.

    Errors are taken while the episode is running; after an episode ends its last values are
    *held*, so dying early is not rewarded with fewer counted errors. A diverged step has no error
    (its state is the restored input) and an env with no valid step has none to hold (NaN, never
    0): such envs drop out of the error means, which are NaN when no env has a valid step, and
    always read together with `alive` (fraction of steps before termination) and
    `time_to_failure_s` (mean over envs of the time before termination, s; the full eval span
    `eval_steps / control_hz` when none fails). Returns means over envs and steps, named
    `eval/<metric>`; squared-error metrics (`*_sqerr_*`) are returned as RMSEs (`*_rmse_*`).
    """
    states = jax.vmap(env.reset)(jax.random.split(key, eval_envs))
    names = [k for k in ("joint_err_deg", "body_err_cm", "grf_err_pct_bw", "vgrf_sqerr_pct_bw") if k in states.metrics]

    def step_fn(carry, _):
        s, running, alive, held = carry
        ns = jax.vmap(env.step)(s, act_fn(s.obs))
        cur = {k: ns.metrics[k] for k in names}
        cur["exp_reward"] = adversarial.exp_reward(info(ns, "errors"), exp_weights, exp_scale)
        cur["activation_mean"] = jnp.mean(info(ns, "activation"), axis=-1)
        ok = running & ~info(ns, "diverged", jnp.zeros_like(ns.done)).astype(bool)
        held = {k: jnp.where(ok, cur[k], held[k]) for k in cur}
        out = dict(held)
        out["alive"] = alive.astype(jnp.float32)
        # an episode stops counting when it ends; only a termination (fall, divergence, tracking
        # lost) ends `alive`, reaching the end of the reference or the episode length does not
        done = ns.done.astype(bool)
        trunc = info(ns, "truncation", jnp.zeros_like(ns.done)).astype(bool)
        alive = alive & ~(running & done & ~trunc)
        return (ns, running & ~done, alive, held), out

    held0 = {k: jnp.full(eval_envs, jnp.nan) for k in names}
    held0.update({k: jnp.zeros(eval_envs) for k in ("exp_reward", "activation_mean")})  # a failure earns 0
    ones = jnp.ones(eval_envs, bool)
    _, out = jax.lax.scan(step_fn, (states, ones, ones, held0), None, length=eval_steps)
    res = {f"eval/{k}": (jnp.nanmean(v) if k in names else jnp.mean(v)) for k, v in out.items() if "_sqerr_" not in k}
    # squared errors become an RMSE over envs and steps (e.g. eval/vgrf_rmse_pct_bw)
    res.update({f"eval/{k.replace('_sqerr_', '_rmse_')}": jnp.sqrt(jnp.nanmean(v)) for k, v in out.items() if "_sqerr_" in k})
    res["eval/time_to_failure_s"] = jnp.mean(jnp.sum(out["alive"], axis=0)) / float(env.config.control_hz)
    return res
