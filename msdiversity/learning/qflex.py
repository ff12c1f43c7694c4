"""Qflex: value-guided flow exploration, off-policy (Wei, Zuo & Sui, ICLR 2026, arXiv 2601.19707).

The learner of MS-Emulator, re-implemented after the authors' public code (`LNSGroup/Qflex`,
`relax/algorithm/flow_exp.py`, `relax/network/flow.py`, `relax/utils/flow_matching.py`; see
docs/METHODS_training.md for what is followed and where this deviates). Per member:

- a replay buffer of transitions (obs, action, next obs, termination, tracking-error vector,
  weighted regularizer cost); the task reward is recomputed from the stored error vector at update
  time, so the adversarial discriminator (ADD) can change without stale rewards;
- twin Q networks Q1, Q2 with Polyak-averaged targets; the Bellman target bootstraps with
  min(Q1', Q2') at an action of the reference policy at the next observation;
- a Gaussian *reference* policy pi_ref(a|s) (tanh-squashed, state-dependent std), trained to
  maximise min(Q1, Q2) (no entropy term, as published);
- a velocity field v(s, x, t) fitted by flow matching to the straight path from a reference sample
  x0 ~ pi_ref(.|s) to x1 = K steps of bounded gradient ascent on min Q from x0:
      x <- x + min(eta, 2 sqrt(d) / |g|) g,   g = grad_x min(Q1', Q2')(s, x)
  loss E_t || v(s, (1-t) x0 + t x1, t) - (x1 - x0) ||^2;
- actions: x0 ~ pi_ref, integrated through v with `flow_steps` Euler steps (each step's velocity
  clipped to +-1/dt, as published). Deterministic evaluation starts from tanh(mean) instead.

Actions live in [-1, 1]^d; the env receives excitation (x + 1) / 2 for muscles and x for the
residual root components. One `iteration` = `unroll_length` control steps of `num_envs` envs
(uniformly random actions until `start_steps` per-member env steps, as published), written into the
buffer, then `updates_per_iteration` gradient updates on batches drawn uniformly from the buffer.
The whole state (buffer included) is one pytree, so the ensemble vmaps members and checkpoints it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from msdiversity.errors import ConfigError
from msdiversity.learning import adversarial, regularizers
from msdiversity.learning.common import (evaluate_policy, exp_weights, info, reg_weights, split_action, step_costs,
                                         task_reward, where_done)
from msdiversity.learning.common import unroll_means
from msdiversity.learning.networks import MLP, FlowNet, QNet, RunningStats, ScalarNet
from msdiversity.learning.regularizers import Regularizers


@dataclasses.dataclass(frozen=True)
class QflexConfig:
    """The `[qflex]` section (used when `[train] learner = "qflex"`). Defaults follow the published
    MyoSuite settings where they fit a CPU (hidden sizes, batch and buffer are smaller)."""

    hidden: tuple[int, ...] = (256, 256)  # Q, reference policy and velocity field (published 3 x 256)
    learning_rate: float = 3e-4
    adam_b1: float = 0.5  # published
    discount: float = 0.95  # published 0.99; 0.95 = PPO's horizon here (dense tracking reward + early termination)
    tau: float = 0.005  # Polyak rate of the target Q networks
    batch_size: int = 256
    buffer_size: int = 65536  # transitions per member (rounded up to whole iterations)
    start_steps: int = 30000  # per-member env steps of uniformly random actions (published 3e4)
    updates_per_iteration: int = 0  # 0: one update per 80 env steps (published: 80 envs, 1 update per step)
    grad_step_size: float = 1e-2  # eta (published)
    grad_steps: int = 20  # K (published)
    flow_steps: int = 20  # Euler steps of the action flow (published 20)
    # the reference Gaussian is trained on -Q only (no entropy term, as published), so its std falls to
    # the floor within a few hundred updates; the floor (std >= 0.2 in pre-tanh units, published
    # e^-20) is what keeps exploring (measured on the elbow: floor e^-5 -> no learning after 25k steps)
    log_std_min: float = -1.6
    log_std_max: float = 1.0
    init_log_std: float = -1.2  # std 0.3 in pre-tanh units at the start
    init_excitation: float = 0.1  # mean excitation of the untrained reference policy

    def validate(self, path=None) -> "QflexConfig":
        checks = [("batch_size", self.batch_size >= 1, ">= 1"), ("buffer_size", self.buffer_size >= 1, ">= 1"),
                  ("grad_steps", self.grad_steps >= 0, ">= 0"), ("flow_steps", self.flow_steps >= 1, ">= 1"),
                  ("learning_rate", math.isfinite(self.learning_rate) and self.learning_rate > 0, "finite and > 0"),
                  ("discount", 0 < self.discount <= 1, "in (0, 1]"), ("tau", 0 < self.tau <= 1, "in (0, 1]"),
                  ("start_steps", self.start_steps >= 0, ">= 0"),
                  ("updates_per_iteration", self.updates_per_iteration >= 0, ">= 0"),
                  ("grad_step_size", self.grad_step_size >= 0, ">= 0"),
                  ("log_std_max", self.log_std_max > self.log_std_min, "> log_std_min"),
                  ("init_log_std", self.log_std_min < self.init_log_std < self.log_std_max,
                   "between log_std_min and log_std_max"),
                  ("hidden", len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "positive sizes"),
                  ("init_excitation", 0 < self.init_excitation < 1, "in (0, 1)")]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"expected {expected}, got {getattr(self, name)!r}", path=path, field=f"qflex.{name}")
        return self


class ReferencePolicy(nn.Module):
    """Gaussian over pre-tanh actions with state-dependent std. -> (mean (..., d), log_std (..., d))."""

    hidden: tuple[int, ...]
    action_size: int
    init_mean: Any = 0.0  # (d,) or scalar: pre-tanh mean of the untrained policy
    # the reference Gaussian is trained on -Q only (no entropy term, as published), so its std falls to
    # the floor within a few hundred updates; the floor (std >= 0.2 in pre-tanh units, published
    # e^-20) is what keeps exploring (measured on the elbow: floor e^-5 -> no learning after 25k steps)
    log_std_min: float = -1.6
    log_std_max: float = 1.0
    init_log_std: float = -1.2

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden, 2 * self.action_size, out_scale=0.01)(obs)
        mean, raw = jnp.split(out, 2, axis=-1)
        # log std starts near the middle of its range (std ~ 0.37 in pre-tanh units)
        # log std in [min, max] through a tanh; it starts at `init_log_std`
        lo, hi = self.log_std_min, self.log_std_max
        z0 = math.atanh(min(max(2.0 * (self.init_log_std - lo) / (hi - lo) - 1.0, -0.99), 0.99))
        log_std = lo + 0.5 * (hi - lo) * (jnp.tanh(raw + z0) + 1.0)
        return mean + jnp.asarray(self.init_mean, mean.dtype), log_std


@struct.dataclass
class Buffer:
    """Ring buffer of one member's transitions (capacity C)."""

    obs: jax.Array  # (C, obs)
    action: jax.Array  # (C, d) in [-1, 1]
    next_obs: jax.Array  # (C, obs)
    termination: jax.Array  # (C,) 1 if the episode terminated (not truncated) at this step
    errors: jax.Array  # (C, n_err) normalised tracking errors after the step
    cost: jax.Array  # (C,) the member's weighted regularizer cost of the step
    ptr: jax.Array  # () int32 next write row
    size: jax.Array  # () int32 rows filled


@struct.dataclass
class QflexState:
    """Everything one member needs to continue training (checkpointed as is)."""

    params: dict  # 'q1', 'q2', 'q1_target', 'q2_target', 'ref', 'flow'
    opt_state: dict  # per network: 'q1', 'q2', 'ref', 'flow'
    disc_params: dict  # {} unless the reward is adversarial
    disc_opt_state: Any
    obs_stats: RunningStats
    buffer: Buffer
    env_state: Any  # batched env State (envs, ...)
    window: jax.Array  # (envs, W, nu) last excitations for the synergy penalty
    key: jax.Array  # raw uint32 PRNG key (2,)
    ep_steps: jax.Array  # (envs,) control steps in the current episode
    iteration: jax.Array  # () int32
    env_steps: jax.Array  # () int32 per-member env steps so far


def ascend(q_fn: Callable, x0: jax.Array, steps: int, eta: float) -> jax.Array:
    """K steps of bounded gradient ascent on q_fn (per sample). x0 (B, d) -> x_K (B, d).

    Step size per sample: min(eta, 2 sqrt(d) / |g|) (the published bound, which caps one step's
    length at 2 sqrt(d), the diameter of [-1, 1]^d).
    """
    d = x0.shape[-1]
    grad = jax.grad(lambda x: jnp.sum(q_fn(x)))  # samples independent: per-sample gradients

    def body(x, _):
        g = grad(x)
        norm = jnp.linalg.norm(g, axis=-1, keepdims=True)
        step = jnp.minimum(eta, 2.0 * math.sqrt(d) / (norm + 1e-6))
        return x + step * g, None

    x, _ = jax.lax.scan(body, x0, None, length=steps)
    return x


def integrate_flow(v_fn: Callable, x0: jax.Array, steps: int) -> jax.Array:
    """Euler integration of dx/dt = v(x, t) from t = 0 to 1; each velocity clipped to +-1/dt."""
    dt = 1.0 / steps

    def body(x, i):
        v = jnp.clip(v_fn(x, i * dt), -1.0 / dt, 1.0 / dt)
        return x + dt * v, None

    x, _ = jax.lax.scan(body, x0, jnp.arange(steps, dtype=x0.dtype))
    return x


class QflexTrainer:
    """The pure functions of Qflex training for one env and one static configuration."""

    def __init__(self, env, config, qconfig: QflexConfig | None = None):
        self.env = env
        self.config = c = config.validate()
        self.q = q = (qconfig or QflexConfig()).validate()
        self.nu = int(env.action_size)
        self.n_mus, self.n_res = split_action(env)
        self.n_err = len(env.error_names)
        # pre-tanh mean giving the chosen excitation: (x + 1) / 2 = e  ->  x = 2e - 1
        init_x = math.atanh(2.0 * q.init_excitation - 1.0)
        init_mean = jnp.concatenate([jnp.full(self.n_mus, init_x), jnp.zeros(self.n_res)])
        self.ref = ReferencePolicy(tuple(q.hidden), self.nu, init_mean, q.log_std_min, q.log_std_max, q.init_log_std)
        self.qnet = QNet(tuple(q.hidden))
        self.vfield = FlowNet(tuple(q.hidden), self.nu)  # v(s, x, t); starts at zero (identity flow)
        self.disc = ScalarNet(tuple(c.disc_hidden))
        # plain Adam as published (no gradient clipping: the Q regression's gradients scale with the
        # returns, and clipping them to PPO's max_grad_norm slows Q learning to a crawl)
        self.optimizer = optax.adam(q.learning_rate, b1=q.adam_b1)
        self.disc_optimizer = optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(c.disc_learning_rate))
        self.exp_weights = exp_weights(env, c)
        self.window_len = c.synergy_window if c.synergy_rank > 0 else 0
        per_it = c.num_envs * c.unroll_length
        self.capacity = int(math.ceil(q.buffer_size / per_it) * per_it)
        self.updates = q.updates_per_iteration or max(1, round(per_it / 80))

    # ---- policy ---------------------------------------------------------------------------
    def policy_params(self, ts: QflexState) -> dict:
        return {"obs_stats": ts.obs_stats, "ref": ts.params["ref"], "flow": ts.params["flow"]}

    def _norm(self, stats: RunningStats, obs):
        return stats.normalize(obs) if self.config.normalize_obs else obs

    def _ref_sample(self, ref_params, nobs, key):
        """x0 = tanh(mean + std z) (B, d)."""
        mean, log_std = self.ref.apply(ref_params, nobs)
        return jnp.tanh(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype))

    def _flow(self, flow_params, nobs, x0):
        return integrate_flow(lambda x, t: self.vfield.apply(flow_params, nobs, x, t), x0, self.q.flow_steps)

    def _act(self, pparams: dict, obs, key, deterministic: bool):
        """-> action in [-1, 1]^d (..., d)."""
        nobs = self._norm(pparams["obs_stats"], obs)
        if deterministic:
            x0 = jnp.tanh(self.ref.apply(pparams["ref"], nobs)[0])
        else:
            x0 = self._ref_sample(pparams["ref"], nobs, key)
        return jnp.clip(self._flow(pparams["flow"], nobs, x0), -1.0, 1.0)

    def to_env_action(self, x):
        """[-1, 1]^d -> env action: excitation (x + 1) / 2 for muscles, x for residual components."""
        return jnp.concatenate([0.5 * (x[..., :self.n_mus] + 1.0), x[..., self.n_mus:]], axis=-1)

    def make_policy(self, pparams: dict, deterministic: bool = True) -> Callable:
        """`policy(obs (obs_size,), key) -> env action (action_size,)`."""
        def policy(obs, key):
            return self.to_env_action(self._act(pparams, obs, key, deterministic))
        return policy

    # ---- init -----------------------------------------------------------------------------
    def init(self, key: jax.Array, reg: Regularizers) -> QflexState:
        del reg
        c = self.config
        k1, k2, kr, kf, kd, ke, key = jax.random.split(key, 7)
        n_obs = int(self.env.observation_size)
        o, u = jnp.zeros((1, n_obs)), jnp.zeros((1, self.nu))
        q1, q2 = self.qnet.init(k1, o, u), self.qnet.init(k2, o, u)
        params = {"q1": q1, "q2": q2, "q1_target": q1, "q2_target": q2, "ref": self.ref.init(kr, o),
                  "flow": self.vfield.init(kf, o, u, jnp.zeros(()))}
        opt_state = {k: self.optimizer.init(params[k]) for k in ("q1", "q2", "ref", "flow")}
        disc_params, disc_opt = {}, {}
        if c.reward == "adversarial":
            disc_params = self.disc.init(kd, jnp.zeros((1, self.n_err)))
            disc_opt = self.disc_optimizer.init(disc_params)
        env_state = jax.vmap(self.env.reset)(jax.random.split(ke, c.num_envs))
        exc = info(env_state, "excitation", jnp.zeros((c.num_envs, self.n_mus)))
        window = jnp.repeat(exc[:, None, :], max(self.window_len, 1), axis=1)
        C = self.capacity
        buf = Buffer(obs=jnp.zeros((C, n_obs)), action=jnp.zeros((C, self.nu)), next_obs=jnp.zeros((C, n_obs)),
                     termination=jnp.zeros(C), errors=jnp.zeros((C, self.n_err)), cost=jnp.zeros(C),
                     ptr=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))
        return QflexState(params=params, opt_state=opt_state, disc_params=disc_params, disc_opt_state=disc_opt,
                          obs_stats=RunningStats.init(n_obs), buffer=buf, env_state=env_state, window=window, key=key,
                          ep_steps=jnp.zeros(c.num_envs, jnp.int32), iteration=jnp.zeros((), jnp.int32), env_steps=jnp.zeros((), jnp.int32))

    # ---- rewards --------------------------------------------------------------------------
    def task_reward(self, disc_params, errors):
        return task_reward(self.config, self.disc.apply, disc_params, errors, self.exp_weights)

    # ---- collection -----------------------------------------------------------------------
    def _collect(self, ts: QflexState, reg: Regularizers, key):
        c = self.config
        env = self.env
        k_reset, k_roll = jax.random.split(key)
        resets = jax.vmap(env.reset)(jax.random.split(k_reset, c.num_envs))
        reset_exc = info(resets, "excitation", jnp.zeros((c.num_envs, self.n_mus)))
        pparams = self.policy_params(ts)
        weights = reg_weights(reg)
        random_phase = ts.env_steps < self.q.start_steps

        def step_fn(carry, k):
            env_state, window, ep_steps = carry
            k_pol, k_uni = jax.random.split(k)
            obs = env_state.obs
            x = self._act(pparams, obs, k_pol, deterministic=False)
            x = jnp.where(random_phase, jax.random.uniform(k_uni, x.shape, x.dtype, -1.0, 1.0), x)
            ns = jax.vmap(env.step)(env_state, self.to_env_action(x))
            if self.window_len:
                window = jax.vmap(regularizers.push_window)(window, info(ns, "excitation"))
            cost = step_costs(ns, window, reg, c.synergy_rank)
            wcost = sum(weights[n] * cost[n] for n in cost)
            errors = info(ns, "errors")
            done = ns.done.astype(jnp.float32)
            trunc = info(ns, "truncation", jnp.zeros_like(done)).astype(jnp.float32) * done
            d = ns.done.astype(bool)
            ep = ep_steps + 1
            nxt = where_done(d, resets, ns)
            if self.window_len:
                window = where_done(d, jnp.repeat(reset_exc[:, None], self.window_len, axis=1), window)
            m = ns.metrics
            tr = {"obs": obs, "action": x, "next_obs": ns.obs, "termination": done * (1.0 - trunc),
                  "errors": errors, "cost": wcost, "done": done, "ep_len": ep.astype(jnp.float32) * done,
                  "log": {**{f"cost/{n}": v for n, v in cost.items()},
                          **{f"reward/{n}": -weights[n] * v for n, v in cost.items()},
                          "activation_mean": jnp.mean(info(ns, "activation"), axis=-1),
                          "excitation_mean": jnp.mean(info(ns, "excitation"), axis=-1),
                          "diverged": info(ns, "diverged", jnp.zeros_like(done)).astype(jnp.float32),
                          **{k_: m[k_] for k_ in ("joint_err_deg", "body_err_cm", "grf_err_pct_bw") if k_ in m}}}
            return (nxt, window, jnp.where(d, 0, ep)), tr

        (env_state, window, ep_steps), traj = jax.lax.scan(step_fn, (ts.env_state, ts.window, ts.ep_steps),
                                                           jax.random.split(k_roll, c.unroll_length))
        return env_state, window, ep_steps, traj

    def _store(self, buf: Buffer, traj) -> Buffer:
        flat = {k: traj[k].reshape((-1,) + traj[k].shape[2:])
                for k in ("obs", "action", "next_obs", "termination", "errors", "cost")}
        n = flat["obs"].shape[0]
        # capacity is a whole number of iterations, so one write never wraps
        new = {k: jax.lax.dynamic_update_slice_in_dim(getattr(buf, k), v.astype(getattr(buf, k).dtype), buf.ptr, 0)
               for k, v in flat.items()}
        return Buffer(**new, ptr=(buf.ptr + n) % self.capacity, size=jnp.minimum(buf.size + n, self.capacity))

    # ---- one gradient update ----------------------------------------------------------------
    def _update(self, carry, key, stats: RunningStats, buf: Buffer, active):
        """One Qflex update on a uniformly drawn batch. `active` (bool ()) gates the parameter change."""
        params, opt_state, dparams, dopt = carry
        q = self.q
        c = self.config
        k_idx, k_next, k_ref, k_x0, k_t = jax.random.split(key, 5)
        idx = jax.random.randint(k_idx, (q.batch_size,), 0, jnp.maximum(buf.size, 1))
        obs = self._norm(stats, buf.obs[idx])
        nobs = self._norm(stats, buf.next_obs[idx])
        act = buf.action[idx]
        errors = buf.errors[idx]
        reward = (self.task_reward(dparams, errors) - buf.cost[idx]) * c.reward_scale
        term = buf.termination[idx]

        def qmin(p1, p2, o, a):
            return jnp.minimum(self.qnet.apply(p1, o, a), self.qnet.apply(p2, o, a))

        # twin Q regression to r + gamma (1 - term) min Q'(s', a'), a' ~ pi_ref(s')
        a_next = self._ref_sample(params["ref"], nobs, k_next)
        target = reward + q.discount * (1.0 - term) * qmin(params["q1_target"], params["q2_target"], nobs, a_next)
        target = jax.lax.stop_gradient(target)

        def q_loss(p):
            return jnp.mean((self.qnet.apply(p, obs, act) - target) ** 2)

        l1, g1 = jax.value_and_grad(q_loss)(params["q1"])
        l2, g2 = jax.value_and_grad(q_loss)(params["q2"])

        # reference Gaussian: maximise min(Q1', Q2') at its own reparameterised samples
        def ref_loss(p):
            x = self._ref_sample(p, obs, k_ref)
            return -jnp.mean(qmin(params["q1_target"], params["q2_target"], obs, x))

        lr_, gr = jax.value_and_grad(ref_loss)(params["ref"])
        ref_std = jnp.mean(jnp.exp(self.ref.apply(params["ref"], obs)[1]))

        # flow targets: K bounded ascent steps on min Q' from reference samples; straight-path matching
        x0 = jax.lax.stop_gradient(self._ref_sample(params["ref"], obs, k_x0))
        qf = lambda x: qmin(params["q1_target"], params["q2_target"], obs, x)  # noqa: E731
        x1 = jax.lax.stop_gradient(jnp.clip(ascend(qf, x0, q.grad_steps, q.grad_step_size), -1.0, 1.0))
        t = jax.random.uniform(k_t, (q.batch_size, 1))

        def flow_loss(p):
            v = self.vfield.apply(p, obs, (1.0 - t) * x0 + t * x1, t)
            return jnp.mean((v - (x1 - x0)) ** 2)

        lf, gf = jax.value_and_grad(flow_loss)(params["flow"])

        new_p, new_o = dict(params), dict(opt_state)
        for name, g in (("q1", g1), ("q2", g2), ("ref", gr), ("flow", gf)):
            upd, o = self.optimizer.update(g, opt_state[name], params[name])
            new_p[name], new_o[name] = optax.apply_updates(params[name], upd), o
        for name in ("q1", "q2"):
            new_p[f"{name}_target"] = optax.incremental_update(new_p[name], params[f"{name}_target"], q.tau)
        logs = {"loss/q": 0.5 * (l1 + l2), "loss/ref": lr_, "loss/flow": lf,
                "flow/ascent_gain": jnp.mean(qf(x1) - qf(x0)), "flow/target_norm": jnp.mean(jnp.linalg.norm(x1 - x0, axis=-1)),
                "q/mean": jnp.mean(target), "ref/std": ref_std, "reward/task_batch": jnp.mean(self.task_reward(dparams, errors))}
        if c.reward == "adversarial":
            (_, dl), dg = jax.value_and_grad(
                lambda p: adversarial.discriminator_loss(self.disc.apply, p, errors, c.gp_weight), has_aux=True)(dparams)
            dupd, ndopt = self.disc_optimizer.update(dg, dopt, dparams)
            ndparams = optax.apply_updates(dparams, dupd)
            logs.update(dl)
        else:
            ndparams, ndopt = dparams, dopt
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new, old)  # noqa: E731
        return (keep(new_p, params), keep(new_o, opt_state), keep(ndparams, dparams), keep(ndopt, dopt)), logs

    # ---- one iteration ----------------------------------------------------------------------
    def iteration(self, ts: QflexState, reg: Regularizers) -> tuple[QflexState, dict]:
        c = self.config
        key, k_col, k_upd = jax.random.split(ts.key, 3)
        env_state, window, ep_steps, traj = self._collect(ts, reg, k_col)
        stats = ts.obs_stats.update(traj["obs"]) if c.normalize_obs else ts.obs_stats
        buf = self._store(ts.buffer, traj)
        env_steps = ts.env_steps + c.num_envs * c.unroll_length
        active = (env_steps >= self.q.start_steps) & (buf.size >= self.q.batch_size)
        (params, opt_state, dparams, dopt), ulogs = jax.lax.scan(
            lambda carry, k: self._update(carry, k, stats, buf, active),
            (ts.params, ts.opt_state, ts.disc_params, ts.disc_opt_state), jax.random.split(k_upd, self.updates))
        r_task = self.task_reward(dparams, traj["errors"])  # (T, envs) with the updated discriminator
        metrics = unroll_means(traj["log"], traj["termination"], traj["ep_len"])  # honest about failures
        metrics["reward/task"] = jnp.mean(r_task)
        metrics["reward/total"] = jnp.mean(r_task - traj["cost"])
        for i, name in enumerate(self.env.error_names):
            metrics[f"err/{name}"] = jnp.mean(traj["errors"][..., i])
        n_done = jnp.sum(traj["done"])
        metrics["episodes"] = n_done
        metrics["episode_length"] = jnp.where(n_done > 0, jnp.sum(traj["ep_len"]) / jnp.maximum(n_done, 1.0), jnp.nan)
        metrics["learning"] = active.astype(jnp.float32)
        metrics.update({k: jnp.mean(v) for k, v in ulogs.items()})
        new = QflexState(params=params, opt_state=opt_state, disc_params=dparams, disc_opt_state=dopt,
                         obs_stats=stats, buffer=buf, env_state=env_state, window=window, key=key,
                         ep_steps=ep_steps, iteration=ts.iteration + 1, env_steps=env_steps)
        return new, metrics

    # ---- evaluation -------------------------------------------------------------------------
    def evaluate(self, pparams: dict, key: jax.Array) -> dict:
        c = self.config
        act = lambda obs: self.to_env_action(self._act(pparams, obs, None, deterministic=True))  # noqa: E731
        return evaluate_policy(self.env, act, key, c.eval_envs, c.eval_steps, self.exp_weights, c.exp_scale)
