"""Qflex (off-policy value-guided flow exploration): its pieces against hand-derived answers, a short
training on the real elbow env that must improve tracking, and bitwise resume."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msdiversity.learning.qflex import ascend, integrate_flow


def test_ascent_is_bounded_and_climbs_a_concave_q():
    c = jnp.array([0.3, -0.2, 0.5])
    q = lambda x: -jnp.sum((x - c) ** 2, axis=-1)  # noqa: E731  grad = -2 (x - c)
    x0 = jnp.zeros((2, 3))
    # one step: x + eta * g with g = 2 c (|g| small, so eta is the binding bound)
    np.testing.assert_allclose(ascend(q, x0, 1, 0.1), 0.1 * 2 * c[None].repeat(2, 0), rtol=1e-5)
    # many steps converge to the maximiser
    np.testing.assert_allclose(ascend(q, x0, 200, 0.1), c[None].repeat(2, 0), atol=1e-4)
    # a huge gradient: the step length is capped at 2 sqrt(d)
    far = jnp.full((1, 3), 1e4)
    step = ascend(q, far, 1, 1.0) - far
    np.testing.assert_allclose(float(jnp.linalg.norm(step)), 2 * math.sqrt(3), rtol=1e-4)


def test_flow_integration_is_euler_with_clipped_velocity():
    x0 = jnp.array([[0.1, -0.4]])
    v = jnp.array([[0.5, -0.25]])
    np.testing.assert_allclose(integrate_flow(lambda x, t: jnp.broadcast_to(v, x.shape), x0, 4), x0 + v, rtol=1e-6)
    # velocity grows with t: Euler sums v(t_k) dt at t_k = 0, .25, .5, .75 -> mean t = 0.375
    out = integrate_flow(lambda x, t: jnp.ones_like(x) * t, x0, 4)
    np.testing.assert_allclose(out, x0 + 0.375, rtol=1e-6)
    # a velocity beyond 1/dt is clipped to 1/dt per step
    np.testing.assert_allclose(integrate_flow(lambda x, t: jnp.full_like(x, 1e6), x0, 4), x0 + 4.0, rtol=1e-6)


def make_exp(iterations, qflex=None, **train):
    from msdiversity.config import experiment_from_dict

    exp = experiment_from_dict({
        "name": "qflex_t", "model": {"name": "myoelbow_2dof"},
        "motion": {"source": "synthetic", "seed": 0, "duration": 2.0}, "env": {"backend": "cpu"},
        "train": {"learner": "qflex", "num_envs": 16, "unroll_length": 16, "eval_every": 10, "eval_envs": 16,
                  "checkpoint_every": 1000, "iterations": iterations, **train},
        # a high update-to-data ratio (128 updates per 256 env steps): Q learning, not physics, is what
        # this small budget has to buy (at 32 updates per iteration the elbow barely improves in 25k steps)
        "qflex": {"hidden": [64, 64], "start_steps": 2048, "updates_per_iteration": 128, "grad_steps": 2,
                  "flow_steps": 2, "batch_size": 256, "buffer_size": 32768},
        "ensemble": {"seeds": [0, 1], "effort_weight": [0.1]}})
    exp.sections["qflex"].update(qflex or {})
    return exp


@pytest.mark.slow
def test_qflex_improves_elbow_tracking(tmp_path):
    from msdiversity.ensemble import load_trained, train_experiment

    n = 90
    exp = make_exp(n)
    exp.sections["ensemble"]["seeds"] = [0]  # one member: the learner, not the ensemble, is under test here
    ds = train_experiment(exp, results_dir=tmp_path / "r", show_progress=False).metrics
    e = ds["eval_joint_err_deg"].dropna("iteration", how="all").values  # (members, evals)
    print("eval joint error deg per evaluation:", np.round(e, 2))
    # the untrained policy vs the median of the last three evaluations (the median: an off-policy
    # learner's deterministic policy has occasional one-evaluation spikes): the ensemble's error falls
    # by more than 40 % and every member's by more than 20 %
    last = np.median(e[:, -3:], axis=1)  # (members,)
    assert last.mean() < 0.6 * e[:, 0].mean() and np.all(last < 0.8 * e[:, 0]), e
    for v in ("loss_q", "loss_flow", "loss_ref", "reward_task", "cost_effort"):
        assert v in ds and np.isfinite(ds[v].isel(iteration=slice(0, n - 1)).values).all(), v
    make_policy, params, members, env = load_trained(tmp_path / "r")
    s = env.reset(jax.random.PRNGKey(0))
    a = make_policy(params[0])(s.obs, jax.random.PRNGKey(1))
    assert a.shape == (env.action_size,) and bool(((a >= 0) & (a <= 1)).all())


@pytest.mark.slow
def test_qflex_resume_is_bitwise(tmp_path):
    """Replay buffer, networks, optimisers, normaliser and PRNG key are all checkpointed."""
    from resume_check import assert_resume_bitwise

    exp = make_exp(6, qflex={"updates_per_iteration": 8, "start_steps": 64, "hidden": [32, 32], "batch_size": 64},
                   num_envs=8, unroll_length=8, checkpoint_every=2, eval_every=3)
    assert_resume_bitwise(exp, tmp_path, ("joint_err_deg", "eval_joint_err_deg", "loss_q", "loss_flow"))
