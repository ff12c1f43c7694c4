"""PPO for muscle-driven imitation, brax-style: `train(key, config, env) -> (make_policy, params, metrics)`.

One *member* is one agent: its networks, optimiser states, observation statistics, environments and
PRNG key live in a `TrainState` pytree, and one training iteration is the pure function
`Trainer.iteration(state, regularizers) -> (state, metrics)`. The ensemble trainer vmaps exactly
this function over members (regularizer values are traced leaves), so a single member and an
ensemble run the same code.

An iteration:
1. reset a fresh batch of environments (used to auto-reset the ones that finish during the unroll);
2. unroll `unroll_length` control steps of `num_envs` environments with the stochastic policy
   (`lax.scan`, body `(carry, key) -> (carry, transition)`), computing the task reward (exp or
   adversarial) and the member's regularizer costs from `state.info`;
3. update the observation statistics; GAE(lambda) advantages and value targets;
4. `update_epochs` x `num_minibatches` Adam steps on the PPO loss (plus the critic Q and flow-matching
   losses for the flow policy) and on the discriminator loss (adversarial reward);
5. return the mean of every logged quantity over the unroll.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from msdiversity.errors import ConfigError
from msdiversity.learning import adversarial, distributions, flow, losses, regularizers
from msdiversity.learning.common import (evaluate_policy, exp_weights, reg_weights, split_action, step_costs,
                                         task_reward, where_done)
from msdiversity.learning.common import info as _info
from msdiversity.learning.common import unroll_means
from msdiversity.learning.networks import FlowNet, GaussianActor, QNet, RunningStats, ScalarNet
from msdiversity.learning.regularizers import Regularizers

REWARDS = ("exp", "adversarial")
POLICIES = ("gaussian", "flow")
LEARNERS = ("ppo", "qflex")  # qflex: msdiversity.learning.qflex (its settings in the [qflex] section)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The `[train]` section. Static: changing any of these recompiles; identical for all members."""

    learner: str = "ppo"  # "ppo" (this module) | "qflex" (off-policy, msdiversity.learning.qflex)
    reward: str = "exp"  # "exp" | "adversarial"
    policy: str = "gaussian"  # "gaussian" | "flow"
    action_map: str = "sigmoid"  # "sigmoid" | "clip": pre-activation -> excitation in [0, 1]
    iterations: int = 200
    num_envs: int = 64  # environments per member
    unroll_length: int = 16  # control steps per environment per iteration
    update_epochs: int = 4
    num_minibatches: int = 4
    learning_rate: float = 1e-3
    max_grad_norm: float = 1.0
    discount: float = 0.95
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    entropy_cost: float = 1e-3
    value_cost: float = 0.5
    reward_scale: float = 1.0
    init_log_std: float = -0.5  # log std of the Gaussian over pre-activations
    init_excitation: float = 0.1  # excitation of the initial mean action
    hidden: tuple[int, ...] = (128, 128)
    normalize_obs: bool = True
    # exp reward: sum_i w_i exp(-exp_scale * e_i) / sum_i w_i over the env's normalised error vector
    exp_scale: float = 1.0
    exp_weights: tuple[float, ...] = ()  # empty: all ones
    # adversarial reward
    disc_hidden: tuple[int, ...] = (64, 64)
    disc_learning_rate: float = 3e-4
    gp_weight: float = 1.0
    reward_clip: float = 5.0
    # flow policy
    flow_steps: int = 4
    flow_hidden: tuple[int, ...] = (128, 128)
    flow_guidance: float = 0.3  # eta: step toward higher Q, in pre-activation units (rms-normalised)
    flow_max_displacement: float = 1.0
    flow_warmup: int = 5  # iterations before guidance starts (the critic Q needs data first)
    flow_cost: float = 1.0
    q_cost: float = 0.5
    # low-rank (synergy) penalty: static window and rank; weight per member
    synergy_rank: int = 0  # 0 = off (no window is kept)
    synergy_window: int = 16
    # bookkeeping (used by the ensemble trainer)
    checkpoint_every: int = 25
    eval_every: int = 10
    eval_envs: int = 16
    eval_steps: int = 50

    def validate(self, path=None) -> "TrainConfig":
        checks = [("learner", self.learner in LEARNERS, f"one of {LEARNERS}"),
                  ("reward", self.reward in REWARDS, f"one of {REWARDS}"),
                  ("policy", self.policy in POLICIES, f"one of {POLICIES}"),
                  ("action_map", self.action_map in distributions.ACTION_MAPS, f"one of {distributions.ACTION_MAPS}"),
                  ("iterations", self.iterations >= 1, ">= 1"),
                  ("num_envs", self.num_envs >= 1, ">= 1"),
                  ("unroll_length", self.unroll_length >= 1, ">= 1"),
                  ("num_minibatches", self.num_minibatches >= 1
                   and (self.num_envs * self.unroll_length) % self.num_minibatches == 0,
                   "a divisor of num_envs * unroll_length"),
                  ("learning_rate", self.learning_rate > 0, "> 0"),
                  ("discount", 0 < self.discount <= 1, "in (0, 1]"),
                  ("gae_lambda", 0 <= self.gae_lambda <= 1, "in [0, 1]"),
                  ("flow_steps", self.flow_steps >= 1, ">= 1"),
                  ("synergy_rank", self.synergy_rank >= 0, ">= 0"),
                  ("synergy_window", self.synergy_window >= 2, ">= 2"),
                  ("checkpoint_every", self.checkpoint_every >= 1, ">= 1"),
                  ("eval_every", self.eval_every >= 1, ">= 1")]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"expected {expected}, got {getattr(self, name)!r}", path=path, field=f"train.{name}")
        return self


@struct.dataclass
class TrainState:
    """Everything one member needs to continue training (checkpointed as is)."""

    params: dict  # 'policy', 'value' (+ 'q', 'flow')
    opt_state: Any
    disc_params: dict  # {} unless the reward is adversarial
    disc_opt_state: Any
    obs_stats: RunningStats
    env_state: Any  # batched env State, (envs, ...)
    window: jax.Array  # (envs, W, nu) last excitations for the synergy penalty (W = 1, unused, if off)
    ep_steps: jax.Array  # (envs,) control steps in the current episode
    key: jax.Array  # raw uint32 PRNG key (2,)
    iteration: jax.Array  # () int32


class Trainer:
    """The pure functions of PPO training for one env and one static config.

    Attributes (static): `env`, `config`, the flax modules and optimisers.
    """

    def __init__(self, env, config: TrainConfig):
        self.env = env
        self.config = c = config.validate()
        nu = int(env.action_size)
        self.nu = nu
        self.n_err = len(env.error_names)
        n_mus, n_res = split_action(env)
        init_mean = float(distributions.from_excitation(jnp.asarray(c.init_excitation), c.action_map))
        if n_res:  # residual components start at zero force: m(u) = 0.5
            zero = float(distributions.from_excitation(jnp.asarray(0.5), c.action_map))
            init_mean = np.array([init_mean] * n_mus + [zero] * n_res, np.float32)
        self.actor = GaussianActor(tuple(c.hidden), nu, init_mean=init_mean, init_log_std=c.init_log_std)
        self.critic = ScalarNet(tuple(c.hidden))
        self.qnet = QNet(tuple(c.hidden))
        self.flownet = FlowNet(tuple(c.flow_hidden), nu)
        self.disc = ScalarNet(tuple(c.disc_hidden))
        self.optimizer = optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(c.learning_rate))
        self.disc_optimizer = optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(c.disc_learning_rate))
        self.exp_weights = exp_weights(env, c)
        self.window_len = c.synergy_window if c.synergy_rank > 0 else 0

    # ---- policy -----------------------------------------------------------------------------
    def policy_params(self, ts: TrainState) -> dict:
        """What `make_policy` needs: observation statistics, actor (and flow) parameters."""
        p = {"obs_stats": ts.obs_stats, "policy": ts.params["policy"]}
        if self.config.policy == "flow":
            p["flow"] = ts.params["flow"]
        return p

    def _normalize(self, stats: RunningStats, obs):
        return stats.normalize(obs) if self.config.normalize_obs else obs

    def _act(self, pparams: dict, obs, key, deterministic: bool):
        """-> (u0, u1, log_prob(u0), excitation). obs (..., obs_size)."""
        nobs = self._normalize(pparams["obs_stats"], obs)
        mean, log_std = self.actor.apply(pparams["policy"], nobs)
        if deterministic:
            u0, lp = mean, jnp.zeros(mean.shape[:-1])
        else:
            u0, lp = distributions.sample(key, mean, log_std)
        u1 = u0
        if self.config.policy == "flow":
            u1 = flow.transport(self.flownet.apply, pparams["flow"], nobs, u0, self.config.flow_steps)
        return u0, u1, lp, self._env_action(u1)

    def _env_action(self, u):
        """Pre-activations -> env action: excitations in [0, 1] for muscles; residual root components
        (when the env has them) in [-1, 1] as 2 m(u) - 1, so they can push both ways."""
        a = distributions.to_excitation(u, self.config.action_map)
        n_mus, n_res = split_action(self.env)
        if not n_res:
            return a
        return jnp.concatenate([a[..., :n_mus], 2.0 * a[..., n_mus:] - 1.0], axis=-1)

    def make_policy(self, pparams: dict, deterministic: bool = True) -> Callable:
        """`policy(obs (obs_size,), key) -> excitation (nu,)` in [0, 1]."""
        def policy(obs, key):
            return self._act(pparams, obs, key, deterministic)[3]
        return policy

    # ---- init -------------------------------------------------------------------------------
    def init(self, key: jax.Array, reg: Regularizers) -> TrainState:
        """A fresh member from a raw PRNG key (2,) uint32. `reg` is unused here (kept for vmap symmetry)."""
        del reg
        c = self.config
        k_a, k_v, k_q, k_f, k_d, k_env, key = jax.random.split(key, 7)
        obs_size = int(self.env.observation_size)
        o = jnp.zeros((1, obs_size))
        u = jnp.zeros((1, self.nu))
        params = {"policy": self.actor.init(k_a, o), "value": self.critic.init(k_v, o)}
        if c.policy == "flow":
            params["q"] = self.qnet.init(k_q, o, u)
            params["flow"] = self.flownet.init(k_f, o, u, jnp.zeros(()))
        disc_params, disc_opt = {}, {}
        if c.reward == "adversarial":
            disc_params = self.disc.init(k_d, jnp.zeros((1, self.n_err)))
            disc_opt = self.disc_optimizer.init(disc_params)
        env_state = jax.vmap(self.env.reset)(jax.random.split(k_env, c.num_envs))
        exc = _info(env_state, "excitation", jnp.zeros((c.num_envs, self.nu)))
        # (envs, W, nu); a 1-row placeholder when the penalty is off (orbax cannot save empty arrays)
        window = jnp.repeat(exc[:, None, :], max(self.window_len, 1), axis=1)
        return TrainState(params=params, opt_state=self.optimizer.init(params), disc_params=disc_params,
                          disc_opt_state=disc_opt, obs_stats=RunningStats.init(obs_size), env_state=env_state,
                          window=window, ep_steps=jnp.zeros(c.num_envs, jnp.int32), key=key,
                          iteration=jnp.zeros((), jnp.int32))

    # ---- rewards ----------------------------------------------------------------------------
    def task_reward(self, disc_params, errors):
        """errors (..., n_err) -> reward (...,)."""
        return task_reward(self.config, self.disc.apply, disc_params, errors, self.exp_weights)

    def costs(self, state, window, reg: Regularizers) -> dict:
        """Per-env regularizer costs (unweighted) from a post-step env state. Each (envs,)."""
        return step_costs(state, window, reg, self.config.synergy_rank if self.window_len else 0)

    # ---- one iteration ----------------------------------------------------------------------
    def iteration(self, ts: TrainState, reg: Regularizers) -> tuple[TrainState, dict]:
        c = self.config
        env = self.env
        key, k_reset, k_roll, k_upd = jax.random.split(ts.key, 4)
        reset_states = jax.vmap(env.reset)(jax.random.split(k_reset, c.num_envs))  # (envs, ...)
        reset_exc = _info(reset_states, "excitation", jnp.zeros((c.num_envs, self.nu)))
        pparams = self.policy_params(ts)
        weights = reg_weights(reg)

        def step_fn(carry, k):  # (carry, key) -> (carry, transition)
            env_state, window, ep_steps = carry
            obs = env_state.obs  # (envs, obs)
            u0, u1, lp, exc = self._act(pparams, obs, k, deterministic=False)
            ns = jax.vmap(env.step)(env_state, exc)
            errors = _info(ns, "errors")  # (envs, n_err)
            if self.window_len:
                window = jax.vmap(regularizers.push_window)(window, _info(ns, "excitation"))
            r_task = self.task_reward(ts.disc_params, errors)
            cost = self.costs(ns, window, reg)
            reward = r_task - sum(weights[k_] * cost[k_] for k_ in cost)
            done = ns.done.astype(jnp.float32)
            trunc = _info(ns, "truncation", jnp.zeros_like(done)).astype(jnp.float32) * done
            ep = ep_steps + 1
            d = ns.done.astype(bool)
            next_state = where_done(d, reset_states, ns)
            if self.window_len:
                window = where_done(d, jnp.repeat(reset_exc[:, None], self.window_len, axis=1), window)
            m = ns.metrics
            tr = {"obs": obs, "u0": u0, "u1": u1, "log_prob": lp, "reward": reward * c.reward_scale,
                  "termination": done * (1.0 - trunc), "truncation": trunc, "errors": errors,
                  "log": {"reward/task": r_task, **{f"reward/{k_}": -weights[k_] * v for k_, v in cost.items()},
                          **{f"cost/{k_}": v for k_, v in cost.items()}, "reward/total": reward,
                          "activation_mean": jnp.mean(_info(ns, "activation"), axis=-1),
                          "excitation_mean": jnp.mean(_info(ns, "excitation"), axis=-1),
                          **{k_: m[k_] for k_ in ("joint_err_deg", "body_err_cm", "grf_err_pct_bw") if k_ in m},
                          "diverged": _info(ns, "diverged", jnp.zeros_like(done)).astype(jnp.float32)},
                  "done": done, "ep_len": ep.astype(jnp.float32) * done}
            return (next_state, window, jnp.where(d, 0, ep)), tr

        (env_state, window, ep_steps), traj = jax.lax.scan(
            step_fn, (ts.env_state, ts.window, ts.ep_steps), jax.random.split(k_roll, c.unroll_length))
        # traj leaves: (T, envs, ...)
        stats = ts.obs_stats.update(traj["obs"]) if c.normalize_obs else ts.obs_stats
        values = self.critic.apply(ts.params["value"], self._normalize(stats, traj["obs"]))  # (T, envs)
        boot = self.critic.apply(ts.params["value"], self._normalize(stats, env_state.obs))  # (envs,)
        targets, adv = losses.compute_gae(traj["truncation"], traj["termination"], traj["reward"], values, boot,
                                          c.gae_lambda, c.discount)
        data = {"obs": traj["obs"], "u": traj["u0"], "u1": traj["u1"], "log_prob": traj["log_prob"],
                "advantages": adv, "targets": targets, "errors": traj["errors"]}
        data = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), data)  # (T*envs, ...)
        n = c.unroll_length * c.num_envs
        guidance = jnp.where(ts.iteration >= c.flow_warmup, c.flow_guidance, 0.0)
        q_before = ts.params.get("q")

        def loss_fn(params, mb, k):
            nobs = self._normalize(stats, mb["obs"])
            mean, log_std = self.actor.apply(params["policy"], nobs)
            v = self.critic.apply(params["value"], nobs)
            loss, logs = losses.actor_critic_loss(mean, log_std, v, mb, c.clip_eps, c.entropy_cost, c.value_cost)
            if c.policy == "flow":
                ql = flow.q_loss(self.qnet.apply, params["q"], nobs, mb["u1"], mb["targets"])
                tgt = flow.guided_targets(self.qnet.apply, q_before, nobs, mb["u"], mb["u1"], guidance,
                                          c.flow_max_displacement)
                fm = flow.flow_matching_loss(self.flownet.apply, params["flow"], k, nobs, mb["u"], tgt)
                loss = loss + c.q_cost * ql + c.flow_cost * fm
                logs = {**logs, "loss/q": ql, "loss/flow": fm,
                        "flow/displacement": jnp.mean(jnp.abs(mb["u1"] - mb["u"]))}
            return loss, logs

        def disc_loss_fn(dparams, mb):
            return adversarial.discriminator_loss(self.disc.apply, dparams, mb["errors"], c.gp_weight)

        def minibatch(carry, xs):  # (carry, (minibatch, key)) -> (carry, logs)
            params, opt_state, dparams, dopt = carry
            mb, k = xs
            (_, logs), g = jax.value_and_grad(loss_fn, has_aux=True)(params, mb, k)
            upd, opt_state = self.optimizer.update(g, opt_state, params)
            params = optax.apply_updates(params, upd)
            if c.reward == "adversarial":
                (_, dlogs), dg = jax.value_and_grad(disc_loss_fn, has_aux=True)(dparams, mb)
                dupd, dopt = self.disc_optimizer.update(dg, dopt, dparams)
                dparams = optax.apply_updates(dparams, dupd)
                logs = {**logs, **dlogs}
            return (params, opt_state, dparams, dopt), logs

        def epoch(carry, k):  # (carry, key) -> (carry, logs)
            k_perm, k_mb = jax.random.split(k)
            perm = jax.random.permutation(k_perm, n)
            mbs = jax.tree_util.tree_map(lambda x: x[perm].reshape((c.num_minibatches, -1) + x.shape[1:]), data)
            return jax.lax.scan(minibatch, carry, (mbs, jax.random.split(k_mb, c.num_minibatches)))

        (params, opt_state, dparams, dopt), upd_logs = jax.lax.scan(
            epoch, (ts.params, ts.opt_state, ts.disc_params, ts.disc_opt_state),
            jax.random.split(k_upd, c.update_epochs))

        # ---- metrics: means over the unroll (episode length over finished episodes) -------------
        metrics = unroll_means(traj["log"], traj["termination"], traj["ep_len"])  # honest about failures
        for i, name in enumerate(self.env.error_names):
            metrics[f"err/{name}"] = jnp.mean(traj["errors"][..., i])
        n_done = jnp.sum(traj["done"])
        metrics["episodes"] = n_done
        metrics["episode_length"] = jnp.where(n_done > 0, jnp.sum(traj["ep_len"]) / jnp.maximum(n_done, 1.0), jnp.nan)
        metrics["log_std"] = jnp.mean(params["policy"]["params"]["log_std"])
        metrics.update({k_: jnp.mean(v) for k_, v in upd_logs.items()})
        new = TrainState(params=params, opt_state=opt_state, disc_params=dparams, disc_opt_state=dopt,
                         obs_stats=stats, env_state=env_state, window=window, ep_steps=ep_steps, key=key,
                         iteration=ts.iteration + 1)
        return new, metrics

    # ---- evaluation -------------------------------------------------------------------------
    def evaluate(self, pparams: dict, key: jax.Array) -> dict:
        """Deterministic policy from `eval_envs` fresh resets for `eval_steps` control steps
        (`common.evaluate_policy`: errors of ended episodes are held, `alive` is reported)."""
        c = self.config
        act = lambda obs: self._act(pparams, obs, None, deterministic=True)[3]  # noqa: E731
        return evaluate_policy(self.env, act, key, c.eval_envs, c.eval_steps, self.exp_weights, c.exp_scale)


def train(key: jax.Array, config: TrainConfig, env, reg: Regularizers | None = None,
          progress_fn: Callable[[int, dict], None] | None = None):
    """Train one member. Returns (make_policy, policy params, list of per-iteration metric dicts).

    `make_policy(params, deterministic=True)(obs, key) -> excitation (nu,)`. The first metrics entry
    carries `eval/*` of the initial policy, the last one of the final policy.
    """
    tr = Trainer(env, config)
    reg = Regularizers.make() if reg is None else reg
    key = jnp.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
    k_init, k_eval = jax.random.split(key)
    ts = jax.jit(tr.init)(k_init, reg)
    step = jax.jit(tr.iteration)
    ev = jax.jit(tr.evaluate)
    history = []
    for it in range(config.iterations):
        m = {}
        if it % config.eval_every == 0:
            m.update(ev(tr.policy_params(ts), jax.random.fold_in(k_eval, it)))
        ts, mi = step(ts, reg)
        m.update(mi)
        if it == config.iterations - 1:
            m.update({f"final_{k}": v for k, v in ev(tr.policy_params(ts), jax.random.fold_in(k_eval, it + 1)).items()})
        m = jax.tree_util.tree_map(float, jax.device_get(m))
        history.append(m)
        if progress_fn is not None:
            progress_fn(it, m)
    return functools.partial(_make_policy, tr), tr.policy_params(ts), history


def _make_policy(trainer: Trainer, params: dict, deterministic: bool = True):
    return trainer.make_policy(params, deterministic)
