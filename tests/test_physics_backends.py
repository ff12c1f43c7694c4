"""CPU (mujoco.batch via pure_callback) and MJX backends against plain MuJoCo C."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from msdiversity.emulator.testing import _grf
from msdiversity.models import load_model, registry
from msdiversity.physics import make_backend, state_from_arrays
from msdiversity.physics.cpu import model_with_contact_sensors

# float32 state between control steps vs float64 MuJoCo: measured 3e-7 (cpu) and 2e-6 (mjx) rad
# after 100 control steps on myoelbow_2dof; the tolerance leaves 50x headroom.
QPOS_TOL = 1e-4  # rad
FORCE_RTOL = 1e-3  # relative to the largest muscle force


def _rollout(backend, s0, u, nsub, n):
    def body(s, _):
        s, o = backend.step(s, u, nsub)
        return s, (s.qpos, o.actuator_force)

    return jax.jit(lambda s: jax.lax.scan(body, s, None, length=n))(s0)[1]


def test_cpu_and_mjx_match_mujoco_on_elbow():
    loaded = load_model("myoelbow_2dof")
    m = loaded.model
    u = np.array([0.3, 0.3, 0.3, 0.6, 0.6, 0.6], np.float32)  # triceps 0.3, biceps/brachialis 0.6
    nsub, n = 10, 100
    s0 = state_from_arrays(m.qpos0, np.zeros(m.nv), np.zeros(m.na))
    d = mujoco.MjData(m)
    d.ctrl[:] = u
    q_ref, f_ref = [], []
    for _ in range(n):
        for _ in range(nsub):
            mujoco.mj_step(m, d)
        q_ref.append(d.qpos.copy())
        f_ref.append(d.actuator_force.copy())  # forces of the last substep, as the backends report
    q_ref, f_ref = np.array(q_ref), np.array(f_ref)
    assert np.ptp(q_ref[:, 1]) > 1.0  # the elbow really moves (flexes by > 1 rad)
    fscale = np.abs(f_ref).max()
    for name in ("cpu", "mjx-jax"):
        q, f = _rollout(make_backend(loaded, name, nthread=1), s0, jnp.asarray(u), nsub, n)
        assert np.abs(np.asarray(q) - q_ref).max() < QPOS_TOL, name
        assert np.abs(np.asarray(f) - f_ref).max() < FORCE_RTOL * fscale, name


def test_contact_sensors_equal_mj_contact_force_on_myolegs():
    """The CPU backend's GRF (netforce contact sensors) equals mj_contactForce rotated to world."""
    loaded = load_model("myolegs")
    m, _, _ = model_with_contact_sensors(loaded)
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, 0)
    rng = np.random.default_rng(0)
    d.ctrl[:] = rng.uniform(0, 0.3, m.nu)
    for _ in range(60):  # the legs move and slide a little: tangential forces are non-zero
        mujoco.mj_step(m, d)
    fg = registry.foot_geoms(m)
    feet = {s: {mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in fg[s]} for s in fg}
    be = make_backend(loaded, "cpu", nthread=1)
    s = state_from_arrays(d.qpos, d.qvel, d.act, d.qacc_warmstart)
    out = jax.jit(be.forward)(s, jnp.asarray(d.ctrl, jnp.float32))
    # reference at the same (float32-rounded) state
    d2 = mujoco.MjData(m)
    d2.qpos[:], d2.qvel[:], d2.act[:] = np.asarray(s.qpos), np.asarray(s.qvel), np.asarray(s.act)
    d2.qacc_warmstart[:] = np.asarray(s.qacc_warmstart)
    d2.ctrl[:] = np.asarray(d.ctrl, np.float32)
    mujoco.mj_forward(m, d2)
    ref = _grf(m, d2, feet)
    assert np.abs(ref[:, 2]).sum() > 100.0  # feet are loaded
    np.testing.assert_allclose(np.asarray(out.grf), ref, atol=1e-2 + 1e-4 * np.abs(ref).max())
    # COP: the vertical-force-weighted mean of the contact points. MuJoCo's netforce sensor places
    # its point slightly differently when contact points lie at different heights (measured 2.3 mm
    # here), so the tolerance is 5 mm, the accuracy of a lab force plate's COP.
    for k, side in enumerate(("r", "l")):
        pts, w = [], []
        f = np.zeros(6)
        for i in range(d2.ncon):
            c = d2.contact[i]
            if {int(c.geom[0]), int(c.geom[1])} & feet[side] and 0 in (m.geom_bodyid[c.geom[0]], m.geom_bodyid[c.geom[1]]):
                mujoco.mj_contactForce(m, d2, i, f)
                fw = c.frame.reshape(3, 3).T @ f[:3]
                pts.append(c.pos.copy())
                w.append(abs(fw[2]))
        cop = (np.array(pts) * np.array(w)[:, None]).sum(0) / np.sum(w)
        np.testing.assert_allclose(np.asarray(out.cop[k]), cop, atol=5e-3)


def test_cpu_divergence_is_isolated():
    """A blown-up simulation is flagged and restored; the others in the same call are unaffected."""
    loaded = load_model("myoelbow_2dof")
    m = loaded.model
    be = make_backend(loaded, "cpu", nthread=2)
    n = 4
    qpos = np.tile(m.qpos0, (n, 1)).astype(np.float32)
    qvel = np.zeros((n, m.nv), np.float32)
    u = np.full((n, m.nu), 0.4, np.float32)
    states = jax.vmap(state_from_arrays)(qpos, qvel, np.zeros((n, m.na)), np.zeros((n, m.nv)))
    step = jax.jit(jax.vmap(lambda s, c: be.step(s, c, 10)))
    good_s, good_o = step(states, jnp.asarray(u))
    bad_qvel = qvel.copy()
    bad_qvel[1, 0] = 1e12  # MuJoCo: "Nan, Inf or huge value in QVEL"
    bad_u = u.copy()
    bad_u[2, 0] = np.nan  # MuJoCo: bad ctrl
    bad_states = states.replace(qvel=jnp.asarray(bad_qvel))
    s, o = step(bad_states, jnp.asarray(bad_u))
    assert np.asarray(o.diverged).tolist() == [False, True, True, False]
    for leaf in jax.tree.leaves((s, o)):
        assert np.isfinite(np.asarray(leaf)).all()
    for i in (0, 3):  # untouched sims are bit-identical to the run without the bad ones
        np.testing.assert_array_equal(np.asarray(s.qpos[i]), np.asarray(good_s.qpos[i]))
        np.testing.assert_array_equal(np.asarray(o.actuator_force[i]), np.asarray(good_o.actuator_force[i]))
    np.testing.assert_array_equal(np.asarray(s.qpos[2]), qpos[2])  # restored to its input state
