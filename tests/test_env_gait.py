"""Gait features of the emulator env on myolegs: periodic references (wrap with the root moved by
the per-cycle shift), phase in the observation, the GRF term of the error vector and walking early
termination. Real MuJoCo physics (cpu backend)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from msdiversity.emulator import EnvConfig, make_env
from msdiversity.errors import ConfigError
from msdiversity.models import load_model
from msdiversity.motions.reference import ModelReference


def walking_in_a_line(loaded, n=40, dt=0.02, speed=1.0, grf=True):
    """A standing pose translated forward at `speed` m/s: one 'cycle' of n frames, shift = speed n dt."""
    m = loaded.model
    d = mujoco.MjData(m)
    mujoco.mj_resetData(m, d)
    if m.nkey:
        mujoco.mj_resetDataKeyframe(m, d, 0)
    q0 = d.qpos.copy()
    qpos = np.repeat(q0[None], n, axis=0)
    qpos[:, 0] += speed * dt * np.arange(n)
    qvel = np.zeros((n, m.nv))
    qvel[:, 0] = speed
    njoint = int(np.isin(m.jnt_type, [2, 3]).sum())
    g = np.zeros((n, 2, 3))
    g[:, :, 2] = 0.5 * m.body_subtreemass[0] * 9.81
    return ModelReference(dt=dt, qpos=qpos, qvel=qvel, grf=g if grf else None, excitation=None, activation=None,
                          emg=None, joint_mask=np.ones(njoint, bool), cycle_shift=np.array([speed * n * dt, 0, 0]))


@pytest.fixture(scope="module")
def legs():
    return load_model("myolegs")


def test_periodic_reference_wraps_with_shift(legs):
    ref = walking_in_a_line(legs)
    env = make_env(legs, ref, EnvConfig(backend="cpu", episode_length=500, grf_error=True), backend="cpu")
    assert env.periodic and env.n_frames == 40
    # the frame after the last is frame 0 of the next cycle, the root moved by the shift (0.8 m)
    idx, cyc = env._advance(jnp.asarray(39), jnp.asarray(0))
    assert int(idx) == 0 and int(cyc) == 1
    q, x = env._ref_at(idx, cyc)
    np.testing.assert_allclose(float(q[0]), ref.qpos[0, 0] + 0.8, atol=1e-5)
    np.testing.assert_allclose(np.asarray(x[:, 0]), env.ref_body_pos[0, :, 0] + 0.8, atol=1e-5)
    # an episode never truncates at the end of a periodic reference; phase (sin, cos) is observed
    s = env.reset(jax.random.PRNGKey(0))
    s = dataclasses.replace(s, info={**s.info, "phase_idx": jnp.asarray(39, jnp.int32)})
    a = jnp.full(env.action_size, 0.05)
    ns = env.step(s, a)
    assert int(ns.info["phase_idx"]) == 0 and int(ns.info["cycle"]) == 1
    assert float(ns.info["truncation"]) == 0.0
    np.testing.assert_allclose(np.asarray(ns.obs[-2:]), [0.0, 1.0], atol=1e-6)  # sin, cos at phase 0
    # GRF error term present, non-negative, with the metrics the benchmarks read
    assert env.error_names[-1] == "grf"
    assert float(ns.info["errors"][-1]) >= 0
    assert "vgrf_sqerr_pct_bw" in ns.metrics and "grf_err_pct_bw" in ns.metrics


def test_grf_error_needs_grf(legs):
    with pytest.raises(ConfigError, match="grf_error"):
        make_env(legs, walking_in_a_line(legs, grf=False), EnvConfig(backend="cpu", grf_error=True), backend="cpu")


def test_root_drop_terminates_a_fall(legs):
    """A reference 0.4 m above the ground: the model drops; with term_root_drop it ends early."""
    ref = walking_in_a_line(legs, speed=0.0)
    ref = dataclasses.replace(ref, qpos=ref.qpos + np.eye(legs.model.nq)[2] * 0.4)
    steps = {}
    for drop in (0.0, 0.1):
        cfg = EnvConfig(backend="cpu", random_init=False, episode_length=30, term_root_drop=drop,
                        term_body_err=10.0, term_joint_err=10.0)
        env = make_env(legs, ref, cfg, backend="cpu")
        s = env.reset(jax.random.PRNGKey(0))
        step = jax.jit(env.step)
        a = jnp.zeros(env.action_size)
        for k in range(1, 31):
            s = step(s, a)
            if float(s.done):
                break
        steps[drop] = (k, float(s.info["truncation"]))
    assert steps[0.0] == (30, 1.0)  # ran to the episode length
    assert steps[0.1][0] < 15 and steps[0.1][1] == 0.0  # a fall: terminated, not truncated


DATA = __import__("pathlib").Path(__file__).resolve().parents[1].parent / "shared" / "data" / "opensim"


@pytest.mark.skipif(not (DATA / "gait2354_subject01_walk1_ik.mot").exists(), reason="../shared/data absent")
def test_sagittal_walk_env_with_planar_residuals():
    """myolegs_sagittal on the shared walk: grounded, overground; planar root residuals. (The trial
    holds less than a stride, and mirroring a half stride needs a free root, so it is not looped.)"""
    from msdiversity.config import experiment_from_dict
    from msdiversity.ensemble.build import build_env

    exp = experiment_from_dict({
        "name": "sag", "model": {"name": "myolegs_sagittal"},
        "motion": {"source": str(DATA / "gait2354_subject01_walk1_ik.mot"),
                   "grf": str(DATA / "gait2354_subject01_walk1_grf.mot")},
        "env": {"backend": "cpu", "residual_root": True, "grf_error": True, "term_root_drop": 0.15}})
    b = build_env(exp)
    env = b.env
    assert b.reference.meta["root_tracked"] is True
    assert b.reference.meta["treadmill"]["converted"]
    assert not env.periodic and env.planar_root and env.n_residual == 3
    assert env.action_size == 80 + 3 and env.error_names[4:6] == ("root_pos", "root_rot")
    names = np.array(env.joint_names)
    assert not env.tracked_joint[np.isin(names, ["pelvis_tx", "pelvis_ty", "pelvis_tilt"])].any()
    # the loaded foot stands on the ground in the reference (mapping + stance grounding)
    m = env.model
    d = mujoco.MjData(m)
    from msdiversity.models.registry import foot_geoms, ground_height
    from msdiversity.motions.mapping import geom_low_point

    i = int(np.argmax(env.ref_grf[:, 0, 2]))  # right foot most loaded
    d.qpos[:] = env.ref_qpos_full[i]
    mujoco.mj_kinematics(m, d)
    low = min(geom_low_point(m, d, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g))[2] for g in foot_geoms(m)["r"])
    assert abs(low - ground_height(m)) < 0.01
    s = env.reset(jax.random.PRNGKey(0))
    a = jnp.concatenate([jnp.full(80, 0.1), jnp.array([0.0, 0.5, 0.0])])  # +100 N upward residual
    ns = jax.jit(env.step)(s, a)
    assert ns.info["residual"].shape == (3,)
    np.testing.assert_allclose(float(ns.metrics["residual_force_N"]), 100.0, rtol=1e-5)
    assert np.isfinite(np.asarray(ns.obs)).all() and ns.obs.shape == (env.observation_size,)


def test_residual_help_is_charged_to_the_learner(legs):
    """The residual penalty reaches the learners' reward through `step_costs` (PPO and Qflex build
    their reward from the error vector, not from the env's own reward)."""
    from msdiversity.learning.common import reg_weights, step_costs
    from msdiversity.learning.regularizers import Regularizers

    env = make_env(legs, walking_in_a_line(legs), EnvConfig(backend="cpu", residual_root=True, residual_weight=0.1),
                   backend="cpu")
    s = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 2))
    a = jnp.concatenate([jnp.full((2, 80), 0.1), jnp.array([[0.0] * 6, [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])], axis=1)
    ns = jax.vmap(env.step)(s, a)
    reg = Regularizers.make()
    c = step_costs(ns, None, reg, 0)["residual"]
    np.testing.assert_allclose(np.asarray(c), [0.0, 0.1 / 6], rtol=1e-5)  # weight x mean over 6 axes of (f/max)^2
    assert float(reg_weights(reg)["residual"]) == 1.0
